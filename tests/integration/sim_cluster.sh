#!/usr/bin/env bash
# sim_cluster: the launchers across simulated hosts (cluster/sim-cluster.sh, network
# namespaces, TCP only, own host names, /tmp and /dev/shm per host):
#   - `up` rejects bad input (N, link spec, not root) and leaves nothing behind;
#   - `up` twice works (idempotent), cluster/node-check.sh passes;
#   - launch/hostfile.sh on 3 hosts (1 and 2 threads per rank, greedy and sampled) prints
#     exactly what `sparsetf-dist --local` prints for the bundled model;
#   - a rank killed on one simulated host ends the job within seconds, the host named;
#   - `down` removes everything, and a trap runs it even when a check fails.
# Needs root (network namespaces); exits 77 (skipped) with the reason otherwise.
#
# usage: sim_cluster.sh SOURCE_DIR BUILD_DIR WORKDIR
set -u
src=$1 build=$2 work=$3
sim=$src/cluster/sim-cluster.sh
model=$src/src/train/models/default-sparse.stf
dist=$build/src/tools/sparsetf-dist
if [ "$(id -u)" -ne 0 ]; then
    echo "sim_cluster: SKIPPED: needs root for network namespaces"
    exit 77
fi
if ! ip netns add stf-simprobe 2> /dev/null; then
    echo "sim_cluster: SKIPPED: this machine refuses network namespaces (ip netns add failed)"
    exit 77
fi
ip netns del stf-simprobe
mkdir -p "$work" && cd "$work" || exit 1
# the simulated cluster's names and addresses are machine-wide: one test at a time, also
# across build trees (the lock is released when this script ends)
exec 9> /run/lock/sparsetf-sim-test.lock
flock -w 900 9 || { echo "sim_cluster: another simulated-cluster test held the lock for 900 s"; exit 1; }
export STF_SIM_DIR=$work/state
trap '"$sim" down > /dev/null 2>&1' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() {
    echo "FAIL $*"
    fails=$((fails + 1))
}
# nothing of a simulated cluster exists
nothing_left() {
    ! ip netns list | grep -q '^stf-sim' && ! ip link show stf-simbr > /dev/null 2>&1 &&
        [ ! -e "$STF_SIM_DIR" ]
}

# bad input: exit 2, a message naming the problem, nothing made
reject() {
    local name=$1 needle=$2
    shift 2
    "$@" > out.txt 2> err.txt
    local rc=$?
    if [ $rc -eq 2 ] && grep -q -- "$needle" err.txt && nothing_left; then
        ok "$name: $(head -1 err.txt)"
    else
        bad "$name (exit $rc; expected 2 and '$needle'; left: $(ip netns list | grep -c stf-sim) ns)"
        sed 's/^/    /' err.txt
    fi
}
"$sim" down > /dev/null 2>&1
reject "N = 0" "N must be a whole number" "$sim" up 0
reject "N not a number" "N must be a whole number" "$sim" up three
reject "N too large" "above the limit" "$sim" up 100000
reject "unknown link" "expected 1gbit, 10gbit, 25gbit or RATE,DELAY" "$sim" up 2 --link fast
reject "bad delay" "DELAY '5xs'" "$sim" up 2 --link 10gbit,5xs
reject "bad rate" "RATE 'lots'" "$sim" up 2 --link lots,5us
reject "link without value" "--link needs a value" "$sim" up 2 --link
if id nobody > /dev/null 2>&1 && command -v setpriv > /dev/null; then
    # nobody may not enter the checkout (a `mktemp -d` clone is 0700): a world-readable copy
    pub=$(mktemp -d) && chmod 755 "$pub" && cp "$sim" "$pub/" && chmod 755 "$pub/${sim##*/}"
    reject "not root" "must run as root" setpriv --reuid=nobody --regid=nogroup --clear-groups \
        "$pub/${sim##*/}" up 2
    rm -rf "$pub"
fi

# up twice (the second must clean up after the first, as after a crash)
"$sim" up 3 --link 1gbit > up1.txt 2>&1 || bad "first up: $(cat up1.txt)"
if "$sim" up 3 > up2.txt 2>&1 && [ "$(ip netns list | grep -c '^stf-sim')" -eq 3 ]; then
    ok "up 3 twice: $(grep hostfile up2.txt)"
else
    bad "second up 3"
    cat up2.txt
    exit 1
fi
# shellcheck disable=SC1091
. "$STF_SIM_DIR/env"
names=$(for h in stf-sim1 stf-sim2 stf-sim3; do "$src/cluster/sim-rsh.sh" $h hostname; done | tr '\n' ' ')
[ "$names" = "stf-sim1 stf-sim2 stf-sim3 " ] && ok "host names: $names" || bad "host names: $names"
shm=$("$src/cluster/sim-rsh.sh" stf-sim1 'touch /dev/shm/probe /tmp/probe && ls /dev/shm /tmp')
if [ -e "$STF_SIM_DIR/stf-sim1/shm/probe" ] && [ ! -e "$STF_SIM_DIR/stf-sim2/shm/probe" ] &&
    [ ! -e /dev/shm/probe ] && [ ! -e /tmp/probe ]; then
    ok "own /tmp and /dev/shm per host"
