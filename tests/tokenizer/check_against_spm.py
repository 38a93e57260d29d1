#!/usr/bin/python3
"""Checks sparsetf-tok against the reference SentencePiece (Debian python3-sentencepiece).

For every line of the corpus (bytes, "\\n"-separated):
  1. ids:        `sparsetf-tok --model M encode` must print exactly the ids that
                 SentencePieceProcessor.encode(line) returns;
  2. round trip: `sparsetf-tok --model M decode` of those ids must print exactly
                 SentencePieceProcessor.decode(reference ids).
The reference runs here, at test time, in this separate process; nothing is cached.
Reports the first mismatch of each kind with the line number, the input and both
outputs, and exits 1 if there was any.

usage: check_against_spm.py SPARSETF_TOK MODEL CORPUS [MODEL CORPUS ...]
"""
import subprocess
import sys

import sentencepiece as spm


def run(tok, model, cmd, data):
    p = subprocess.run([tok, "--model", model, cmd], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        sys.exit("FAIL: sparsetf-tok %s on %s exited %d: %s" %
                 (cmd, model, p.returncode, p.stderr.decode("utf-8", "replace")))
    return p.stdout


def show(ids, sp):
    return "%s\n      pieces: %s" % (ids, [sp.id_to_piece(i) for i in ids])


def check(tok, model, corpus):
    sp = spm.SentencePieceProcessor(model_file=model)
    with open(corpus, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()

    ours = run(tok, model, "encode", data).split(b"\n")
    if ours and ours[-1] == b"":
        ours.pop()
    if len(ours) != len(lines):
        print("FAIL %s: %d output lines for %d input lines" % (model, len(ours), len(lines)))
        return False

    ok = True
    n_ids = 0
    mismatches = 0
    ref_ids_all = []
    for i, (line, out) in enumerate(zip(lines, ours)):
        ref = sp.encode(line)
        ref_ids_all.append(ref)
        got = [int(x) for x in out.split()]
        n_ids += len(ref)
        if got != ref:
            mismatches += 1
            if mismatches == 1:
                print("FAIL %s: ids differ on %s line %d" % (model, corpus, i + 1))
                print("  input:  %r" % line)
                print("  spm:    %s" % show(ref, sp))
                print("  ours:   %s" % show(got, sp))
            ok = False

    # round trip: our decoder on the reference ids vs the reference decoder
    id_text = b"\n".join(b" ".join(b"%d" % x for x in ids) for ids in ref_ids_all) + b"\n"
    decoded = run(tok, model, "decode", id_text).split(b"\n")
    decode_mismatches = 0
    for i, ids in enumerate(ref_ids_all):
        ref_text = sp.decode(ids).encode("utf-8", "surrogateescape")
        if b"\n" in ref_text:
            continue  # a decoded newline cannot be compared line by line
        got = decoded[i] if i < len(decoded) else b"<missing>"
        if got != ref_text:
            decode_mismatches += 1
            if decode_mismatches == 1:
                print("FAIL %s: decode differs on %s line %d" % (model, corpus, i + 1))
                print("  input:  %r" % lines[i])
                print("  ids:    %s" % ids)
                print("  spm:    %r" % ref_text)
                print("  ours:   %r" % got)
            ok = False

    print("%s %s: %d lines, %d ids, %d id mismatches, %d decode mismatches" %
          ("ok  " if ok else "FAIL", model, len(lines), n_ids, mismatches, decode_mismatches))
    return ok


def main():
    if len(sys.argv) < 4 or len(sys.argv) % 2 != 0:
        sys.exit(__doc__)
    tok = sys.argv[1]
    ok = True
    for k in range(2, len(sys.argv), 2):
        ok = check(tok, sys.argv[k], sys.argv[k + 1]) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
