#!/usr/bin/python3
"""The C engine vs the PyTorch trainer on a trained model (issue 5).

For each of the 10 prompts in REF.json (BOS + the start of a held-out paragraph) runs
  sparsetf-dist --model M --prompt-tokens IDS --temperature 0 --max-tokens 64 --print-tokens
                --dump-logits F [extra args]
and checks
  * the greedy continuation is identical to PyTorch's (same ids, same stop at EOS);
  * every dumped row (n_prompt + n_generated - 1 rows of V float32): at PyTorch's top-8 ids the
    logits agree within 1e-4 x max|logit| of the row, max|logit| agrees likewise, and the row's
    argmax is PyTorch's;
  * the full rows stored in REF.rows.f32 agree element-wise within 1e-4 x max|logit|.
The reference was computed by src/train/make_reference.py in float64 from the file's weights.

usage: check_engine.py --dist BIN --ref tests/model/reference-sparse [--model M] [--workdir D]
       [-- extra sparsetf-dist args, e.g. --kernels ref]
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOL = 1e-4


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dist", required=True)
    ap.add_argument("--ref", required=True, help="prefix of REF.json / REF.rows.f32")
    ap.add_argument("--model", help="model file (default: the path in REF.json, from the repo root)")
    ap.add_argument("--workdir", default=".")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    ref = json.load(open(a.ref + ".json"))
    model = a.model or os.path.join(ROOT, ref["model"])
    V = ref["vocab_size"]
    full = np.fromfile(a.ref + ".rows.f32", dtype="<f4").reshape(-1, V)
    full_at = {(f["prompt"], f["row"]): full[i] for i, f in enumerate(ref["full_rows"])}
    os.makedirs(a.workdir, exist_ok=True)
    fails = []
    worst = 0.0
    n_rows = 0
    for i, p in enumerate(ref["prompts"]):
        dump = os.path.join(a.workdir, "logits-%d.f32" % i)
        cmd = [a.dist, "--model", model, "--prompt-tokens", " ".join(map(str, p["prompt_tokens"])),
               "--temperature", "0", "--max-tokens", str(ref["max_new_tokens"]), "--print-tokens",
               "--dump-logits", dump, "--quiet"] + \
            (["--seed", str(ref["run_seed"])] if "run_seed" in ref else []) + a.extra
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            fails.append("prompt %d: sparsetf-dist failed (%d): %s" % (i, r.returncode, r.stderr.strip()))
            continue
        got = [int(t) for t in r.stdout.split("\n")[0].split()]
        if got != p["greedy_tokens"]:
            k = next((j for j, (x, y) in enumerate(zip(got, p["greedy_tokens"])) if x != y),
                     min(len(got), len(p["greedy_tokens"])))
            fails.append("prompt %d: greedy tokens differ at generated position %d: engine %s, "
                         "PyTorch %s" % (i, k, got[k:k + 4], p["greedy_tokens"][k:k + 4]))
        rows = np.fromfile(dump, dtype="<f4").reshape(-1, V).astype(np.float64)
        if rows.shape[0] != p["n_rows"]:
            fails.append("prompt %d: %d logit rows, expected %d" % (i, rows.shape[0], p["n_rows"]))
            continue
        n_rows += rows.shape[0]
        for t in range(rows.shape[0]):
            scale = p["max_abs_logit"][t]
            ids = p["top_ids"][t]
            d = np.abs(rows[t, ids] - np.array(p["top_logits"][t])).max()
            d = max(d, abs(np.abs(rows[t]).max() - scale))
            worst = max(worst, d / scale)
            if d > TOL * scale:
                fails.append("prompt %d row %d: |delta| %.3g > %.1e x %.3g" % (i, t, d, TOL, scale))
            if int(np.argmax(rows[t])) != ids[0]:
                fails.append("prompt %d row %d: argmax %d, PyTorch %d" % (i, t, int(np.argmax(rows[t])), ids[0]))
            if (i, t) in full_at:
                fr = full_at[(i, t)].astype(np.float64)
                d = np.abs(rows[t] - fr).max()
                sc = np.abs(fr).max()
                worst = max(worst, d / sc)
                if d > TOL * sc:
                    fails.append("prompt %d row %d (full row): max |delta| %.3g > %.1e x %.3g"
                                 % (i, t, d, TOL, sc))
    for f in fails[:20]:
        print("FAIL:", f)
    print("%s: %d prompts, %d logit rows, worst |delta| / max|logit| = %.2e (tolerance %.0e): %s"
          % (os.path.basename(model), len(ref["prompts"]), n_rows, worst, TOL,
             "FAILED" if fails else "ok"))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
