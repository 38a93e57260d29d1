#!/usr/bin/env bash
# Runs the whole CTest suite of the sanitizer build in BUILD (made by build.sh): any
# AddressSanitizer or UndefinedBehaviorSanitizer report fails its test. LeakSanitizer is on
# except for the MPI tests, whose leaks are inside Open MPI's plugins.
#   suite.sh BUILD_DIR [extra ctest arguments]
set -uo pipefail
build=$1
shift
cd "$build" || exit 1
common="abort_on_error=0:halt_on_error=1:exitcode=86:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87"
rc=0
# clang_format checks sources, not binaries: the Release build runs it. The `cluster` tests
# (simulated hosts in network namespaces, a Slurm node) are machine-wide: the Release build
# runs them, and a second copy at the same time would fight over the same namespaces.
ASAN_OPTIONS="$common:detect_leaks=1" ctest --output-on-failure --timeout 900 -j 2 \
    -LE 'mpi|model|cluster' -E '^(clang_format|doc_commands)$' "$@" || rc=1
# doc_commands runs the docs' mpirun commands too, so it goes with the MPI tests.
ASAN_OPTIONS="$common:detect_leaks=0" ctest --output-on-failure --timeout 900 -j 2 \
    -L mpi "$@" || rc=1
# Its root-only blocks (simulated hosts) stay with the Release build: ranks there start
# through a remote-shell agent that does not pass ASAN_OPTIONS on.
STF_DOC_TEST_NO_ROOT=1 ASAN_OPTIONS="$common:detect_leaks=0" ctest --output-on-failure \
    --timeout 900 -R '^doc_commands$' "$@" || rc=1
exit $rc
