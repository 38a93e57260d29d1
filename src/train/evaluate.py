#!/usr/bin/python3
"""Held-out log-perplexity of a sparsetf model file, computed by the PyTorch model (float64
from the file's float32 weights, read back with every CRC checked). Definition (docs/quality.md):

  for every line L of FILE that is not empty or all white space (UTF-8, without \r\n):
      ids  = SentencePiece encoding of L (the model's embedded tokenizer, no BOS/EOS added)
      seq  = [BOS] + ids + [EOS], run from position 0 with fresh state
      nats += sum over t = 1 .. len(ids)+1 of -log softmax(logits at position t-1)[seq[t]]
      tokens += len(ids) + 1        (every token after BOS, including EOS)
      chars  += number of Unicode code points of L
  nats_per_token = nats / tokens;  bits_per_char = nats / ln(2) / chars
A line whose BOS + ids + EOS exceeds max_seq_len is an error here (the engine's --eval cuts it
into windows; the committed held-out file has no such line: at most 195 tokens with BOS/EOS).

Prints {"tokens": N, "chars": C, "nats_per_token": x, "bits_per_char": y} (and writes it with
--out, adding the model name and the perplexity).

usage: evaluate.py --model M.stf --spm spm8k.model --text heldout.txt [--out eval.json]
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_reference import model_from_file  # noqa: E402


def evaluate(model, c, sp, lines, batch=32):
    enc = [sp.encode(ln) for ln in lines]
    for ln, ids in zip(lines, enc):
        if len(ids) + 1 >= c.max_seq_len:
            raise ValueError("line of %d tokens does not fit max_seq_len %d: %.40s..."
                             % (len(ids), c.max_seq_len, ln))
    order = sorted(range(len(enc)), key=lambda i: len(enc[i]))
    nats = 0.0
    tokens = 0
    with torch.no_grad():
        for b in range(0, len(order), batch):
            idx = order[b:b + batch]
            seqs = [[c.bos_id] + enc[i] + [c.eos_id] for i in idx]
            T = max(len(s) for s in seqs) - 1
            x = torch.full((len(seqs), T), c.eos_id, dtype=torch.long)
            y = torch.full((len(seqs), T), -100, dtype=torch.long)
            for r, s in enumerate(seqs):
                x[r, :len(s) - 1] = torch.tensor(s[:-1])
                y[r, :len(s) - 1] = torch.tensor(s[1:])
            lg = model(x)  # padding is at the end: causal, so it changes no scored position
            nats += float(torch.nn.functional.cross_entropy(
                lg.reshape(-1, lg.shape[-1]), y.reshape(-1), ignore_index=-100, reduction="sum"))
            tokens += int((y != -100).sum())
    chars = sum(len(ln) for ln in lines)
    return {"tokens": tokens, "chars": chars, "nats_per_token": nats / tokens,
            "bits_per_char": nats / math.log(2) / chars}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--spm", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--out")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=a.spm)
    c, model, man = model_from_file(a.model)
    with open(a.text, encoding="utf-8") as fh:
        lines = [ln.rstrip("\r\n") for ln in fh]
    lines = [ln for ln in lines if ln.strip()]
    r = evaluate(model, c, sp, lines)
    print(json.dumps(r))
    if a.out:
        full = dict(r)
        full.update(model=man["name"], file=os.path.basename(a.model), eval_file=a.text,
                    lines=len(lines), perplexity=math.exp(r["nats_per_token"]),
                    computed_by="src/train/evaluate.py, PyTorch %s, float64" % torch.__version__)
        with open(a.out, "w") as fh:
            json.dump(full, fh, indent=1)


if __name__ == "__main__":
    main()
