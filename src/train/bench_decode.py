#!/usr/bin/python3
"""Per-token decode time of the dense and the sparse default models on this machine, measured
in the same run with interleaved repetitions (so both see the same machine load).

For each round and each of the 10 reference prompts (tests/model/reference-*.json), runs
  sparsetf-dist --model M --prompt-tokens IDS --max-tokens 128 --temperature 0.8 --seed S
                --stats-json F --quiet
alternating the models, and collects latency_ms.median (the per-token decode latency of that
run). Reports the median over all runs per model, the weights a token reads, and writes JSON.

usage: bench_decode.py --dist BIN [--rounds 5] [--threads 1] [--out bench.json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))


def read_bytes_per_token(cfg):
    """fp32 weight bytes one decoded token reads: per layer (SPEC §5 counting) and in total."""
    d, F, V = cfg["d_model"], cfg["d_ff"], cfg["vocab_size"]
    if cfg["attn"] == 0:
        attn = 4 * d * d + 4 * d
    else:
        S = cfg["qkv_modules"]
        M = d // S
        attn = S * d + d * M + d + 2 * (9 * M * M + M) + 3 * M * M + M
    if cfg["ff"] == 0:
        ff = 2 * d * F + F + d
    else:
        r, N = cfg["ff_rank"], cfg["ff_block"]
        B = F // N
        ff = d * r + r * F + F + 2 * B * d + d
    layer = attn + ff + 4 * d
    if cfg["out"] == 0:
        head = d * V + V
    else:
        S = cfg["out_modules"]
        head = S * d + d * (V // S) + V
    return 4 * layer, 4 * (cfg["n_layers"] * layer + head + 2 * d + 2 * d)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dist", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--out")
    a = ap.parse_args()
    import reference as R
    models = {}
    for p in ("dense", "sparse"):
        path = os.path.join(ROOT, "src", "train", "models", "default-%s.stf" % p)
        cfg, _, _ = R.load_model(path)
        ref = json.load(open(os.path.join(ROOT, "tests", "model", "reference-%s.json" % p)))
        models[p] = {"path": path, "cfg": cfg, "prompts": [q["prompt_tokens"] for q in ref["prompts"]],
                     "lat": [], "tps": [], "tokens": 0}
    tmp = tempfile.mkdtemp()
    for rnd in range(a.rounds):
        for i in range(10):
            for p in (("dense", "sparse") if (rnd + i) % 2 == 0 else ("sparse", "dense")):
                m = models[p]
                st = os.path.join(tmp, "st.json")
                cmd = [a.dist, "--model", m["path"], "--prompt-tokens",
                       " ".join(map(str, m["prompts"][i])), "--max-tokens", str(a.max_tokens),
                       "--temperature", "0.8", "--seed", str(1 + rnd), "--threads",
                       str(a.threads), "--stats-json", st, "--quiet"]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                s = json.load(open(st))
                if s["generated_tokens"] >= 8:
                    m["lat"].append(s["latency_ms"]["median"])
                    m["tps"].append(s["tokens_per_s"])
                    m["tokens"] += s["generated_tokens"]
    out = {"machine_note": "shared 2-core VM, other builds running; same run, interleaved",
           "threads": a.threads, "max_tokens": a.max_tokens, "rounds": a.rounds}
    for p, m in models.items():
        per_layer, total = read_bytes_per_token(m["cfg"])
        out[p] = {"runs": len(m["lat"]), "tokens": m["tokens"],
                  "median_ms_per_token": statistics.median(m["lat"]),
                  "min_run_median_ms": min(m["lat"]),
                  "median_tokens_per_s": statistics.median(m["tps"]),
                  "weight_bytes_read_per_token": total,
                  "weight_bytes_read_per_layer": per_layer}
    out["sparse_speedup"] = out["dense"]["median_ms_per_token"] / out["sparse"]["median_ms_per_token"]
    print(json.dumps(out, indent=1))
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
