#!/usr/bin/env bash
# startup_error: a start-up error that ends the whole job reaches the user on every run.
# Every rank must agree on the error before any rank exits (a rank that exits non-zero makes
# mpirun kill the others, often before rank 0 has printed); a command-line error too. Each
# case runs 20 times under mpirun and must print its message every time, and exit non-zero.
#
# usage: startup_error.sh DIST MODEL MPIEXEC NUMPROC_FLAG [PREFLAGS...]
set -u
dist=$(realpath "$1") model=$(realpath "$2") mpiexec=$3 npflag=$4
shift 4
pre=("$@")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
# the plan's row of rank 0: rank, stage, tp, layers, count
layers=$("$dist" --model "$model" --plan --ranks 1 | awk '$1 == "0" && $5 ~ /^[0-9]+$/ {print $5}')
fails=0
# case NAME RANKS NEEDLE [sparsetf-dist args]
case_() {
    local name=$1 np=$2 needle=$3
    shift 3
    local seen=0 i rc
    for i in $(seq 1 20); do
        timeout 60 "$mpiexec" "$npflag" "$np" "${pre[@]}" "$dist" "$@" > /dev/null 2> err.txt
        rc=$?
        [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q -- "$needle" err.txt && seen=$((seen + 1))
    done
    if [ $seen -eq 20 ]; then
        echo "ok   $name: message seen 20/20: $(grep -m1 -- "$needle" err.txt)"
    else
        echo "FAIL $name: message seen $seen/20; last stderr:"
        sed 's/^/    /' err.txt | head -10
        fails=$((fails + 1))
    fi
}
work=$(mktemp -d) && cd "$work" || exit 1
trap 'rm -rf "$work"' EXIT
# layers + 3 ranks: too many for a pipeline, and a prime count for the bundled model (no grid)
case_ "too many ranks" $((layers + 3)) "without an idle rank" --model "$model" \
    --prompt-tokens "1 2" --max-tokens 4
case_ "bad option value" 5 "--max-tokens expects a non-negative integer" --model "$model" \
    -p x --max-tokens abc
case_ "missing model" 3 "no-such.stf" --model no-such.stf --prompt-tokens "1 2" --max-tokens 4
echo "startup_error: $fails failure(s)"
[ $fails -eq 0 ]
