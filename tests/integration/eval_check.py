#!/usr/bin/python3
"""sparsetf-dist --eval against an independent computation of the same definition
(docs/quality.md): python SentencePiece for the ids, the numpy reference
(tests/reference/reference.py) for the logits, float64 softmax.

    eval_check.py GEN DIST WORKDIR
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import sentencepiece as spm

SRC = os.environ.get("STF_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(SRC, "tests", "reference"))
import reference  # noqa: E402


def reference_eval(model_path, spm_path, text_path):
    cfg, weights, _ = reference.load_model(model_path)
    model = reference.Reference(cfg, weights)
    sp = spm.SentencePieceProcessor(model_file=spm_path)
    T = cfg["max_seq_len"]
    nats, tokens, chars = 0.0, 0, 0
    with open(text_path, encoding="utf-8") as fh:
        lines = [ln.rstrip("\r\n") for ln in fh]
    for line in lines:
        if not line.strip():
            continue
        doc = [cfg["bos_id"]] + sp.encode(line) + [cfg["eos_id"]]
        w = 0
        while w + 1 < len(doc):
            win = doc[w:w + T]
            logits = model.forward(win[:-1])
            for p in range(len(win) - 1):
                row = logits[p]
                mx = row.max()
                nats += math.log(np.exp(row - mx).sum()) + mx - row[win[p + 1]]
                tokens += 1
            w += T - 1
        chars += len(line)
    return {"tokens": tokens, "chars": chars, "nats_per_token": nats / tokens,
            "bits_per_char": nats / math.log(2) / chars}


def main():
    gen, dist, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    spm_path = os.path.join(SRC, "tests", "tokenizer", "unigram_nfkc.model")
    cfg = os.path.join(work, "eval.cfg")
    with open(cfg, "w") as fh:  # max_seq_len 24 so that long lines are cut into windows
        fh.write("vocab_size = 2000\nmax_seq_len = 24\nsru_units = 16\n")
    model = os.path.join(work, "eval.stf")
    subprocess.run([gen, "--preset", "tiny-sparse", "--config", cfg, "--seed", "11",
                    "--tokenizer", spm_path, "--out", model], check=True,
                   stderr=subprocess.DEVNULL)
    text = os.path.join(work, "eval.txt")
    with open(text, "w", encoding="utf-8") as fh:
        fh.write("It is a truth universally acknowledged.\n\n"
                 "Émilie wrote to her sister about the ball at Netherfield; "
                 "she danced twice with Mr. Bingley, and the evening was long and merry.\n"
                 "短い文。\n")
    out = subprocess.run([dist, "--model", model, "--eval", text], check=True,
                         capture_output=True, text=True).stdout
    got = json.loads(out)
    want = reference_eval(model, spm_path, text)
    print("engine:   ", {k: got[k] for k in want})
    print("reference:", want)
    ok = got["tokens"] == want["tokens"] and got["chars"] == want["chars"]
    for k in ("nats_per_token", "bits_per_char"):
        ok &= abs(got[k] - want[k]) <= 1e-4 * abs(want[k])
    ok &= got["windows"] > got["documents"]  # the long line was cut into windows
    print("eval_check: %d passed, %d failed" % (int(ok), int(not ok)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
