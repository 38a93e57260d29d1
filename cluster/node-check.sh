#!/usr/bin/env bash
# cluster/node-check.sh: can every host of a hostfile run a rank, and reach the others?
#
#   cluster/node-check.sh -f cluster/hosts.example [-b BUILD_DIR]
#
# 1. one process per host prints its host name and `sparsetf-dist --version` (the binary
#    exists and starts there);
# 2. one rank per slot runs `sparsetf-dist --plan` under MPI, which initialises MPI across
#    every host (MPI_Init, a communicator dup and a broadcast-free plan on rank 0): a host
#    that cannot reach the others makes this step fail or time out.
# Exits non-zero, naming the step, on the first failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hostfile="" build=${STF_BUILD_DIR:-$here/../build} model=""
while [ $# -gt 0 ]; do
    case $1 in
    -f) hostfile=$2; shift 2 ;;
    -b) build=$2; shift 2 ;;
    -m) model=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "node-check.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -n "$hostfile" ] || { echo "node-check.sh: -f HOSTFILE is required" >&2; exit 2; }
dist=$build/src/tools/sparsetf-dist
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
hosts=$(grep -v '^\s*#' "$hostfile" | awk 'NF {print $1}' | sort -u | wc -l)
echo "node-check: $hosts host(s) in $hostfile"
echo "== step 1: every host starts sparsetf-dist"
if ! timeout 60 mpirun --hostfile "$hostfile" --map-by ppr:1:node --oversubscribe \
    bash -c "echo \"\$(hostname): \$('$dist' --version)\""; then
    echo "node-check: FAILED step 1 (a host is unreachable or lacks $dist)" >&2
    exit 1
fi
echo "== step 2: every rank joins one pipeline job (frames pass every neighbour in the ring)"
slots=$(grep -v '^\s*#' "$hostfile" | awk 'NF {n = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) {split($i, a, "="); n = a[2]} s += n} END {print s}')
[ "$slots" -gt 64 ] && slots=64
if [ -z "$model" ]; then
    # the same deterministic bytes on every host, at the same path
    model=/tmp/sparsetf-node-check.stf
    printf 'n_layers = %d\n' "$((slots > 1 ? slots - 1 : 1))" > /tmp/sparsetf-node-check.cfg
    if ! timeout 120 mpirun --hostfile "$hostfile" --map-by ppr:1:node --oversubscribe bash -c \
        "printf 'n_layers = %d\n' $((slots > 1 ? slots - 1 : 1)) > /tmp/sparsetf-node-check.cfg &&
         '$build/src/tools/sparsetf-gen' --preset tiny-sparse --config /tmp/sparsetf-node-check.cfg \
         --out $model > /dev/null"; then
        echo "node-check: FAILED step 2 (could not write a test model on every host)" >&2
        exit 1
    fi
fi
if ! timeout 120 mpirun --hostfile "$hostfile" -n "$slots" --oversubscribe --bind-to none \
    --mca mpi_yield_when_idle 1 "$dist" --model "$model" --prompt-tokens "1 2 3" \
    --max-tokens 4 --timeout 30; then
    echo "node-check: FAILED step 2 (ranks could not start or reach each other; check" \
        "firewalls and --mca btl_tcp_if_include)" >&2
    exit 1
fi
echo "node-check: ok"
