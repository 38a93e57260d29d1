#!/bin/bash
# sparsetf-bench --model on the bundled model: every part of the budget is reported with a
# positive bound, the whole token's bytes are the sum of the parts', and bad input fails
# with a message naming it. With a Terraformer model (4th argument `terraformer`) the tokens
# pass its LSH caches' first drop (P = 192 in the bundled one), and the SRU branch and the
# LSH kernels must be in the budget.
# usage: tests/integration/bench_model.sh SPARSETF_BENCH MODEL WORKDIR [terraformer]
set -euo pipefail
[ $# -eq 3 ] || [ $# -eq 4 ] || { echo "usage: $0 SPARSETF_BENCH MODEL WORKDIR [terraformer]" >&2; exit 2; }
bench=$1 model=$2 work=$3 arch=${4:-scaling}
mkdir -p "$work"
warmup=1
[ "$arch" = terraformer ] && warmup=188
"$bench" --model "$model" --tokens 8 --warmup $warmup --clock cpu --json "$work/budget.json" \
    2> "$work/budget.txt"
/usr/bin/python3 - "$work/budget.json" "$arch" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tf = sys.argv[2] == "terraformer"
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
if tf:
    assert "sru branch" in parts and "lsh in" in parts["attention"]["sublayer_kind"], parts
    for name in ("lsh_select", "lsh_attend"):
        assert any(k["kernel"].startswith(name) for k in kernels), (name, kernels)
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
