#!/usr/bin/env bash
# dist_threads: the number of compute threads per rank (--threads) does not change a session's
# tokens or logits — bitwise, end to end — on the shipped trained models (dense, sparse,
# Terraformer), in f32 and in q8 (quantized here), for one process and for 2 ranks. The
# kernels split work between threads by output rows only, never a sum; this checks it where
# the split really happens (the trained models' head and FF are large enough for 2 threads).
#
# usage: dist_threads.sh QUANTIZE DIST MODELS_DIR WORKDIR MPIEXEC NUMPROC_FLAG [PREFLAGS...]
set -u
quantize=$1 dist=$2 models=$3 work=$4 mpiexec=$5 npflag=$6
shift 6
pre=("$@")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$work" && cd "$work" || exit 1
fails=0
check() { if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }

files=()
for m in dense sparse terraformer; do
    [ -f "$models/default-$m.stf" ] || { echo "FAIL no $models/default-$m.stf"; exit 1; }
    files+=("$models/default-$m.stf")
done
"$quantize" --type q8 "$models/default-sparse.stf" sparse-q8.stf > /dev/null
check "quantize the sparse model to q8" $?
files+=(sparse-q8.stf)

args=(--prompt "It is a truth universally acknowledged" --max-tokens 12 --seed 5 --quiet)
for f in "${files[@]}"; do
    name=$(basename "$f" .stf)
    for t in 1 2; do
        "$dist" --local --model "$f" "${args[@]}" --threads $t --dump-logits $name-t$t.bin \
            > $name-t$t.txt
        check "$name --local --threads $t" $?
    done
    cmp -s $name-t1.txt $name-t2.txt; check "$name: same tokens with 1 and 2 threads" $?
    cmp -s $name-t1.bin $name-t2.bin; check "$name: bitwise same logits with 1 and 2 threads" $?
    timeout 120 "$mpiexec" "$npflag" 2 "${pre[@]}" "$dist" --timeout 30 --model "$f" "${args[@]}" \
        --threads 2 --dump-logits $name-np2.bin > $name-np2.txt
    check "$name: 2 ranks x 2 threads" $?
    cmp -s $name-t1.bin $name-np2.bin; check "$name: 2 ranks x 2 threads bitwise equal to 1 x 1" $?
done
[ "$fails" -eq 0 ] && echo "dist_threads: all passed" || echo "dist_threads: $fails failed"
exit $((fails > 0))
