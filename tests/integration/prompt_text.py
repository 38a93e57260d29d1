#!/usr/bin/python3
"""--prompt TEXT end to end: the engine's tokenisation of a text prompt (the tokenizer
embedded in the model) must equal python SentencePiece's with BOS in front, so the greedy
continuation equals the one from --prompt-tokens; the printed text starts with the prompt.
Prompts whose normalisation expands (NFKC: U+337F is four letters, U+FDFA is 18) go through
--prompt, --prompts and --eval too.

    prompt_text.py DIST MODEL SPM_MODEL
"""
import json
import os
import subprocess
import sys
import tempfile

import sentencepiece as spm

dist, model, spm_path = sys.argv[1:4]
prompts = ["It is a truth universally acknowledged, that a single man in possession",
           "\u337f", "\ufdfa", "\ufdfa\u337f \ufdfa"]
sp = spm.SentencePieceProcessor(model_file=spm_path)
common = ["--model", model, "--max-tokens", "24", "--temperature", "0", "--quiet"]
fails = checks = 0


def run(args):
    p = subprocess.run([dist] + args, capture_output=True, text=True)
    if p.returncode != 0:
        print("FAIL: %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
        return None
    return p.stdout.splitlines()


def check(ok, what):
    global fails, checks
    checks += 1
    if not ok:
        print("FAIL:", what)
        fails += 1


for prompt in prompts:
    ids = [sp.bos_id()] + sp.encode(prompt)
    by_text = run(["--prompt", prompt, "--print-tokens"] + common)
    by_ids = run(["--prompt-tokens", " ".join(map(str, ids)), "--print-tokens"] + common)
    if by_text is None or by_ids is None:
        check(False, "prompt %r did not run" % prompt)
        continue
    check(by_text[0] == by_ids[0], "prompt %r: generated ids differ:\n  --prompt:        %s\n"
          "  --prompt-tokens: %s" % (prompt, by_text[0], by_ids[0]))
    gen = [int(t) for t in by_text[0].split()]
    want_text = sp.decode(ids + gen)
    check(by_text[1] == want_text, "prompt %r: text\n  engine:        %r\n  sentencepiece: %r"
          % (prompt, by_text[1], want_text))
    print("engine text:", by_text[1])

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "prompts.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(p + "\n" for p in prompts))
    # --prompts: each session's ids equal its --prompt-tokens run
    # several sessions stream "[i] id" lines as tokens come, then "[i] text"
    out = run(["--prompts", path, "--print-tokens"] + common)
    lines = {i: [] for i in range(len(prompts))}
    for line in out or []:
        tag, _, rest = line.partition("] ")
        if tag.startswith("[") and tag[1:].isdigit() and int(tag[1:]) in lines:
            lines[int(tag[1:])].append(rest)
    for i, prompt in enumerate(prompts):
        solo = run(["--prompt-tokens", " ".join(map(str, [sp.bos_id()] + sp.encode(prompt))),
                    "--print-tokens"] + common)
        got = " ".join(lines[i][:-1])
        check(solo is not None and got == solo[0],
              "--prompts session %d (%r): ids %r differ from its solo run's %r"
              % (i, prompt, got, solo and solo[0]))
        ids = [sp.bos_id()] + sp.encode(prompt) + [int(t) for t in lines[i][:-1]]
        check(lines[i][-1:] == [sp.decode(ids)],
              "--prompts session %d (%r): text %r, sentencepiece %r"
              % (i, prompt, lines[i][-1:], sp.decode(ids)))
    # --eval: one target per id after BOS plus the final EOS
    out = run(["--model", model, "--eval", path, "--quiet"])
    want = sum(len(sp.encode(p)) + 1 for p in prompts)
    got = json.loads(out[0])["tokens"] if out else None
    check(got == want, "--eval counted %r tokens, sentencepiece gives %d" % (got, want))

print("prompt_text: %d passed, %d failed" % (checks - fails, fails))
sys.exit(1 if fails else 0)
