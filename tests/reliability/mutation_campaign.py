#!/usr/bin/python3
"""Mutation campaign: damaged model files through the loader and a short decode.

Generates small models (dense and all-sparse, with an embedded tokenizer), writes N damaged
copies with mutate_model (header fields, config fields, tensor table entries, tensor data,
cut/extended/overwritten bytes) and runs sparsetf-dist on each (a 3-token prompt, 4 greedy
tokens, logits dumped). Each run is classified:

  clean-error   non-zero exit, one error line that names the model file
  ran-same      exit 0, the same tokens as the undamaged model, finite logits
  ran-changed   exit 0, finite logits, different tokens, from a change the format allows
                (weights or config values): every such file is run again with --verify,
                which must reject it when the change was to tensor bytes or the table
  crash         killed by a signal, a sanitizer report, a timeout, or an exit code that is
                not one of sparsetf-dist's
  garbage       exit 0 but non-finite logits, token ids outside the vocabulary, or a
                change to the table/bytes that even --verify accepts with other tokens

    mutation_campaign.py --gen GEN --dist DIST --mutate MUTATE --workdir DIR -n N [--seed S]
                         [--require-clean] [--ranks R --mpiexec ... ]

Exits 1 if any run is a crash or garbage. Prints one JSON line with the counts.
"""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys

import numpy as np

MICRO = {
    "dense": "d_model = 16\nn_heads = 2\nn_layers = 3\nd_ff = 32\nvocab_size = 1500\n"
             "max_seq_len = 16\nff = dense\nattn = dense\nout = dense\nbos_id = 1\neos_id = 2\n",
    "sparse": "d_model = 16\nn_heads = 2\nn_layers = 3\nd_ff = 32\nvocab_size = 1500\n"
              "max_seq_len = 16\nff = sparse\nff_block = 4\nff_rank = 4\nattn = sparse_qkv\n"
              "qkv_modules = 2\nout = multiplicative\nout_modules = 4\nsru_units = 8\n"
              "bos_id = 1\neos_id = 2\n",
}
PROMPT = "1 5 9"


def run(dist, model, dump, extra, timeout=30):
    cmd = [dist, "--model", model, "--prompt-tokens", PROMPT, "--max-tokens", "4",
           "--temperature", "0", "--print-tokens", "--quiet", "--dump-logits", dump,
           "--timeout", "10"] + extra
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           errors="replace")
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return "timeout", "", ""


def tokens_of(stdout):
    lines = stdout.splitlines()
    return lines[0].split() if lines else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen", required=True)
    ap.add_argument("--dist", required=True)
    ap.add_argument("--mutate", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tokenizer", help="SentencePiece .model to embed")
    ap.add_argument("--log", help="write one JSON line per mutation here")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    vocab = 1500  # the embedded tokenizer's piece count
    sources = {}
    for name, text in MICRO.items():
        cfg = os.path.join(args.workdir, name + ".cfg")
        with open(cfg, "w") as f:
            f.write(text)
        path = os.path.join(args.workdir, name + ".stf")
        cmd = [args.gen, "--config", cfg, "--out", path, "--seed", "3"]
        if args.tokenizer:
            cmd += ["--tokenizer", args.tokenizer]
        subprocess.run(cmd, check=True, capture_output=True)
        dump = os.path.join(args.workdir, name + ".logits")
        rc, out, err = run(args.dist, path, dump, [])
        if rc != 0:
            sys.exit("undamaged %s does not run: %s" % (name, err))
        sources[name] = (path, tokens_of(out))
    counts = collections.Counter()
    by_class = collections.defaultdict(collections.Counter)
    bad = []
    log = open(args.log, "w") if args.log else None
    mutated = os.path.join(args.workdir, "mutated.stf")
    dump = os.path.join(args.workdir, "mutated.logits")
    for i in range(args.n):
        seed = args.seed + i
        name = sorted(sources)[i % len(sources)]
        src, want = sources[name]
        m = subprocess.run([args.mutate, src, mutated, str(seed)], capture_output=True,
                           text=True, check=True)
        what = m.stdout.strip()
        cls = what.split()[0]
        if cls == "skip":
            counts["skipped"] += 1
            continue
        if os.path.exists(dump):
            os.unlink(dump)
        rc, out, err = run(args.dist, mutated, dump, [])
        sanitizer = "Sanitizer" in err or "runtime error:" in err
        if rc == "timeout" or sanitizer or rc < 0 or rc not in (0, 1, 2, 3):
            outcome = "crash"
        elif rc != 0:
            lines = [l for l in err.splitlines() if l.startswith("sparsetf-dist")]
            named = mutated in err
            outcome = "clean-error" if lines and named else "unclear-error"
        else:
            toks = tokens_of(out)
            logits = np.fromfile(dump, dtype="<f4") if os.path.exists(dump) else np.zeros(0)
            finite = logits.size > 0 and bool(np.isfinite(logits).all())
            in_vocab = all(t.isdigit() and int(t) < vocab for t in toks) and len(toks) > 0
            if not finite or not in_vocab:
                outcome = "garbage"
            elif toks == want:
                outcome = "ran-same"
            else:
                outcome = "ran-changed"
                # tensor bytes or table changes must be caught by the checksums
                if cls in ("data", "table", "bytes"):
                    vrc, _, verr = run(args.dist, mutated, dump, ["--verify"])
                    if vrc == 0:
                        outcome = "garbage"
                    else:
                        outcome = "ran-changed (--verify rejects)"
        counts[outcome] += 1
        by_class[cls][outcome] += 1
        rec = {"seed": seed, "model": name, "mutation": what, "outcome": outcome, "exit": rc,
               "stderr": err.strip()[-300:]}
        if log:
            log.write(json.dumps(rec) + "\n")
        if outcome in ("crash", "garbage", "unclear-error"):
            bad.append(rec)
            keep = os.path.join(args.workdir, "bad-%d.stf" % seed)
            shutil.copy(mutated, keep)
    for rec in bad[:20]:
        print("BAD:", json.dumps(rec))
    print("by mutation class:")
    for cls in sorted(by_class):
        print("  %-7s %s" % (cls, dict(by_class[cls])))
    summary = {"mutations": args.n, **counts}
    print(json.dumps(summary))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
