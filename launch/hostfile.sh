#!/usr/bin/env bash
# launch/hostfile.sh: run sparsetf-dist across the hosts of an Open MPI hostfile.
#
#   launch/hostfile.sh -f HOSTFILE [-n RANKS] [-t THREADS] [-b BUILD_DIR] -- SPARSETF_DIST_ARGS
#   e.g. launch/hostfile.sh -f cluster/hosts.example -n 8 -- \
#            --model /shared/models/17b-sparse.stf --prompt "..."
#
#   -f HOSTFILE  Open MPI hostfile (`host slots=K` lines; cluster/hosts.example)
#   -n RANKS     ranks to start (default: every slot of the hostfile)
#   -t THREADS   threads per rank (default 1); each rank gets THREADS cores
#   -r N         --restart N: after a failure run the job again, up to N times; needs
#                sparsetf-dist's --journal DIR, whose rerun replays the finished sessions
#                and resumes the others (launch/restart.sh: stdout is held until an
#                attempt ends; docs/reliability.md)
#   -b BUILD     build directory holding src/tools/sparsetf-dist (default: $STF_BUILD_DIR,
#                else the build/ next to launch/); without a build directory, the
#                installed sparsetf-dist (`cmake --install`), else the one on PATH
#   -h           this text
#
# Every host needs the binary and the model file at the same paths (a shared or copied file
# system). Each rank maps only its own layers, so a host needs memory for its ranks' share
# (`sparsetf-dist --model M --plan --ranks N`). Ranks are placed by slot in hostfile order,
# so rank 0 (embedding, head, sampler) lands on the first host. Check the hosts first with
# cluster/node-check.sh. Placement: each rank is bound to THREADS cores of its host; a
# hostfile naming only this machine (cluster/hosts.localhost) gets launch/local.sh's rules
# instead (no binding, oversubscription when ranks x threads exceed the cores). Extra mpirun
# flags come from $MPIRUN_FLAGS (e.g. --mca btl_tcp_if_include eth0); a --bind-to or
# --map-by there replaces the placement above. Runs as root too (the root allowances are set).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hostfile="" restart="" n="" threads=1 build=${STF_BUILD_DIR:-$here/../build}
usage() {
    awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"
    exit "${1:-0}"
}
die() {
    echo "hostfile.sh: $*" >&2
    exit 2
}
# value OPTION COUNT: the option's value must be there and not be another option
value() { [ "$2" -ge 2 ] || die "$1 needs a value (see -h)"; }
while [ $# -gt 0 ]; do
    case $1 in
    -f) value "$1" $#; hostfile=$2; shift 2 ;;
    -n) value "$1" $#; n=$2; shift 2 ;;
    -t) value "$1" $#; threads=$2; shift 2 ;;
    -b) value "$1" $#; build=$2; shift 2 ;;
    -r | --restart) value "$1" $#; restart=$2; shift 2 ;;
    -h | --help) usage 0 ;;
    --) shift; break ;;
    *) die "unknown option $1 (see -h; sparsetf-dist options go after --)" ;;
    esac
done
[ -n "$hostfile" ] || die "-f HOSTFILE is required (see -h)"
[ -r "$hostfile" ] || die "cannot read the hostfile $hostfile"
[ -z "$n" ] || [[ $n =~ ^[1-9][0-9]*$ ]] || die "-n expects a number of ranks ≥ 1, got '$n'"
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "-t expects a number of threads ≥ 1, got '$threads'"
[ -z "$restart" ] || [[ $restart =~ ^[0-9]+$ ]] || die "--restart expects a number of restarts ≥ 0, got '$restart'"
dist=$build/src/tools/sparsetf-dist
[ -x "$dist" ] || dist=$here/../../../bin/sparsetf-dist # installed: PREFIX/share/sparsetf/launch
[ -x "$dist" ] || dist=$(command -v sparsetf-dist || true)
[ -n "$dist" ] || die "no sparsetf-dist in $build/src/tools (cmake --build $build, or -b BUILD_DIR), none installed, none on PATH"
dist=$(cd "$(dirname "$dist")" && pwd)/$(basename "$dist")

flags=(--hostfile "$hostfile" --mca mpi_yield_when_idle 1
    -x OPENBLAS_NUM_THREADS="$threads" -x OMP_NUM_THREADS="$threads")
[ -n "$n" ] && flags+=(-n "$n")
user_flags=${MPIRUN_FLAGS:-}
if [[ $user_flags == *--bind-to* || $user_flags == *--map-by* ]]; then
    : # the user's placement
elif ! grep -v '^\s*#' "$hostfile" | awk 'NF {print $1}' |
    grep -qvxE "localhost|127\.0\.0\.1|$(hostname)|$(hostname -s 2> /dev/null || hostname)"; then
    # only this machine: launch/local.sh's rules (a bound rank cannot escape a busy core)
    flags+=(--bind-to none)
    slots=$(grep -v '^\s*#' "$hostfile" | awk 'NF {k = 1; for (i = 2; i <= NF; i++)
        if ($i ~ /^slots=/) {split($i, a, "="); k = a[2]} s += k} END {print s + 0}')
    ranks=${n:-$slots}
    if [ $((ranks * threads)) -gt "$(nproc)" ] || [ "$ranks" -gt "$slots" ]; then
        flags+=(--oversubscribe)
    fi
elif [ "$threads" -gt 1 ]; then
    flags+=(--map-by "slot:PE=$threads" --bind-to core)
else
    flags+=(--map-by slot --bind-to core)
fi
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
launcher=(mpirun)
[ -z "$restart" ] || launcher=("$here/restart.sh" "$restart" -- mpirun)
# shellcheck disable=SC2086 # MPIRUN_FLAGS is a list of words
exec "${launcher[@]}" "${flags[@]}" $user_flags "$dist" --threads "$threads" "$@"
