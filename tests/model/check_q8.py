#!/usr/bin/python3
"""q8 weights on the trained models (issue 9): accuracy against the f32 model and the numpy
reference.

For each model (default-dense, default-sparse):
  * sparsetf-quantize --type q8 MODEL -> WORKDIR/MODEL-q8.stf (its embedded tokenizer kept);
  * `sparsetf-dist --eval tests/model/heldout.txt` on the q8 file: nats/token within
    NATS_TOL (0.5 %) of the f32 model's held-out figure (src/train/models/*.eval.json, the
    trainer's float64 evaluation, which the f32 engine matches to 1e-4);
  * the 10 reference prompts of tests/model/reference-MODEL.json decoded greedily (64 tokens)
    from the q8 file: at least MIN_SAME of the 20 continuations equal the f32 ones, and a
    continuation may leave the f32 one only at a step where the f32 model's top two logits
    are within GAP_TOL x max |logit| (q8 moves logits by ~1e-3 of their range; these small
    models often have closer calls — docs/quality.md gives the count and each step's gap);
  * the numpy reference (tests/reference, which dequantises q8 and repeats the engine's
    activation rounding) against the q8 engine's logits of every row of N_REF prompts, with
    --kernels ref and --kernels fast: max |engine - reference| <= REF_TOL x max |logit| of
    the row in at least MIN_ROWS of all rows, and <= FLIP_TOL x in every row. (The reference computes
    activations in float64, the engine in float32; where an activation lies within a float32
    rounding of a q8 rounding boundary the two round it to neighbouring integers, a change
    of ~1/254 of its block's range, which moves later logits by up to ~1e-2 of their range and
    persists through the KV cache. Without such a flip they agree to ~1e-7.)

usage: check_q8.py --dist BIN --quantize BIN --workdir DIR [--skip-eval]
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import reference as R  # noqa: E402

NATS_TOL = 0.005
MIN_SAME = 10
GAP_TOL = 0.03
REF_TOL = 1e-4
FLIP_TOL = 5e-2
MIN_ROWS = 0.6
N_REF = 3


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit("FAIL: %s exited %d: %s" % (" ".join(cmd), r.returncode, r.stderr.strip()[-500:]))
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dist", required=True)
    ap.add_argument("--quantize", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--skip-eval", action="store_true", help="skip the held-out evaluation")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    fails, same, total = [], 0, 0
    rows_ok, rows_all = 0, 0
    # (default-terraformer's q8 file is not asserted here: docs/quality.md gives its figures)
    for name in ("dense", "sparse"):
        f32 = os.path.join(ROOT, "src", "train", "models", "default-%s.stf" % name)
        q8 = os.path.join(a.workdir, "default-%s-q8.stf" % name)
        run([a.quantize, "--type", "q8", f32, q8])
        ref = json.load(open(os.path.join(ROOT, "tests", "model", "reference-%s.json" % name)))
        if not a.skip_eval:
            exp = json.load(open(os.path.join(ROOT, "src", "train", "models",
                                              "default-%s.eval.json" % name)))
            out = run([a.dist, "--model", q8, "--eval",
                       os.path.join(ROOT, "tests", "model", "heldout.txt"), "--quiet"])
            got = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
            rel = (got["nats_per_token"] - exp["nats_per_token"]) / exp["nats_per_token"]
            print("%s: held-out nats/token q8 %.6f, f32 %.6f: %+.3f %% (tolerance %.1f %%)"
                  % (name, got["nats_per_token"], exp["nats_per_token"], 100 * rel, 100 * NATS_TOL))
            if got["tokens"] != exp["tokens"]:
                fails.append("%s: eval scored %d tokens, expected %d" % (name, got["tokens"],
                                                                        exp["tokens"]))
            if abs(rel) > NATS_TOL:
                fails.append("%s: q8 nats/token %.6f is %+.3f %% from f32 %.6f"
                             % (name, got["nats_per_token"], 100 * rel, exp["nats_per_token"]))
        cfg, w, man = R.load_model(q8, verify_crc=True)
        # LSH rotations: session 0 of a run with --seed S draws from sm(sm(S)) (protocol.md)
        seed = ["--seed", str(ref["run_seed"])] if "run_seed" in ref else []
        sigma = R.splitmix64(R.splitmix64(ref["run_seed"])) if seed else 0
        model = R.Reference(cfg, w, None, man["q8"], sigma)
        V = cfg["vocab_size"]
        for i, p in enumerate(ref["prompts"]):
            for kern in (["fast", "ref"] if i < N_REF else ["fast"]):
                dump = os.path.join(a.workdir, "%s-%d-%s.f32" % (name, i, kern))
                out = run([a.dist, "--model", q8, "--prompt-tokens",
                           " ".join(map(str, p["prompt_tokens"])), "--temperature", "0",
                           "--max-tokens", str(ref["max_new_tokens"]), "--print-tokens",
                           "--dump-logits", dump, "--quiet", "--kernels", kern] + seed)
                got = [int(t) for t in out.split("\n")[0].split()]
                if kern == "fast":
                    total += 1
                    same += got == p["greedy_tokens"]
                    g = p["greedy_tokens"]
                    k = next((j for j, (x, y) in enumerate(zip(got, g)) if x != y), None)
                    if k is not None:
                        row = len(p["prompt_tokens"]) - 1 + k
                        gap = (p["top_logits"][row][0] - p["top_logits"][row][1]) / \
                            p["max_abs_logit"][row]
                        print("%s prompt %d: q8 leaves the f32 continuation at step %d, where "
                              "f32's top-2 gap is %.2e of max |logit|" % (name, i, k, gap))
                        if gap > GAP_TOL:
                            fails.append("%s prompt %d: q8 differs at step %d although f32's "
                                         "top-2 gap is %.2e > %.0e" % (name, i, k, gap, GAP_TOL))
                if i >= N_REF:
                    continue
                rows = np.fromfile(dump, dtype="<f4").reshape(-1, V).astype(np.float64)
                seq = p["prompt_tokens"] + got
                lr = model.forward(seq[:rows.shape[0]])
                err = np.abs(rows - lr).max(axis=1) / np.abs(lr).max(axis=1)
                med = float(np.median(err))
                rows_ok += int((err <= REF_TOL).sum())
                rows_all += len(err)
                print("%s prompt %d --kernels %s: %d rows vs numpy reference, median %.2e, "
                      "worst %.2e, rows above %.0e: %d" % (name, i, kern, len(err), med,
                                                          err.max(), REF_TOL,
                                                          int((err > REF_TOL).sum())))
                if err.max() > FLIP_TOL:
                    fails.append("%s prompt %d --kernels %s: engine vs numpy reference worst "
                                 "%.2e > %.0e" % (name, i, kern, err.max(), FLIP_TOL))
    print("numpy reference: %d of %d rows within %.0e (need %.0f %%)"
          % (rows_ok, rows_all, REF_TOL, 100 * MIN_ROWS))
    if rows_ok < MIN_ROWS * rows_all:
        fails.append("only %d of %d rows within %.0e of the numpy reference"
                     % (rows_ok, rows_all, REF_TOL))
    print("greedy continuations equal to f32: %d of %d (need %d)" % (same, total, MIN_SAME))
    if same < MIN_SAME:
        fails.append("only %d of %d greedy continuations equal f32's" % (same, total))
    for f in fails:
        print("FAIL:", f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
