#!/usr/bin/env bash
# cluster/node-check.sh: can every host of a hostfile run a rank, and reach the others?
#
#   cluster/node-check.sh -f HOSTFILE [-b BUILD_DIR] [-m MODEL]
#
#   -f HOSTFILE  the Open MPI hostfile to check (as for launch/hostfile.sh)
#   -b BUILD     build directory with src/tools/sparsetf-dist and sparsetf-gen, at the same
#                path on every host (default: $STF_BUILD_DIR, else the build/ next to
#                cluster/; without one, the installed programs, else those on PATH)
#   -m MODEL     run step 2 on this model file (same path on every host) instead of a tiny
#                test model written to each host's /tmp ($NODE_CHECK_TMP to change it)
#   -h           this text
#
# 1. one process per host prints its host name and `sparsetf-dist --version` (the binary
#    exists and starts there);
# 2. one rank per slot (at most 64) runs a 4-token pipeline job on the model: every rank
#    joins MPI and frames pass every neighbour in the ring, so a host that cannot reach the
#    others makes this step fail or time out. Without -m, every host first writes the same
#    tiny model (sparsetf-gen, deterministic, one layer per stage) under a name unique to
#    this check, and removes it at the end.
# Extra mpirun flags (interfaces, a remote-shell agent) come from $MPIRUN_FLAGS, as for
# launch/hostfile.sh. Exits non-zero, naming the step, on the first failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hostfile="" build=${STF_BUILD_DIR:-$here/../build} model=""
die() {
    echo "node-check.sh: $*" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    -f | -b | -m)
        [ $# -ge 2 ] || die "$1 needs a value (see -h)"
        case $1 in -f) hostfile=$2 ;; -b) build=$2 ;; -m) model=$2 ;; esac
        shift 2
        ;;
    -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) die "unknown option $1 (see -h)" ;;
    esac
done
[ -n "$hostfile" ] || die "-f HOSTFILE is required (see -h)"
[ -r "$hostfile" ] || die "cannot read the hostfile $hostfile"
tools=$build/src/tools
[ -x "$tools/sparsetf-dist" ] || tools=$here/../../../bin # installed: PREFIX/share/sparsetf/cluster
[ -x "$tools/sparsetf-dist" ] || tools=$(dirname "$(command -v sparsetf-dist || echo /nonexistent/x)")
[ -x "$tools/sparsetf-dist" ] || die "no sparsetf-dist in $build/src/tools (pass -b BUILD_DIR), none installed, none on PATH"
tools=$(cd "$tools" && pwd)
dist=$tools/sparsetf-dist gen=$tools/sparsetf-gen
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# shellcheck disable=SC2206 # MPIRUN_FLAGS is a list of words
user_flags=(${MPIRUN_FLAGS:-})
hosts=$(grep -v '^\s*#' "$hostfile" | awk 'NF {print $1}' | sort -u | wc -l)
echo "node-check: $hosts host(s) in $hostfile"
echo "== step 1: every host starts sparsetf-dist"
if ! timeout 60 mpirun --hostfile "$hostfile" --map-by ppr:1:node --oversubscribe "${user_flags[@]}" \
    bash -c "echo \"\$(hostname): \$('$dist' --version)\""; then
    echo "node-check: FAILED step 1 (a host is unreachable or lacks $dist;" \
        "a host that needs an interface or agent setting: MPIRUN_FLAGS)" >&2
    exit 1
fi
echo "== step 2: every rank joins one pipeline job (frames pass every neighbour in the ring)"
slots=$(grep -v '^\s*#' "$hostfile" | awk 'NF {n = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) {split($i, a, "="); n = a[2]} s += n} END {print s}')
[ "$slots" -gt 64 ] && slots=64
made=""
if [ -z "$model" ]; then
    # the same deterministic bytes on every host at one path unique to this check; each host
    # writes its own temporary name and renames it, so hosts sharing /tmp do not collide
    tmp=${NODE_CHECK_TMP:-/tmp}
    model=$tmp/sparsetf-node-check.$$.$(date +%s).stf
    made=$model
    layers=$((slots > 1 ? slots - 1 : 1))
    if ! timeout 120 mpirun --hostfile "$hostfile" --map-by ppr:1:node --oversubscribe \
        "${user_flags[@]}" bash -c \
        "mine=$model.\$(hostname).\$\$ &&
         printf 'n_layers = $layers\n' > \$mine.cfg &&
         { '$gen' --preset tiny-sparse --config \$mine.cfg --out \$mine > /dev/null 2> \$mine.log ||
           { echo \"\$(hostname): sparsetf-gen failed:\" >&2; cat \$mine.log >&2; exit 1; }; } &&
         rm -f \$mine.cfg \$mine.log && mv -f \$mine $model"; then
        echo "node-check: FAILED step 2 (could not write a test model $model on every host)" >&2
        exit 1
    fi
fi
bind=(--bind-to none)
[[ ${MPIRUN_FLAGS:-} == *--bind-to* ]] && bind=()
rc=0
if ! timeout 120 mpirun --hostfile "$hostfile" -n "$slots" --oversubscribe "${bind[@]}" \
    --mca mpi_yield_when_idle 1 "${user_flags[@]}" "$dist" --model "$model" \
    --prompt-tokens "1 2 3" --max-tokens 4 --timeout 30; then
    echo "node-check: FAILED step 2 (ranks could not start or reach each other; check" \
        "firewalls and the interface: MPIRUN_FLAGS=\"--mca btl_tcp_if_include NET" \
        "--mca oob_tcp_if_include NET\")" >&2
    rc=1
fi
if [ -n "$made" ]; then
    timeout 60 mpirun --hostfile "$hostfile" --map-by ppr:1:node --oversubscribe \
        "${user_flags[@]}" rm -f "$made" || true
fi
[ $rc -eq 0 ] && echo "node-check: ok"
exit $rc
