#!/usr/bin/env bash
# bench/tp_ab.sh: per-token latency of one stream at T = 1 (one rank) against T = 2 (one
# stage of two tensor-parallel ranks), interleaved A B A B ... so that both see the same
# machine, with the per-rank split from --stats-json. Not part of CI (it wants a big model).
#
#   bench/tp_ab.sh [-b BUILD_DIR] [-r ROUNDS] [-n TOKENS] MODEL
#
#   -b BUILD    build directory (default: the build/ next to bench/)
#   -r ROUNDS   A/B pairs (default 3)
#   -n TOKENS   tokens generated per run after a 16-token prompt (default 32)
#
# Prints one line per run (median per-token decode latency, and per rank: weights mapped,
# RSS after load, compute / collectives-in-layers / wait per token), then the median over
# runs of each side and their ratio T=2 / T=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build rounds=3 tokens=32
while getopts "b:r:n:h" o; do
    case $o in
    b) build=$OPTARG ;;
    r) rounds=$OPTARG ;;
    n) tokens=$OPTARG ;;
    *) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { echo "tp_ab.sh: give one MODEL file (see -h)" >&2; exit 2; }
model=$1
[ -f "$model" ] || { echo "tp_ab.sh: $model: no such file" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prompt="1 22 333 444 55 66 77 88 99 111 222 333 444 555 666 777"
run() { # T ROUND
    local t=$1 i=$2
    "$here/../launch/local.sh" -n "$t" -b "$build" -- --model "$model" --prompt-tokens "$prompt" \
        --max-tokens "$tokens" --temperature 0 --quiet --tp "$t" \
        --stats-json "$work/t$t-$i.json" > "$work/t$t-$i.txt"
}
for i in $(seq 1 "$rounds"); do
    run 1 "$i"
    run 2 "$i"
done
cmp -s "$work/t1-1.txt" "$work/t2-1.txt" || echo "tp_ab.sh: T = 1 and T = 2 gave different tokens" >&2
/usr/bin/python3 - "$work" "$rounds" << 'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
med = {1: [], 2: []}
for i in range(1, rounds + 1):
    for t in (1, 2):
        s = json.load(open(f"{work}/t{t}-{i}.json"))
        m = s["latency_ms"]["median"]
        med[t].append(m)
        parts = []
        for r in s["per_rank"]:
            p = r["per_token_ms"]
            parts.append("rank %d: %.2f GB mapped, RSS %.2f GB, compute %.1f (collectives %.1f) wait %.1f"
                         % (r["rank"], r["weight_bytes"] / 1e9, r["rss_after_load_bytes"] / 1e9,
                            p["compute"], p.get("tp_collectives", 0.0), p["wait"]))
        print("round %d T=%d: median %.1f ms/token; %s" % (i, t, m, "; ".join(parts)))
a, b = statistics.median(med[1]), statistics.median(med[2])
print("T=1 median of medians %.1f ms, T=2 %.1f ms, ratio T=2/T=1 %.3f (per round: %s)"
      % (a, b, b / a, ", ".join("%.3f" % (y / x) for x, y in zip(med[1], med[2]))))
PY