else
    bad "own /tmp and /dev/shm per host ($shm)"
fi

if timeout 120 "$src/cluster/node-check.sh" -f "$STF_SIM_HOSTFILE" -b "$build" > nc.txt 2>&1 &&
    grep -q "node-check: ok" nc.txt; then
    ok "node-check.sh on 3 simulated hosts"
else
    bad "node-check.sh"
    sed 's/^/    /' nc.txt | tail -20
fi

# hostfile.sh output == --local output, byte for byte
same() {
    local name=$1
    shift
    "$dist" $ref --model "$model" "$@" --quiet > want.txt 2> want.err ||
        { bad "$name: --local failed: $(cat want.err)"; return; }
    timeout 120 "$src/launch/hostfile.sh" -f "$STF_SIM_HOSTFILE" -b "$build" "${hf[@]}" -- \
        --model "$model" "$@" > got.txt 2> got.err
    local rc=$?
    if [ $rc -eq 0 ] && cmp -s want.txt got.txt && grep -q "stf-sim3" got.err; then
        ok "$name: identical to ${ref:-one process} ($(wc -c < got.txt) bytes; ranks on stf-sim1..3)"
    else
        bad "$name (exit $rc)"
        diff want.txt got.txt | head -5
        sed 's/^/    /' got.err | tail -10
    fi
}
ref=--local hf=(-n 3)
same "hostfile.sh -n 3 greedy" --prompt "It is a truth universally acknowledged, that" \
    --max-tokens 40 --temperature 0 --print-tokens
hf=(-n 3 -t 2)
same "hostfile.sh -n 3 -t 2 sampled" --prompt "The Congress" --max-tokens 40 --seed 7 \
    --print-tokens
printf 'It is a truth\nThe Congress of the\nMr. Darcy\n' > prompts.txt
# --local runs one session; several go through the pipeline runner on one process
ref="" hf=()
same "hostfile.sh (every slot) 3 sessions" --prompts "$work/prompts.txt" --max-tokens 24 \
    --seed 3 --print-tokens

# --stats-json: every rank's per-token split, each rank named by its simulated host
rm -f stats.json
timeout 120 "$src/launch/hostfile.sh" -f "$STF_SIM_HOSTFILE" -b "$build" -n 3 -- --model "$model" \
    --prompt "It is a truth" --max-tokens 16 --quiet --stats-json "$work/stats.json" > /dev/null 2>&1
if /usr/bin/python3 - "$work/stats.json" << 'PY'; then
import json, sys
d = json.load(open(sys.argv[1]))
ranks = d["per_rank"]
assert [r["host"] for r in ranks] == ["stf-sim1", "stf-sim2", "stf-sim3"], ranks
keys = {"compute", "pack_unpack", "send", "wait", "collectives", "tp_collectives"}
for r in ranks:
    t = r["per_token_ms"]
    assert set(t) == keys and all(v >= 0 for v in t.values()), t
    assert abs(t["compute"] - 1e3 * r["compute_s"] / d["generated_tokens"]) < 1e-3, r
    assert t["wait"] > 0 and t["pack_unpack"] > 0, r  # every rank exchanged frames
PY
    ok "--stats-json: per-token compute/pack_unpack/send/wait/collectives on each simulated host"
else
    bad "--stats-json per-token split"
fi

# sparsetf-dist processes still running on a simulated host
left_ranks() {
    sleep 1
    for h in stf-sim1 stf-sim2 stf-sim3; do
        ip netns pids $h | while read -r p; do
            [ "$(basename "$(readlink "/proc/$p/exe")")" = sparsetf-dist ] && echo "$h:$p"; done
    done
}
# a rank killed on a simulated host: rank 2 (on stf-sim3) stalls, then we kill it there
t0=$(date +%s)
timeout 60 "$src/launch/hostfile.sh" -f "$STF_SIM_HOSTFILE" -b "$build" -n 3 -- --model "$model" \
    --prompt "It is a truth" --max-tokens 60 --timeout 30 \
    --fault-inject stall-rank=2,after=3 > kill.out 2> kill.err &
job=$!
killed=""
for _ in $(seq 1 100); do
    if grep -q "stalling this rank" kill.err; then
        pid=$(ip netns pids stf-sim3 | while read -r p; do
            [ "$(basename "$(readlink "/proc/$p/exe")")" = sparsetf-dist ] && echo "$p"; done)
        [ -n "$pid" ] && kill -9 $pid && killed=$pid
        break
    fi
    sleep 0.1
done
wait $job
rc=$?
t1=$(date +%s)
if [ -n "$killed" ] && [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $((t1 - t0)) -le 20 ] &&
    grep -q "stf-sim3" kill.err && [ -z "$(left_ranks)" ]; then
    ok "rank killed on stf-sim3: job ended (exit $rc after $((t1 - t0)) s): $(grep -m1 stf-sim3 kill.err)"
else
    bad "killed rank (killed pid '${killed}', exit $rc after $((t1 - t0)) s; left: $(left_ranks))"
    sed 's/^/    /' kill.err | tail -10
fi

"$sim" down > down.txt 2>&1
if nothing_left; then ok "down removes everything"; else bad "down left something"; fi
echo "sim_cluster: $fails failure(s)"
[ $fails -eq 0 ]
