#!/usr/bin/env bash
# bench/q8_17b_sparse.sh: the whole 17b-sparse model in q8 weights, end to end (issue 9).
# Not part of CI: it writes an ~18.5 GB file and needs ~20 GB of free RAM for the page cache.
#
#   bench/q8_17b_sparse.sh [-b BUILD_DIR] [-d WORKDIR] [-k]
#
#   -b BUILD    build directory (default: the build/ next to bench/)
#   -d WORKDIR  where the model file goes (default /tmp/sparsetf-q8); needs 19 GB free
#   -k          keep the model file at the end (default: delete it)
#
# Steps: sparsetf-gen --preset 17b-sparse --dtype q8 (streaming, never holds the model);
# sparsetf-dist --plan for 2, 4 and 8 ranks (per-node weight share and memory); then decodes
# 64 tokens after a 16-token prompt with --stats-json on 1 rank x 2 threads (the issue's
# target: <= 40 ms per token) and on 1, 2, 4 and 8 ranks through launch/local.sh, printing
# median and p90 per-token latency and per-rank weights, RSS and load time from the JSON.
# Results of a run on a 2-core, 24 GB machine: docs/benchmarks.md, "The whole 17b-sparse model
# in q8, end to end" (generation ~17 min there; each decode run under a minute once the file
# is in the page cache).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build work=/tmp/sparsetf-q8 keep=0
while getopts "b:d:kh" o; do
    case $o in
    b) build=$OPTARG ;;
    d) work=$OPTARG ;;
    k) keep=1 ;;
    *) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    esac
done
mkdir -p "$work"
model=$work/17b-sparse-q8.stf
[ "$keep" = 1 ] || trap 'rm -f "$model" "$model.partial"' EXIT
[ -f "$model" ] || "$build/src/tools/sparsetf-gen" --preset 17b-sparse --dtype q8 --out "$model"
for n in 2 4 8; do
    echo "== plan for $n ranks"
    "$build/src/tools/sparsetf-dist" --model "$model" --plan --ranks "$n"
done
prompt="1 22 333 444 55 66 77 88 99 111 222 333 444 555 666 777"
summary() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[2]))
lat = s["latency_ms"]
print("%s: per-token latency median %.1f ms, p90 %.1f ms, %.2f tokens/s, wall %.1f s"
      % (sys.argv[1], lat["median"], lat["p90"], s["tokens_per_s"], s["wall_s"]))
for r in s["per_rank"]:
    print("   rank %d layers %s: weights %.2f GB, RSS after load %.2f GB, peak %.2f GB, load %.1f s"
          % (r["rank"], r["layers"], r["weight_bytes"] / 1e9, r["rss_after_load_bytes"] / 1e9,
             r["peak_rss_bytes"] / 1e9, r["load_s"]))
PY
}
"$build/src/tools/sparsetf-dist" --model "$model" --prompt-tokens "$prompt" --max-tokens 64 \
    --temperature 0 --threads 2 --quiet --stats-json "$work/np1-t2.json" > /dev/null
summary "np=1 threads=2" "$work/np1-t2.json"
for n in 1 2 4 8; do
    "$here/../launch/local.sh" -n "$n" -b "$build" -- --model "$model" --prompt-tokens "$prompt" \
        --max-tokens 64 --temperature 0 --quiet --stats-json "$work/np$n.json" > /dev/null
    summary "np=$n threads=1" "$work/np$n.json"
done
