#!/bin/bash
# sparsetf-dist --eval vs the PyTorch trainer's held-out evaluation (issue 5).
#
# usage: tests/model/check_eval.sh SPARSETF_DIST MODEL TEXT EXPECTED_JSON
#   e.g. tests/model/check_eval.sh build/src/tools/sparsetf-dist \
#          src/train/models/default-sparse.stf tests/model/heldout.txt \
#          src/train/models/default-sparse.eval.json
#
# Runs `sparsetf-dist --model MODEL --eval TEXT`, which must print one JSON object on stdout:
#   {"tokens": N, "chars": C, "nats_per_token": x, "bits_per_char": y}
# (definition in docs/quality.md: per line BOS + ids + EOS from position 0, every token after
# BOS scored, chars = Unicode code points of the lines). tokens and chars must equal the
# expected values exactly; nats_per_token and bits_per_char within 1e-4 relative.
# Exit 77 (skipped) when this sparsetf-dist has no --eval option.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 SPARSETF_DIST MODEL TEXT EXPECTED_JSON" >&2; exit 2; }
dist=$1 model=$2 text=$3 expected=$4
if ! "$dist" --help 2>&1 | grep -q -- '--eval'; then
    echo "SKIP: $dist has no --eval option"
    exit 77
fi
out=$("$dist" --model "$model" --eval "$text" --quiet)
/usr/bin/python3 - "$expected" "$out" <<'PY'
import json, sys
exp = json.load(open(sys.argv[1]))
line = [l for l in sys.argv[2].splitlines() if l.strip().startswith("{")]
if not line:
    sys.exit("FAIL: no JSON object on stdout: %r" % sys.argv[2][:200])
got = json.loads(line[-1])
fails = []
for k in ("tokens", "chars"):
    if got.get(k) != exp[k]:
        fails.append("%s: engine %r, PyTorch %r" % (k, got.get(k), exp[k]))
for k in ("nats_per_token", "bits_per_char"):
    g = got.get(k)
    if not isinstance(g, (int, float)) or abs(g - exp[k]) > 1e-4 * abs(exp[k]):
        fails.append("%s: engine %r, PyTorch %r (tolerance 1e-4 relative)" % (k, g, exp[k]))
for f in fails:
    print("FAIL:", f)
print("eval: engine %s vs PyTorch %s: %s" % (json.dumps(got), json.dumps(
    {k: exp[k] for k in ("tokens", "chars", "nats_per_token", "bits_per_char")}),
    "FAILED" if fails else "ok"))
sys.exit(1 if fails else 0)
PY
