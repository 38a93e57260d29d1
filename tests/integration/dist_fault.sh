#!/usr/bin/env bash
# dist_fault: a killed, stalled or misbehaving rank ends the whole job within seconds, with a
# message naming the rank and the cause. Uses the --fault-inject testing hook (pipeline/fault.h).
#
# usage: dist_fault.sh GEN DIST WORKDIR MPIEXEC NUMPROC_FLAG [PREFLAGS...]
set -u
gen=$1 dist=$2 work=$3 mpiexec=$4 npflag=$5
shift 5
pre=("$@")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$work" && cd "$work" || exit 1
fails=0
printf 'n_layers = 8\n' > l8.cfg
"$gen" --preset tiny-sparse-sru --config l8.cfg --out tiny8.stf > /dev/null || exit 1
"$gen" --preset tiny-terraformer --config l8.cfg --out tf8.stf > /dev/null || exit 1
model=tiny8

# expect NAME SPEC NEEDLE...: nonzero exit within 20 s, stderr containing every needle
expect() {
    local name=$1 spec=$2
    shift 2
    local t0 t1 rc
    t0=$(date +%s)
    timeout 60 "$mpiexec" "$npflag" 4 "${pre[@]}" "$dist" --model $model.stf \
        --prompt-tokens "1 5 9 13" --max-tokens 40 --quiet --timeout 3 \
        --fault-inject "$spec" > out.txt 2> err.txt
    rc=$?
    t1=$(date +%s)
    local ok=1
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || ok=0
    [ $((t1 - t0)) -le 20 ] || ok=0
    for needle in "$@"; do grep -q -- "$needle" err.txt || ok=0; done
    if [ $ok -eq 1 ]; then
        echo "ok   $name (exit $rc after $((t1 - t0)) s)"
    else
        echo "FAIL $name (exit $rc after $((t1 - t0)) s); stderr:"
        sed 's/^/    /' err.txt | head -20
        fails=$((fails + 1))
    fi
}

expect "corrupt frame" corrupt-frame=1,after=3 "frame from rank 1: checksum mismatch" \
    "error on rank 2"
expect "wrong cache directive" bad-directive=0,after=2 "cache directive disagrees" \
    "error on rank 1"
expect "killed rank" kill-rank=2,after=3 "rank 2"
expect "fault on a rank the job lacks" kill-rank=4,after=0 \
    "rank 4 does not exist, the job has 4 ranks (0..3)"
expect "stalled rank" stall-rank=2,after=3 "timed out after 3 s waiting for rank 3"
# Terraformer with LSH attention (SPEC §2): rank 1 holds LSH sub-layers and checks the seed and
# the drops of rank 0's directive against its caches
model=tf8
expect "wrong LSH rotation seed" bad-lsh-seed=0,after=2 "LSH directive disagrees" \
    "says session 1 has rotation seed" "error on rank 1"
expect "LSH drop not due" bad-lsh-drop=0,after=5 "LSH directive disagrees" "for session 1" \
    "at position 8 orders drops in 1 LSH sub-layers, but the model has 8" "error on rank 1"
expect "LSH drop missing" bad-lsh-drop=0,after=21 "LSH directive disagrees" "for session 1" \
    "at position 24 lacks a drop in LSH sub-layer" "holds 24 of P = 24 entries" "error on rank 1"

# A non-finite value in one session's rows (on a stage, then on rank 0 of a single process)
# stops that session with a message naming the layer; the other sessions complete, each
# equal to its uninterrupted run, and the job exits 1 at the end.
printf '1 5 9 13\n2 7\n3 3 3 3 3 3\n' > p3.txt
sessions=(--model tiny8.stf --prompts-tokens p3.txt --max-tokens 20 --temperature 0.9 --quiet)
"$dist" --local "${sessions[@]}" > ref3.txt 2> ref3.err || echo "FAIL reference run"
nan_case() {
    local name=$1
    shift
    "$@" > out3.txt 2> err3.txt
    local rc=$?
    if [ $rc -eq 1 ] && /usr/bin/python3 - ref3.txt out3.txt err3.txt << 'EOF'; then
import collections, re, sys
def sessions(path):
    d = collections.defaultdict(list)
    for line in open(path):
        m = re.match(r'\[(\d+)\] (.*)$', line.rstrip('\n'))
        d[int(m.group(1))].extend(m.group(2).split())
    return d
ref, out, err = sessions(sys.argv[1]), sessions(sys.argv[2]), open(sys.argv[3]).read()
m = re.search(r'session (\d+) stopped: rank (\d+): tiny8.stf: layer (\d+) produced a '
              r'non-finite value \(NaN or Inf\) at position (\d+)', err)
assert m, 'no message naming the session and layer'
bad = int(m.group(1))
assert '1 of 3 sessions stopped by a non-finite value' in err, 'no summary'
for i in range(3):
    if i == bad:
        assert out[i] == ref[i][:len(out[i])] and len(out[i]) < len(ref[i]), 'stopped session'
    else:
        assert out[i] == ref[i], 'session %d differs' % i
EOF
        echo "ok   $name (exit $rc)"
        return
    fi
    echo "FAIL $name (exit $rc); stderr:"
    sed 's/^/    /' err3.txt | head -20
    fails=$((fails + 1))
}
nan_case "NaN in one session's rows on a stage: that session stops, the others complete" \
    timeout 60 "$mpiexec" "$npflag" 4 "${pre[@]}" "$dist" "${sessions[@]}" --timeout 3 \
    --fault-inject nan-rows=2,after=12
nan_case "NaN in one session's rows on one process: the same" \
    timeout 60 "$dist" --local "${sessions[@]}" --fault-inject nan-rows=0,after=12

echo "dist_fault: $fails failure(s)"
[ $fails -eq 0 ]
