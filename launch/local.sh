#!/usr/bin/env bash
# launch/local.sh: run sparsetf-dist as N ranks on this host with the right mpirun flags.
#
#   launch/local.sh [-n RANKS] [-t THREADS] [-b BUILD_DIR] -- SPARSETF_DIST_ARGS
#   e.g. launch/local.sh -n 8 -- --model M --prompt-tokens "1 2 3"
#
#   -n RANKS     ranks (default 1); a pipeline needs at most one per layer plus rank 0
#   -t THREADS   compute threads per rank (default 1)
#   -r N         --restart N: after a failure run the job again, up to N times; needs
#                sparsetf-dist's --journal DIR, whose rerun replays the finished sessions
#                and resumes the others (launch/restart.sh: stdout is held until an
#                attempt ends; docs/reliability.md)
#   -b BUILD     build directory holding src/tools/sparsetf-dist (default: $STF_BUILD_DIR,
#                else the build/ next to launch/); without a build directory, the
#                installed sparsetf-dist (`cmake --install`), else the one on PATH
#   -h           this text
#
# Sets: the root allowances when run as root; --oversubscribe when ranks x threads exceed
# the cores; no core binding (on a shared or oversubscribed host a bound rank cannot escape
# a busy core: measured 36 ms vs 20 ms per token for 800m-sparse on 2 ranks; on a dedicated
# host try MPIRUN_FLAGS="--bind-to core"); mpi_yield_when_idle so idle ranks give their core
# away; OPENBLAS_NUM_THREADS and --threads per rank; the shared-memory single-copy mechanism
# off (CMA often fails in containers). Extra mpirun flags: $MPIRUN_FLAGS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
restart="" n=1 threads=1 build=${STF_BUILD_DIR:-$here/../build}
usage() {
    awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"
    exit "${1:-0}"
}
die() {
    echo "local.sh: $*" >&2
    exit 2
}
# value OPTION COUNT: the option's value must be there
value() { [ "$2" -ge 2 ] || die "$1 needs a value (see -h)"; }
while [ $# -gt 0 ]; do
    case $1 in
    -n) value "$1" $#; n=$2; shift 2 ;;
    -t) value "$1" $#; threads=$2; shift 2 ;;
    -b) value "$1" $#; build=$2; shift 2 ;;
    -r | --restart) value "$1" $#; restart=$2; shift 2 ;;
    -h | --help) usage 0 ;;
    --) shift; break ;;
    *) die "unknown option $1 (see -h; sparsetf-dist options go after --)" ;;
    esac
done
[[ $n =~ ^[1-9][0-9]*$ ]] || die "-n expects a number of ranks ≥ 1, got '$n'"
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "-t expects a number of threads ≥ 1, got '$threads'"
[ -z "$restart" ] || [[ $restart =~ ^[0-9]+$ ]] || die "--restart expects a number of restarts ≥ 0, got '$restart'"
dist=$build/src/tools/sparsetf-dist
[ -x "$dist" ] || dist=$here/../../../bin/sparsetf-dist # installed: PREFIX/share/sparsetf/launch
[ -x "$dist" ] || dist=$(command -v sparsetf-dist || true)
[ -n "$dist" ] || die "no sparsetf-dist in $build/src/tools (cmake --build $build, or -b BUILD_DIR), none installed, none on PATH"
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
launcher=(mpirun)
[ -z "$restart" ] || launcher=("$here/restart.sh" "$restart" -- mpirun)
# shellcheck disable=SC2086
exec "${launcher[@]}" "${flags[@]}" ${MPIRUN_FLAGS:-} "$dist" --threads "$threads" "$@"
