#!/usr/bin/env bash
# launch/local.sh: run sparsetf-dist as N ranks on this host with the right mpirun flags.
#
#   launch/local.sh -n 8 [-t THREADS] [-b BUILD_DIR] -- --model M --prompt-tokens "1 2 3"
#
# Sets: the root allowances when run as root; --oversubscribe when ranks outnumber cores; no
# core binding (on a shared or oversubscribed host a bound rank cannot escape a busy core:
# measured 36 ms vs 20 ms per token for 800m-sparse on 2 ranks; on a dedicated host try
# MPIRUN_FLAGS="--bind-to core"); mpi_yield_when_idle so idle
# ranks give their core away; OPENBLAS_NUM_THREADS and --threads per rank; the shared-memory
# single-copy mechanism off (CMA often fails in containers). Extra mpirun flags: $MPIRUN_FLAGS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=1 threads=1 build=${STF_BUILD_DIR:-$here/../build}
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
    -n) n=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    -b) build=$2; shift 2 ;;
    -h | --help) usage 0 ;;
    --) shift; break ;;
    *) echo "local.sh: unknown option $1 (see -h)" >&2; exit 2 ;;
    esac
done
dist=$build/src/tools/sparsetf-dist
[ -x "$dist" ] || { echo "local.sh: $dist not built (cmake --build $build)" >&2; exit 2; }
cores=$(nproc)
flags=(-n "$n" --mca mpi_yield_when_idle 1 -x OPENBLAS_NUM_THREADS="$threads" -x OMP_NUM_THREADS="$threads")
if [ $((n * threads)) -gt "$cores" ]; then
    flags+=(--oversubscribe)
fi
[[ "${MPIRUN_FLAGS:-}" == *--bind-to* ]] || flags+=(--bind-to none)
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# shellcheck disable=SC2086
exec mpirun "${flags[@]}" ${MPIRUN_FLAGS:-} "$dist" --threads "$threads" "$@"
