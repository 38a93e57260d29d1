#!/usr/bin/env bash
# dist_tp: tensor parallelism inside pipeline stages (a P x T grid) on N ranks. For each
# case (a model and a --tp choice, or none: the plan chooses): the grid runs, says what it
# chose, gives the same greedy token ids as the single-process runner (--local) and logits
# within 1e-5 x max|logit|; with T > 1 its logits are bitwise those of one stage of the same
# T (np = T), which checks that the pipeline depth P changes no bit; T = 1 is bitwise
# --local. Grids that cannot work fail before loading, listing the valid --tp.
#
# usage: dist_tp.sh GEN DIST SRCDIR WORKDIR N MPIEXEC NUMPROC_FLAG [PREFLAGS...]
set -u
gen=$1 dist=$2 src=$3 work=$4 np=$5 mpiexec=$6 npflag=$7
shift 7
pre=("$@")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$work/np$np" && cd "$work/np$np" || exit 1
fails=0
check() { if [ "$2" -eq 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }
mpi() { local n=$1; shift; timeout 120 "$mpiexec" "$npflag" "$n" "${pre[@]}" "$dist" --timeout 30 "$@"; }

for p in tiny-sparse tiny-sparse-sru tiny-dense; do
    [ -f $p.stf ] || "$gen" --preset $p --out $p.stf > /dev/null || exit 1
done
ln -sf "$src/src/train/models/default-sparse.stf" default-sparse.stf
ln -sf "$src/src/train/models/default-dense.stf" default-dense.stf

# |a - b| <= 1e-5 x max|a| over every logit (both files the same length)
close() {
    /usr/bin/python3 -c '
import sys
import numpy as np
a = np.fromfile(sys.argv[1], dtype="<f4"); b = np.fromfile(sys.argv[2], dtype="<f4")
ok = a.size > 0 and a.shape == b.shape and np.abs(a - b).max() <= 1e-5 * np.abs(a).max()
sys.exit(0 if ok else 1)' "$1" "$2"
}

prompt="1 17 4 99 250 3 8"
# model  tp ("-": chosen)  expected T ("x": must fail)
case $np in
1) cases="tiny-sparse - 1" ;;
2) cases="tiny-sparse 2 2  tiny-sparse 1 1  default-sparse 2 2" ;;
3) cases="tiny-sparse - 1  default-sparse - 1  default-sparse 3 x" ;;
4) cases="tiny-sparse - 2  tiny-sparse 4 4  default-sparse 2 2  default-dense 4 4" ;;
6) cases="tiny-sparse - x  default-sparse - 2  default-dense - 2" ;;
8) cases="tiny-sparse - 4  tiny-sparse 2 x  tiny-sparse-sru - 4  tiny-dense - 4  default-sparse - 2" ;;
*) echo "no cases for np=$np"; exit 1 ;;
esac
set -- $cases
while [ $# -ge 3 ]; do
    model=$1 tp=$2 want=$3
    shift 3
    name="np=$np $model --tp $tp"
    args=(--model $model.stf --prompt-tokens "$prompt" --max-tokens 16 --prefill-chunk 3
          --temperature 0 --quiet)
    tpflag=()
    [ "$tp" != - ] && tpflag=(--tp $tp)
    mpi $np "${args[@]}" "${tpflag[@]}" --plan > plan.txt 2> plan.err
    rc=$?
    if [ "$want" = x ]; then
        [ $rc -ne 0 ] && grep -q "valid --tp\|without an idle rank" plan.err
        check "$name: fails before loading, naming the valid choices" $?
        head -n 1 plan.err
        continue
    fi
    grep -q "x $want tensor-parallel rank\|(T = $want" plan.txt
    check "$name: the plan picks T = $want" $?
    [ -f local_$model.bin ] ||
        "$dist" --local "${args[@]}" --dump-logits local_$model.bin > local_$model.txt
    mpi $np "${args[@]}" "${tpflag[@]}" --dump-logits out.bin --stats-json stats.json > out.txt
    check "$name: run" $?
    cmp -s local_$model.txt out.txt
    check "$name: same token ids as --local" $?
    if [ "$want" = 1 ]; then
        cmp -s local_$model.bin out.bin
        check "$name: bitwise the logits of --local" $?
    else
        close local_$model.bin out.bin
        check "$name: logits within 1e-5 of --local" $?
        if [ $np != $want ]; then
            [ -f stage_${model}_$want.bin ] ||
                mpi $want "${args[@]}" --tp $want --dump-logits stage_${model}_$want.bin > /dev/null
            cmp -s stage_${model}_$want.bin out.bin
            check "$name: bitwise the logits of one stage of T = $want" $?
        fi
        grep -q '"tp_collectives": [1-9]' stats.json
        check "$name: stats count collectives" $?
    fi
done
exit $((fails > 0))
