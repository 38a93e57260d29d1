#!/usr/bin/env bash
# dist_journal: sessions survive a crash. A stage (or rank 0) is killed mid-generation with
# the --fault-inject testing hook; the same command run again with the same --journal prints
# what an uninterrupted run prints — compared with a run without journal, byte for byte
# (stdout and --dump-logits files; with several sessions, each session's output, as the
# interleaving of sessions on stdout depends on timing) — at temperature > 0, with sessions
# finished before the kill (replayed) and unfinished ones (resumed), after a torn last
# record, on another rank count, and through launch/local.sh --restart. A journal of another
# job is refused naming what differs.
#
# usage: dist_journal.sh SOURCE_DIR GEN DIST WORKDIR MPIEXEC NUMPROC_FLAG [PREFLAGS...]
set -u
src=$1 gen=$2 dist=$3 work=$4 mpiexec=$5 npflag=$6
shift 6
pre=("$@")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0
bundled=$src/src/train/models/default-sparse.stf
printf 'n_layers = 8\n' > l8.cfg
"$gen" --preset tiny-sparse-sru --config l8.cfg --out tiny8.stf > /dev/null || exit 1
printf '1 5 9 13\n2 7\n3 3 3 3 3 3\n4\n' > prompts.txt

ok() { echo "ok   $1"; }
fail() {
    echo "FAIL $1"
    shift
    for f in "$@"; do [ -f "$f" ] && sed 's/^/    /' "$f" | head -15; done
    fails=$((fails + 1))
}
mpi() {
    local np=$1
    shift
    timeout 120 "$mpiexec" "$npflag" "$np" "${pre[@]}" "$dist" "$@"
}
# each session's output on one line ("[i] ..." pieces joined), sorted by session
per_session() {
    /usr/bin/python3 - "$1" << 'EOF'
import collections, re, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1], encoding='utf-8', errors='surrogateescape'):
    m = re.match(r'\[(\d+)\] (.*)\n?$', line)
    if not m:
        sys.exit('not a session line: %r' % line)
    d[int(m.group(1))].extend(m.group(2).split())
for k in sorted(d):
    print(k, ' '.join(d[k]))
EOF
}

# 1. one text session at temperature 0.8 with its logits: a stage killed after 30 frames
text=(--model "$bundled" --prompt "Once upon a time" --max-tokens 60 --temperature 0.8 --seed 7
    --timeout 3)
"$dist" --local "${text[@]}" --quiet --dump-logits ref1.bin > ref1.txt 2> ref1.err ||
    fail "text: uninterrupted run" ref1.err
mpi 3 "${text[@]}" --quiet --dump-logits out1.bin --journal j1 \
    --fault-inject kill-rank=1,after=30 > kill1.txt 2> kill1.err
rc=$?
mpi 3 "${text[@]}" --dump-logits out1.bin --journal j1 > out1.txt 2> out1.err
rc2=$?
if [ $rc -ne 0 ] && [ $rc2 -eq 0 ] && cmp -s ref1.txt out1.txt && cmp -s ref1.bin out1.bin &&
    grep -q "0 of 1 sessions finished (replayed), 1 resumed after" out1.err &&
    [ "$(wc -c < kill1.txt)" -lt "$(wc -c < ref1.txt)" ]; then
    ok "text session: killed stage (exit $rc), resumed: stdout and logits identical"
else
    fail "text session resumed (exits $rc, $rc2)" kill1.err out1.err
fi

# 2. rank 0 itself killed (its buffered output and logits file lost), resumed on 2 ranks
mpi 3 "${text[@]}" --quiet --dump-logits out2.bin --journal j2 \
    --fault-inject kill-rank=0,after=40 > kill2.txt 2> kill2.err
rc=$?
mpi 2 "${text[@]}" --quiet --dump-logits out2.bin --journal j2 > out2.txt 2> out2.err
rc2=$?
if [ $rc -ne 0 ] && [ $rc2 -eq 0 ] && cmp -s ref1.txt out2.txt && cmp -s ref1.bin out2.bin; then
    ok "text session: rank 0 killed, resumed on 2 ranks: identical"
else
    fail "rank 0 killed (exits $rc, $rc2)" kill2.err out2.err
fi

# 3. four sessions in two slots (max-tokens 8 < the eviction threshold: sessions 0 and 1
# finish before 2 and 3 start): killed after 20 frames, 2 finished and 2 unfinished
multi=(--model tiny8.stf --prompts-tokens prompts.txt --max-tokens 8 --slots 2
    --temperature 0.9 --timeout 3)
"$dist" --local "${multi[@]}" --quiet --dump-logits ref3.bin > ref3.txt 2> ref3.err ||
    fail "sessions: uninterrupted run" ref3.err
per_session ref3.txt > ref3.sessions
mpi 4 "${multi[@]}" --quiet --dump-logits out3.bin --journal j3 \
    --fault-inject kill-rank=2,after=20 > kill3.txt 2> kill3.err
