#!/bin/bash
# sparsetf-bench --model on the bundled model: every part of the budget is reported with a
# positive bound, the whole token's bytes are the sum of the parts', and bad input fails
# with a message naming it.
# usage: tests/integration/bench_model.sh SPARSETF_BENCH MODEL WORKDIR
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 SPARSETF_BENCH MODEL WORKDIR" >&2; exit 2; }
bench=$1 model=$2 work=$3
mkdir -p "$work"
"$bench" --model "$model" --tokens 4 --warmup 1 --clock cpu --json "$work/budget.json" \
    2> "$work/budget.txt"
/usr/bin/python3 - "$work/budget.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
roof = [r for r in rows if r["kind"] == "roofline"]
parts = {r["part"]: r for r in rows if r["kind"] == "budget"}
kernels = [r for r in rows if r["kind"] == "kernel"]
assert len(roof) == 1 and roof[0]["stream_gbs"] > 0 and roof[0]["peak_gmacs"] > 0, roof
need = ["embedding", "layernorm", "attention", "ff", "residual", "output layer", "sampling",
        "whole token"]
missing = [p for p in need if p not in parts]
assert not missing, "missing parts: %s" % missing
for p, r in parts.items():
    assert r["bound_ms"] > 0 and r["ms"] > 0 and r["ratio"] > 0, r
total = sum(r["bytes"] for p, r in parts.items() if p != "whole token")
assert abs(parts["whole token"]["bytes"] - total) <= 1e-6 * total, (parts["whole token"], total)
assert any(k["kernel"].startswith("mult_dense") for k in kernels), kernels
print("bench --model: %d parts, %d kernel shapes, whole token %.3f ms (%.2fx its bound)" %
      (len(parts), len(kernels), parts["whole token"]["ms"], parts["whole token"]["ratio"]))
PY
if "$bench" --model "$model" --madvise sometimes 2> "$work/err.txt"; then
    echo "FAIL: --madvise sometimes accepted"; exit 1
fi
grep -q "madvise sometimes" "$work/err.txt" || { echo "FAIL: message: $(cat "$work/err.txt")"; exit 1; }
if "$bench" --model "$work/no-such.stf" --tokens 3 2> "$work/err.txt" > /dev/null; then
    echo "FAIL: a missing model file was accepted"; exit 1
fi
grep -q "no-such.stf" "$work/err.txt" || { echo "FAIL: message: $(cat "$work/err.txt")"; exit 1; }
echo "ok"
