#!/usr/bin/python3
"""Tokenises train.txt into one stream for training: every line (paragraph) becomes
[BOS] + SentencePiece ids + [EOS], concatenated in file order.

Writes OUT.tokens.npy (uint16) and OUT.starts.npy (int64: index of each paragraph's BOS).
"""

import argparse

import numpy as np
import sentencepiece as spm


def encode_lines(sp, path):
    with open(path, encoding="utf-8") as fh:
        lines = [ln.rstrip("\n") for ln in fh]
    lines = [ln for ln in lines if ln]
    return lines, [sp.encode(ln) for ln in lines]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spm", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--out", required=True, help="output prefix")
    a = ap.parse_args()
    sp = spm.SentencePieceProcessor(model_file=a.spm)
    bos, eos = sp.bos_id(), sp.eos_id()
    _, ids = encode_lines(sp, a.text)
    n = sum(len(x) + 2 for x in ids)
    toks = np.empty(n, dtype=np.uint16)
    starts = np.empty(len(ids), dtype=np.int64)
    p = 0
    for i, x in enumerate(ids):
        starts[i] = p
        toks[p] = bos
        toks[p + 1:p + 1 + len(x)] = x
        toks[p + 1 + len(x)] = eos
        p += len(x) + 2
    np.save(a.out + ".tokens.npy", toks)
    np.save(a.out + ".starts.npy", starts)
    lens = np.array([len(x) for x in ids])
    print("paragraphs %d tokens %d (incl. BOS/EOS) max paragraph tokens %d mean %.1f"
          % (len(ids), n, lens.max(), lens.mean()))


if __name__ == "__main__":
    main()
