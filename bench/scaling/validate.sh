#!/usr/bin/env bash
# bench/scaling/validate.sh: the runs the latency model (bench/scaling/model.py) is checked
# against — sparsetf-dist itself, with --stats-json, on every configuration this machine can
# run: ranks with a core each on this host, and simulated hosts (cluster/sim-cluster.sh).
# Not part of CI.
#
#   bench/scaling/validate.sh local [-b BUILD] [-w WORKDIR] [-o DATA] [-m MODELS]
#   bench/scaling/validate.sh sim LINK... [-n HOSTS] [-b BUILD] [-w WORKDIR] [-o DATA] [-m MODELS]
#
#   local      1 rank (taskset to core 0) and 2 ranks (rank r on core r), 1 and 4 sessions
#   sim LINK   HOSTS simulated hosts (default 3) per LINK (1gbit, 10gbit, 25gbit or
#              RATE,DELAY), one rank per host, rank r pinned to core r mod cores (with one
#              session only one rank computes at a time), 1 session
#   -T T       tensor parallelism: --tp T (local: 2 ranks only; sim: HOSTS ranks), configs
#              named MODEL-WHERE-npN-tT-sS
#   -m MODELS  comma list of: bundled (src/train/models/default-sparse.stf), 17b-slice
#              (17b-sparse q8, 2 layers: WORKDIR/17b-sparse-q8-L2.stf from calibrate.sh
#              compute); default bundled,17b-slice
#   -r REPS    runs per configuration, interleaved (default 3): run-CONFIG.rK.json; the
#              study takes the least disturbed (other jobs may share this machine's cores)
#   -w WORKDIR where the slice and prompt files are (default /var/tmp/sparsetf-scaling; not
#              under /tmp: each simulated host has its own /tmp)
#   -o DATA    output directory (default bench/scaling/data): run-CONFIG.rK.json, CONFIG =
#              MODEL-WHERE-npN-sS
# Each run decodes greedily after a 2-token prompt (so tokens_per_s is the decode's); the
# model is compared with the median per-token latency (latency_ms.median: from a frame's
# start at rank 0 to its token) of single-session runs and with tokens_per_s of the runs
# with 4 sessions.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build work=/var/tmp/sparsetf-scaling data=$here/data models=bundled,17b-slice hosts=3 tp=1 reps=3
die() {
    echo "validate.sh: $*" >&2
    exit 2
}
[ $# -ge 1 ] || die "expected local or sim LINK... (see -h)"
step=$1
shift
links=()
while [ $# -gt 0 ]; do
    case $1 in
    -b) build=$2; shift 2 ;;
    -w) work=$2; shift 2 ;;
    -o) data=$2; shift 2 ;;
    -m) models=$2; shift 2 ;;
    -n) hosts=$2; shift 2 ;;
    -T) tp=$2; shift 2 ;;
    -r) reps=$2; shift 2 ;;
    -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) links+=("$1"); shift ;;
    esac
done
dist=$build/src/tools/sparsetf-dist
[ -x "$dist" ] || die "no $dist (cmake --build $build)"
mkdir -p "$data" "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
prompt="1 22"
for s in 1 4; do
    for _ in $(seq "$s"); do echo "$prompt"; done > "$work/prompts-$s.txt"
done

model_file() {
    case $1 in
    bundled) echo "$root/src/train/models/default-sparse.stf" ;;
    17b-slice)
        [ -f "$work/17b-sparse-q8-L2.stf" ] || die "no $work/17b-sparse-q8-L2.stf (calibrate.sh compute makes it)"
        echo "$work/17b-sparse-q8-L2.stf"
        ;;
    *) die "unknown model $1 (bundled, 17b-slice)" ;;
    esac
}
tokens() { [ "$1" = bundled ] && echo 128 || echo 48; }

# run CONFIG MODEL SESSIONS LAUNCH...: one sparsetf-dist run, stats to DATA/run-CONFIG.rK.json
# (K = $rep)
run() {
    local config=$1.r$rep model=$2 s=$3
    shift 3
    echo "== $config" >&2
    "$@" "${tpflag[@]}" --model "$(model_file "$model")" --prompts-tokens "$work/prompts-$s.txt" \
        --max-tokens "$(tokens "$model")" --temperature 0 --quiet --timeout 120 \
        --stats-json "$data/run-$config.json" > /dev/null
    /usr/bin/python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("   median %.3f ms/token, %.1f tokens/s" % (s["latency_ms"]["median"], s["tokens_per_s"]))' \
        "$data/run-$config.json" >&2
}

IFS=, read -r -a model_list <<< "$models"
tpflag=() tptag=""
if [ "$tp" != 1 ]; then
    tpflag=(--tp "$tp")
    tptag=-t$tp
fi
case $step in
local)
    for rep in $(seq "$reps"); do for m in "${model_list[@]}"; do
        for s in 1 4; do
            [ "$tp" != 1 ] || run "$m-local-np1-s$s" "$m" "$s" taskset -c 0 "$dist"
            run "$m-local-np2$tptag-s$s" "$m" "$s" mpirun -np 2 --bind-to none --mca mpi_yield_when_idle 1 \
                "$here/pin-rank.sh" "$dist"
        done
    done; done
    ;;
sim)
    [ ${#links[@]} -gt 0 ] || die "sim: name at least one link"
    trap '"$root/cluster/sim-cluster.sh" down > /dev/null 2>&1 || true' EXIT
    for link in "${links[@]}"; do
        "$root/cluster/sim-cluster.sh" up "$hosts" --link "$link" >&2
        # shellcheck disable=SC1091
        . /run/sparsetf-sim/env
        for rep in $(seq "$reps"); do for m in "${model_list[@]}"; do
            # shellcheck disable=SC2086
            run "$m-sim-${link/,/-}-np$hosts$tptag-s1" "$m" 1 mpirun -np "$hosts" --hostfile "$STF_SIM_HOSTFILE" \
                $MPIRUN_FLAGS --mca mpi_yield_when_idle 1 "$here/pin-rank.sh" "$dist"
        done; done
        "$root/cluster/sim-cluster.sh" down >&2
    done
    ;;
*) die "unknown step $step (local, sim LINK...)" ;;
esac
