#!/usr/bin/python3
"""Writes the PyTorch reference outputs that tests/model/check_engine.py compares the C engine
against, for one exported model file.

The weights are read back from the .stf file itself (tests/reference/reference.py's reader,
with every CRC-32C checked), loaded into this directory's PyTorch model (model.py) and run in
float64. Prompts: BOS + the first PROMPT_LEN tokens of held-out paragraphs 0, 60, 120, ...
(10 prompts; for a sparse-FF model a paragraph is replaced by the next one while some
controller decision of its run has a top-2 margin below MIN_GAP = 1e-4, which float32
rounding could flip); each gets a greedy continuation of up to 64 tokens (stopping after EOS, like the
engine). For every logit row the engine will dump (n_prompt + n_generated - 1 rows) we store
the top-8 ids and values and max |logit|; full rows are stored for the last row of every
other prompt (float32, OUT.rows.f32).

usage: make_reference.py --model M.stf --spm spm8k.model --heldout heldout.txt --out PREFIX
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
from model import Config, ScalingLM  # noqa: E402

N_PROMPTS = 10
PROMPT_LEN = 24
GEN = 64
TOPK = 8
MIN_GAP = 1e-4

KINDS = {"ff": ["dense", "sparse"], "attn": ["dense", "sparse_qkv", "lsh"],
         "out": ["dense", "multiplicative"], "arch": ["scaling", "terraformer"]}
# The engine's LSH rotation seed of session 0 with --seed RUN_SEED: sm(sm(RUN_SEED))
# (docs/protocol.md); the PyTorch model draws its eval-mode rotations from the same seed.
RUN_SEED = 42


def model_from_file(path):
    import reference as R  # independent reader (tests/reference/reference.py)
    cfg, weights, man = R.load_model(path, verify_crc=True)
    kw = {k: cfg[k] for k in Config.KEYS if k in cfg}
    for k, names in KINDS.items():
        kw[k] = names[cfg[k]]
    # the file's LSH pattern (l % lsh_period == lsh_phase) as the trainer's bit mask
    n_sub = cfg["n_layers"] * (2 if kw["arch"] == "terraformer" else 1)
    per, ph = cfg["lsh_period"], cfg["lsh_phase"]
    kw["lsh_layers"] = sum(1 << l for l in range(n_sub) if per and l % per == ph)
    c = Config(**kw)
    m = ScalingLM(c)
    m.rotation_seed = R.splitmix64(R.splitmix64(RUN_SEED))
    with torch.no_grad():
        for n, p in m.named_tensors():
            p.copy_(torch.from_numpy(weights[n]))
    return c, m.double().eval(), man


def greedy(model, c, prompt, n_gen, stats=None):
    toks = list(prompt)
    rows = []
    with torch.no_grad():
        while True:
            lg = model(torch.tensor([toks]), stats)[0]
            if len(rows) == 0:
                rows.extend(lg.numpy())          # one row per prompt position
            else:
                rows.append(lg[-1].numpy())
            nxt = int(np.argmax(rows[-1]))       # first maximum
            toks.append(nxt)
            if nxt == c.eos_id or len(toks) - len(prompt) == n_gen:
                break
    gen = toks[len(prompt):]
    rows = rows[:len(prompt) + len(gen) - 1]     # the engine computes no row after the last
    return gen, np.array(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--spm", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--out", required=True, help="output prefix (writes PREFIX.json, PREFIX.rows.f32)")
    ap.add_argument("--model-path-in-json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=a.spm)
    c, model, man = model_from_file(a.model)
    lines = [ln.rstrip("\n") for ln in open(a.heldout, encoding="utf-8") if ln.strip()]
    prompts = []
    full = []
    min_gap = []
    skipped = []
    for i in range(N_PROMPTS):
        # paragraph i*60; for a sparse FF model the next paragraph instead while any
        # controller decision (any layer, block, row) has a top-2 margin below MIN_GAP: such a
        # near-tie is decided by float rounding, not by the engine's correctness
        for j in range(i * 60, i * 60 + 60):
            ids = sp.encode(lines[j])[:PROMPT_LEN]
            prompt = [c.bos_id] + ids
            stats = []
            gen, rows = greedy(model, c, prompt, GEN, stats)
            if not stats or min(stats) >= MIN_GAP:
                break
            skipped.append({"paragraph": j, "min_gap": min(stats)})
        if stats:
            min_gap.append(min(stats))
        top = np.argsort(-rows, axis=1, kind="stable")[:, :TOPK]
        prompts.append({
            "prompt_tokens": prompt,
            "heldout_paragraph": j,
            "prompt_text": sp.decode(ids),
            "greedy_tokens": gen,
            "greedy_text": sp.decode([t for t in gen if t != c.eos_id]),
            "n_rows": int(rows.shape[0]),
            "top_ids": top.tolist(),
            "top_logits": np.take_along_axis(rows, top, axis=1).tolist(),
            "max_abs_logit": np.abs(rows).max(axis=1).tolist(),
        })
        if i % 2 == 0:
            full.append({"prompt": i, "row": int(rows.shape[0]) - 1})
            with open(a.out + ".rows.f32", "ab" if len(full) > 1 else "wb") as fh:
                fh.write(rows[-1].astype("<f4").tobytes())
    ref = {
        "model": a.model_path_in_json or a.model,
        "model_name": man["name"],
        "generator": "src/train/make_reference.py (PyTorch %s, float64 from the file's float32 "
                     "weights)" % torch.__version__,
        "vocab_size": c.vocab_size,
        "max_new_tokens": GEN,
        "run_seed": RUN_SEED,
        "tolerance": "max |engine - reference| <= 1e-4 * max |logit| of the row",
        "sparse_ff_min_controller_gap": min(min_gap) if min_gap else None,
        "min_gap_required": MIN_GAP,
        "skipped_paragraphs": skipped,
        "full_rows": full,
        "prompts": prompts,
    }
    with open(a.out + ".json", "w") as fh:
        json.dump(ref, fh)
    print("%s.json: %d prompts; greedy lengths %s" % (
        a.out, len(prompts), [len(p["greedy_tokens"]) for p in prompts]))


if __name__ == "__main__":
    main()
