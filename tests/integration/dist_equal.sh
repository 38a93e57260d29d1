#!/usr/bin/env bash
# dist_equal: `mpirun -np N sparsetf-dist` gives bitwise the same token ids and logits as the
# single-process runner (--local), for one prompt (greedy and sampled) and for several
# concurrent sessions (each session as if alone, with seed + index), also with fewer cache
# slots than sessions (eviction and recompute) — for a Scaling Transformer and for a
# Terraformer (two streams per position; LSH caches of P = 24 that drop D = 8, so the
# longer sessions pass through drops, and a recomputed session must redo them exactly) —
# and, when $STF_TRAINED_TF names the trained Terraformer (src/train/models), for it too (np <= 5), with
# prompts of 200+ tokens so that every session passes its LSH drop at P = 192.
#
# usage: dist_equal.sh GEN DIST WORKDIR N MPIEXEC NUMPROC_FLAG [PREFLAGS...]
set -u
gen=$1 dist=$2 work=$3 np=$4 mpiexec=$5 npflag=$6
shift 6
pre=("$@")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$work/np$np" && cd "$work/np$np" || exit 1
fails=0
check() { if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }
mpi() { timeout 120 "$mpiexec" "$npflag" "$np" "${pre[@]}" "$dist" --timeout 30 --quiet "$@"; }

# 8 layers so that up to 9 ranks can share them
printf 'n_layers = 8\n' > l8.cfg
"$gen" --preset tiny-sparse-sru --config l8.cfg --out tiny8.stf > /dev/null || exit 1
"$gen" --preset tiny-terraformer --config l8.cfg --out tf8.stf > /dev/null || exit 1

# per session, in index order: its "[i] " lines joined with spaces
per_session() {
    awk -v n="$2" '
        match($0, /^\[[0-9]+\] /) {
            i = substr($0, 2, RLENGTH - 3) + 0; rest = substr($0, RLENGTH + 1)
            if (rest != "") a[i] = (a[i] == "" ? rest : a[i] " " rest)
            next
        }
        { bad = 1 }
        END { for (i = 0; i < n; i++) print a[i]; exit bad }' "$1"
}

models=(tiny8 tf8)
# (its 4 blocks share at most 5 ranks: np 8 runs the generated models only)
if [ -n "${STF_TRAINED_TF:-}" ] && [ "$np" -le 5 ]; then
    ln -sf "$STF_TRAINED_TF" trained.stf
    models+=(trained)
fi

# prompts.txt for a model: 5 sessions (and an empty line, skipped); the trained model's are
# long, random ids from a fixed seed (its LSH caches hold P = 192 and drop D = 64)
make_prompts() {
    if [ "$1" = trained ]; then
        awk 'BEGIN { srand(11); for (s = 0; s < 5; s++) { n = 190 + 7 * s; line = "1";
                     for (i = 1; i < n; i++) line = line " " (3 + int(rand() * 7990));
                     print line; if (s == 1) print "" } }'
    else
        printf '1 5 9 13\n1 7\n\n1 2 3 4 5 6 7 8 9 10 11 12\n1 100 200\n1 42\n'
    fi
}

for model in "${models[@]}"; do
prompt="1 17 4 99 250 3 8"
for mode in greedy sampled; do
    args=(--model $model.stf --prompt-tokens "$prompt" --max-tokens 24 --prefill-chunk 3)
    [ $mode = greedy ] && args+=(--temperature 0)
    "$dist" --local "${args[@]}" --quiet --dump-logits ref_$mode.bin > ref_$mode.txt
    check "np=$np $model $mode: reference run" $?
    mpi "${args[@]}" --dump-logits out_$mode.bin --stats-json stats_$mode.json > out_$mode.txt
    check "np=$np $model $mode: pipeline run" $?
    cmp -s ref_$mode.txt out_$mode.txt; check "np=$np $model $mode: same token ids" $?
    cmp -s ref_$mode.bin out_$mode.bin; check "np=$np $model $mode: bitwise same logits" $?
    grep -q '"latency_ms"' stats_$mode.json; check "np=$np $model $mode: stats json" $?
done

# several sessions: each must equal its own single-process run with seed 42 + index
make_prompts $model > prompts.txt
i=0
: > ref_sessions.txt
while read -r line; do
    [ -z "$line" ] && continue
    "$dist" --local --model $model.stf --prompt-tokens "$line" --max-tokens 20 --seed $((42 + i)) \
        --quiet --dump-logits ref_s.bin.$i >> ref_sessions.txt
    i=$((i + 1))
done < prompts.txt
for slots in 0 2; do
    extra=()
    [ $slots -gt 0 ] && extra=(--slots $slots)
    # the prompts come through a pipe: rank 0 reads them once
    mpi --model $model.stf --prompts-tokens /dev/stdin --max-tokens 20 "${extra[@]}" \
        --dump-logits out_s$slots.bin < prompts.txt > out_s$slots.txt 2> err_s$slots.txt
    check "np=$np $model sessions (slots=$slots): run" $?
    per_session out_s$slots.txt 5 > joined_s$slots.txt
    check "np=$np $model sessions (slots=$slots): every line has a session prefix" $?
    cmp -s ref_sessions.txt joined_s$slots.txt
    check "np=$np $model sessions (slots=$slots): same ids" $?
    # streamed: the sessions' tokens interleave (printed at the end, there would be 5 lines)
    [ "$(wc -l < out_s$slots.txt)" -gt 5 ]
    check "np=$np $model sessions (slots=$slots): output streamed as produced" $?
    same=0
    for j in 0 1 2 3 4; do cmp -s ref_s.bin.$j out_s$slots.bin.$j || same=1; done
    check "np=$np $model sessions (slots=$slots): bitwise same logits" $same
done
grep -q "evicting session" err_s2.txt; check "np=$np $model sessions: eviction reported" $?
done

echo "dist_equal np=$np: $fails failure(s)"
[ $fails -eq 0 ]