rc=$?
cp j3/journal j3.complete-before-tear
mpi 4 "${multi[@]}" --dump-logits out3.bin --journal j3 > out3.txt 2> out3.err
rc2=$?
same=1
for i in 0 1 2 3; do cmp -s ref3.bin.$i out3.bin.$i || same=0; done
if [ $rc -ne 0 ] && [ $rc2 -eq 0 ] && [ $same -eq 1 ] &&
    per_session out3.txt | cmp -s ref3.sessions - &&
    grep -q "2 of 4 sessions finished (replayed), 2 resumed after" out3.err; then
    ok "4 sessions (2 finished before the kill, replayed; 2 resumed): identical"
else
    fail "4 sessions resumed (exits $rc, $rc2)" kill3.err out3.err
fi

# 4. a torn last record (the crash cut the last write short), then garbage after a record
for tear in cut garbage; do
    rm -rf j4 && mkdir j4 && cp j3.complete-before-tear j4/journal
    size=$(stat -c %s j4/journal)
    if [ $tear = cut ]; then
        truncate -s $((size - 7)) j4/journal
    else
        head -c 45 /dev/urandom >> j4/journal
    fi
    rm -f out4.bin.*
    mpi 3 "${multi[@]}" --dump-logits out4.bin --journal j4 > out4.txt 2> out4.err
    rc=$?
    same=1
    for i in 0 1 2 3; do cmp -s ref3.bin.$i out4.bin.$i || same=0; done
    if [ $rc -eq 0 ] && [ $same -eq 1 ] && per_session out4.txt | cmp -s ref3.sessions - &&
        grep -q "dropped a torn record at its end" out4.err; then
        ok "torn journal ($tear): the record dropped, output identical"
    else
        fail "torn journal ($tear) (exit $rc)" out4.err
    fi
done

# 5. a finished job's journal: everything replayed, nothing computed
mpi 2 "${multi[@]}" --dump-logits out3.bin --journal j3 > out5.txt 2> out5.err
rc=$?
if [ $rc -eq 0 ] && per_session out5.txt | cmp -s ref3.sessions - &&
    grep -q "4 of 4 sessions finished (replayed), 0 resumed" out5.err &&
    grep -q "0 sessions, 0 tokens" out5.err; then
    ok "finished journal: replayed without computing"
else
    fail "finished journal replay (exit $rc)" out5.err
fi

# 5b. a finished session whose logits file is gone is recomputed (twice: the journal then
# holds two end records for it)
for round in 1 2; do
    rm -f out3.bin.1
    mpi 2 "${multi[@]}" --dump-logits out3.bin --journal j3 > out5.txt 2> out5.err
    rc=$?
    if [ $rc -eq 0 ] && per_session out5.txt | cmp -s ref3.sessions - &&
        cmp -s ref3.bin.1 out3.bin.1 && grep -q "3 of 4 sessions finished (replayed), 1 resumed" out5.err; then
        ok "finished session without its logits file: recomputed (round $round)"
    else
        fail "finished session without its logits file, round $round (exit $rc)" out5.err
    fi
done

# 6. another job's journal is refused, naming what differs
expect_refused() {
    local name=$1 needle=$2
    shift 2
    "$dist" --local "$@" --quiet --journal j3 > /dev/null 2> ref6.err
    local rc=$?
    if [ $rc -eq 1 ] && grep -q -- "$needle" ref6.err; then
        ok "refused: $name"
    else
        fail "refused: $name (exit $rc)" ref6.err
    fi
}
expect_refused "another temperature" "temperature is \`0.899999976\` there but \`0.5\` here" \
    "${multi[@]}" --dump-logits out3.bin --temperature 0.5
"$gen" --preset tiny-sparse-sru --config l8.cfg --seed 5 --out other.stf > /dev/null
expect_refused "another model" "model is" "${multi[@]}" --dump-logits out3.bin --model other.stf
printf '1 5 9 13\n2 8\n3 3 3 3 3 3\n4\n' > changed.txt
expect_refused "changed prompts" "prompt 2 is not the one" "${multi[@]}" --dump-logits out3.bin \
    --prompts-tokens changed.txt
expect_refused "no logits file now" "dump-logits is \`yes\` there but \`no\` here" "${multi[@]}"

# 7. launch/local.sh --restart 2: killed twice (the fault fires again in the rerun), the
# output of the run that completes is the uninterrupted one
long=(--model tiny8.stf --prompts-tokens prompts.txt --max-tokens 40 --temperature 0.7
    --timeout 3)
"$dist" --local "${long[@]}" --quiet > ref7.txt 2> ref7.err || fail "restart: reference" ref7.err
per_session ref7.txt > ref7.sessions
timeout 300 bash "$src/launch/local.sh" -n 4 -b "$(dirname "$(dirname "$(dirname "$dist")")")" \
    --restart 2 -- "${long[@]}" --quiet --journal j7 \
    --fault-inject kill-rank=3,after=70 > out7.txt 2> out7.err
rc=$?
if [ $rc -eq 0 ] && per_session out7.txt | cmp -s ref7.sessions - &&
    [ "$(grep -c "starting it again from its journal" out7.err)" -eq 2 ]; then
    ok "local.sh --restart 2: two kills, output identical"
else
    fail "local.sh --restart (exit $rc)" out7.err
fi

echo "dist_journal: $fails failure(s)"
[ $fails -eq 0 ]
