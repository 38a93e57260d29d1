#!/usr/bin/python3
"""--prompt TEXT end to end: the engine's tokenisation of a text prompt (the tokenizer
embedded in the model) must equal python SentencePiece's with BOS in front, so the greedy
continuation equals the one from --prompt-tokens; the printed text starts with the prompt.

    prompt_text.py DIST MODEL SPM_MODEL
"""
import subprocess
import sys

import sentencepiece as spm

dist, model, spm_path = sys.argv[1:4]
prompt = "It is a truth universally acknowledged, that a single man in possession"
sp = spm.SentencePieceProcessor(model_file=spm_path)
ids = [sp.bos_id()] + sp.encode(prompt)
common = ["--model", model, "--max-tokens", "24", "--temperature", "0", "--quiet"]
by_text = subprocess.run([dist, "--prompt", prompt, "--print-tokens"] + common, check=True,
                         capture_output=True, text=True).stdout.splitlines()
by_ids = subprocess.run([dist, "--prompt-tokens", " ".join(map(str, ids)), "--print-tokens"]
                        + common, check=True, capture_output=True, text=True).stdout.splitlines()
fails = 0
if by_text[0] != by_ids[0]:
    print("FAIL: generated ids differ:\n  --prompt:        %s\n  --prompt-tokens: %s"
          % (by_text[0], by_ids[0]))
    fails += 1
gen = [int(t) for t in by_text[0].split()]
want_text = sp.decode(ids + gen)
if by_text[1] != want_text or not by_text[1].startswith(prompt):
    print("FAIL: text\n  engine:        %r\n  sentencepiece: %r" % (by_text[1], want_text))
    fails += 1
print("engine text:", by_text[1])
print("prompt_text: %d passed, %d failed" % (2 - fails, fails))
sys.exit(1 if fails else 0)
