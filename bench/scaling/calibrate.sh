#!/usr/bin/env bash
# bench/scaling/calibrate.sh: the measurements behind the latency model (bench/scaling/model.py)
# and the study docs/scaling.md. Not part of CI: the compute step writes ~5 GB of model slices.
#
#   bench/scaling/calibrate.sh compute [-b BUILD] [-w WORKDIR] [-o DATA]
#   bench/scaling/calibrate.sh net LINK... [-b BUILD] [-o DATA]     (root: simulated hosts)
#   bench/scaling/calibrate.sh net-local [-b BUILD] [-o DATA]
#
#   compute    per-part and per-kernel compute time per token, one thread (one rank per
#              core), on the engine's own path (sparsetf-bench --model --clock cpu: CPU time,
#              so other jobs on this machine do not count): a 2-layer slice of
#              17b-sparse q8, a 1-layer slice of 17b-dense q8 (both made with sparsetf-gen
#              --layers in WORKDIR, default /var/tmp/sparsetf-scaling, kept for validate.sh) and
#              the bundled sparse model; 3 runs of each, interleaved, as DATA/compute-NAME.rK.jsonl
#              (the model takes the least disturbed: the smallest whole-token time).
#   net LINK   for each LINK (1gbit, 10gbit, 25gbit or RATE,DELAY as cluster/sim-cluster.sh
#              takes it): 4 simulated hosts, sparsetf-netbench over 2 and 4 of them (ring
#              hops for the frame sizes a token sends, idle and sleeping receivers;
#              allgathers over 2 and 4 ranks). Writes DATA/net-LINK-npK.json.
#   net-local  the same on this host through shared memory (2, 4 and 8 ranks, the latter
#              oversubscribed), for runs on one machine. Writes DATA/net-local-npK.json.
#   -b BUILD   build directory (default: the build/ next to bench/)
#   -o DATA    output directory (default bench/scaling/data)
# Run each step on an otherwise idle machine: the numbers are the model's inputs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build work=/var/tmp/sparsetf-scaling data=$here/data
die() {
    echo "calibrate.sh: $*" >&2
    exit 2
}
[ $# -ge 1 ] || die "expected compute, net LINK... or net-local (see -h)"
step=$1
shift
links=()
while [ $# -gt 0 ]; do
    case $1 in
    -b) build=$2; shift 2 ;;
    -w) work=$2; shift 2 ;;
    -o) data=$2; shift 2 ;;
    -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) links+=("$1"); shift ;;
    esac
done
tools=$build/src/tools
[ -x "$tools/sparsetf-netbench" ] || die "no $tools/sparsetf-netbench (cmake --build $build)"
mkdir -p "$data"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# frame sizes a token sends: 17b (d = 9216) and the bundled model (d = 192) d-vector frames
# (bytes as sparsetf-dist's --stats-json counts them), plus a sweep for the fit
sizes=64,776,4096,16384,36880,73760,262144
# allgather contributions at 17b: d/T floats (sparse QKV, T = 2, 4, 8) and d floats (FF)
gathers=4608,9216,18432,36864

slice() { # NAME PRESET LAYERS: a q8 slice in WORKDIR
    local f=$work/$1.stf
    [ -f "$f" ] || "$tools/sparsetf-gen" --preset "$2" --dtype q8 --layers "$3" --out "$f" >&2
    echo "$f"
}

case $step in
compute)
    mkdir -p "$work"
    # shapes.json: each model's config and weight bytes per layer, embedding and head
    shape() { # NAME FILE [PRESET]: the file's tensors, the preset's (whole model's) config
        "$tools/sparsetf-info" "$2" > "$work/info.txt"
        if [ $# -ge 3 ]; then
            "$tools/sparsetf-gen" --preset "$3" --dtype q8 --print-config --out /dev/null
        else
            sed -n '/^config/,/^$/p' "$work/info.txt"
        fi > "$work/config.txt"
        /usr/bin/python3 "$here/model.py" --write-shape "$1" "$work/info.txt" "$work/config.txt" >&2
    }
    shape bundled "$root/src/train/models/default-sparse.stf"
    for spec in "17b-sparse-q8-L2 17b-sparse 2" "17b-dense-q8-L1 17b-dense 1"; do
        set -- $spec
        f=$(slice "$1" "$2" "$3")
        shape "$1" "$f"
        shape "${1%-L*}" "$f" "$2"
    done
    for rep in 1 2 3; do
        for name in 17b-sparse-q8-L2 17b-dense-q8-L1; do
            echo "== $name, run $rep" >&2
            "$tools/sparsetf-bench" --model "$work/$name.stf" --tokens 64 --warmup 4 --threads 1 \
                --prefault --clock cpu --json "$data/compute-$name.r$rep.jsonl"
        done
        # wall clock here: reading a thread's CPU clock is a system call, and the bundled
        # model's 0.3 ms tokens time ~80 parts and kernels each
        "$tools/sparsetf-bench" --model "$root/src/train/models/default-sparse.stf" --tokens 200 \
            --prefault --clock wall --warmup 10 --threads 1 --json "$data/compute-default-sparse.r$rep.jsonl"
    done
    ;;
net)
    [ ${#links[@]} -gt 0 ] || die "net: name at least one link (1gbit, 10gbit, 25gbit, RATE,DELAY)"
    trap '"$root/cluster/sim-cluster.sh" down > /dev/null 2>&1 || true' EXIT
    for link in "${links[@]}"; do
        "$root/cluster/sim-cluster.sh" up 4 --link "$link" >&2
        # shellcheck disable=SC1091
        . /run/sparsetf-sim/env
        for np in 2 4; do
            echo "== $link, $np hosts" >&2
            # shellcheck disable=SC2086
            mpirun -np "$np" --hostfile "$STF_SIM_HOSTFILE" $MPIRUN_FLAGS --mca mpi_yield_when_idle 1 \
                "$tools/sparsetf-netbench" --sizes "$sizes" --gather-sizes "$gathers" \
                --think-us 0,5000 --json "$data/net-${link/,/-}-np$np.json"
        done
        "$root/cluster/sim-cluster.sh" down >&2
    done
    ;;
net-local)
    for np in 2 4 8; do
        echo "== this host, $np ranks" >&2
        mpirun -np "$np" --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 \
            "$tools/sparsetf-netbench" --sizes "$sizes" --gather-sizes "$gathers" \
            --think-us 0,5000 --json "$data/net-local-np$np.json"
    done
    ;;
*) die "unknown step $step (compute, net LINK..., net-local)" ;;
esac
