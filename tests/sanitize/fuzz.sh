#!/usr/bin/env bash
# Runs one libFuzzer target of the sanitizer build for a bounded time, starting from seed
# files or directories in the repository (copied: new inputs stay in the build tree). A
# crash, a sanitizer report, a leak or a timeout fails; the reproducer is left in
# BUILD/fuzz/NAME (run the target on that file to replay it).
#   fuzz.sh BUILD_DIR NAME SECONDS SEED... [-- extra libFuzzer flags]
set -uo pipefail
build=$1 name=$2 seconds=$3
shift 3
bin=$(find "$build/src" -name "$name" -type f -perm -u+x | head -1)
[ -n "$bin" ] || { echo "fuzz.sh: no $name in $build (built with -DSTF_FUZZ=ON?)"; exit 1; }
work=$build/fuzz/$name
rm -rf "$work" && mkdir -p "$work/corpus" || exit 1
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    if [ -d "$1" ]; then cp "$1"/* "$work/corpus/"; else cp "$1" "$work/corpus/"; fi
    shift
done
[ $# -gt 0 ] && shift
cd "$work" || exit 1
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "$@" corpus > fuzz.log 2>&1
rc=$?
grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)" fuzz.log
[ $rc -eq 0 ] || tail -60 fuzz.log
echo "fuzz.sh: $name exit $rc"
exit $rc
