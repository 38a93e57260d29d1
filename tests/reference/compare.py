#!/usr/bin/python3
"""Compares the sparsetf C engine against the independent numpy reference (reference.py).

For every combination of {ff dense|sparse} x {attn dense|sparse_qkv} x {out dense|multiplicative}
x {sru 0|32} (tiny preset plus config overrides) and one larger-shape case, it generates a
model with sparsetf-gen, decodes greedily with sparsetf-dist (--kernels ref and --kernels fast),
recomputes the logits of every row with the reference in float64 and checks
    max_v |engine - reference| <= RTOL * max_v |reference|      for every row
and that every generated token is the reference's greedy choice. Terraformer cases (SPEC §3)
cover LSH attention (SPEC §2) through several cache drops; q8 cases use the q8 rule below.

Before that it runs reference self-checks so that agreement is not trivial: the vectorised
blocks equal naive loop transcriptions of the SPEC formulas, every weight tensor influences
the reference logits, and sparse FF controllers select varied units.

Usage:
    /usr/bin/python3 compare.py --gen build/src/tools/sparsetf-gen \
        --dist build/src/tools/sparsetf-dist --workdir /tmp/ref [--cases N,M] [--kernels ref,fast]
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402

RTOL = 1e-4
# q8 cases: an activation within a float32 rounding of a q8 rounding boundary rounds to
# neighbouring integers in the float64 reference and the float32 engine, which moves that
# row's logits and, through the caches, later rows' by up to several 1e-2 of their range
# (tests/model/check_q8.py). So the rows before the first such flip must agree within RTOL,
# and there must be at least Q8_CLEAN_ROWS of them; after it, every row within Q8_FLIP_TOL,
# and a greedy token may differ only where the reference's top logits are within that.
Q8_CLEAN_ROWS = 16
Q8_FLIP_TOL = 0.2
MUTANT_CASES = (15, 16, 17, 20, 26, 27, 28)
N_PROMPT = 64
MAX_TOKENS = 32


def build_cases():
    cases = []
    i = 0
    for ff in ("dense", "sparse"):
        for attn in ("dense", "sparse_qkv"):
            for out in ("dense", "multiplicative"):
                for sru in (0, 32):
                    name = "ff=%s attn=%s out=%s sru=%d" % (ff, attn, out, sru)
                    over = {"ff": ff, "attn": attn, "out": out, "sru_units": sru}
                    cases.append({"name": name, "preset": "tiny-dense", "over": over,
                                  "seed": 101 + 7 * i})
                    i += 1
    cases.append({"name": "big: L=3 d=128 H=8 sparse all, S=4 S_out=8 sru=32",
                  "preset": "tiny-sparse-sru",
                  "over": {"n_layers": 3, "d_model": 128, "n_heads": 8, "ff": "sparse",
                           "attn": "sparse_qkv", "out": "multiplicative", "out_modules": 8,
                           "qkv_modules": 4, "sru_units": 32},
                  "seed": 9001})
    odd = {"d_model": 96, "n_heads": 6, "n_layers": 2, "d_ff": 360, "ff_block": 8, "ff_rank": 12,
           "vocab_size": 500, "out_modules": 5, "qkv_modules": 3, "sru_units": 20,
           "max_seq_len": 100}
    cases.append({"name": "odd: d=96 H=6 S=3 N=8 r=12 V=500 S_out=5 sru=20, 1-tok prompt",
                  "preset": "tiny-sparse-sru",
                  "over": dict(odd, ff="sparse", attn="sparse_qkv", out="multiplicative"),
                  "seed": 4242, "n_prompt": 1, "max_tokens": 40})
    cases.append({"name": "odd dense: d=96 H=6 V=500 sru=20, fills T=100",
                  "preset": "tiny-dense",
                  "over": dict(odd, ff="dense", attn="dense", out="dense"),
                  "seed": 777, "n_prompt": 67, "max_tokens": 33})
    # Terraformer (SPEC §3) and LSH attention (SPEC §2): tiny-terraformer has C = 16,
    # P = 24, D = 8, so 96 positions go through 9 drops; the LSH pattern varies per case
    lsh_patterns = ((2, 1), (1, 0), (3, 0), (2, 0))
    j = 0
    for ff in ("dense", "sparse"):
        for attn in ("dense", "sparse_qkv"):
            for out in ("dense", "multiplicative"):
                per, ph = lsh_patterns[j % 4]
                sru = 16 if j % 2 else 0
                over = {"ff": ff, "attn": attn, "out": out, "sru_units": sru, "lsh_period": per,
                        "lsh_phase": ph}
                cases.append({"name": "terraformer ff=%s attn=%s out=%s sru=%d lsh %d/%d" %
                              (ff, attn, out, sru, per, ph), "preset": "tiny-terraformer",
                              "over": over, "seed": 501 + 13 * j})
                j += 1
    cases.append({"name": "scaling + LSH in layer 0 (sparse, sru=32), 9 drops",
                  "preset": "tiny-sparse-sru",
                  "over": {"lsh_period": 2, "lsh_phase": 0, "lsh_n_hashes": 2,
                           "lsh_n_buckets": 4, "lsh_chunk_len": 4, "lsh_chunks_before": 1,
                           "lsh_cache_len": 24, "lsh_drop_len": 8}, "seed": 8080})
    cases.append({"name": "odd terraformer: d=60 H=4 (dh=15) 3 rounds of 2 buckets (odd R), "
                          "C=6 P=10 D=3, 1-tok prompt",
                  "preset": "tiny-terraformer",
                  "over": {"d_model": 60, "n_heads": 4, "qkv_modules": 3, "lsh_n_hashes": 3,
                           "lsh_n_buckets": 2, "lsh_chunk_len": 2, "lsh_chunks_before": 0,
                           "lsh_cache_len": 10, "lsh_drop_len": 3, "lsh_period": 1,
                           "lsh_phase": 0},
                  "seed": 6060, "n_prompt": 1, "max_tokens": 60})
    cases.append({"name": "long terraformer: T=400, 300 positions, D=P (drops empty the cache)",
                  "preset": "tiny-terraformer",
                  "over": {"max_seq_len": 400, "lsh_cache_len": 20, "lsh_drop_len": 20,
                           "lsh_chunk_len": 2},
                  "seed": 7070, "n_prompt": 200, "max_tokens": 100})
    # q8 weights (docs/file-format.md) on Terraformers with LSH: the reference dequantises and
    # rounds activations as the engine does; rows are checked with the q8 rule (Q8_* below)
    for over, seed in (({}, 9101),
                       ({"ff": "dense", "attn": "dense", "out": "dense", "sru_units": 16}, 9102),
                       ({"lsh_period": 1, "lsh_phase": 0}, 9103)):
        name = " ".join("%s=%s" % kv for kv in over.items()) or "(preset)"
        cases.append({"name": "q8 terraformer " + name, "preset": "tiny-terraformer",
                      "over": dict(over, weights="q8"), "seed": seed})
    return cases


def rotation_seed(run_seed, session_index):
    """docs/protocol.md: session i of a run with --seed S draws LSH rotations from
    sm(sm(S + i))."""
    return R.splitmix64(R.splitmix64((run_seed + session_index) % 2 ** 64))


class CaseFailure(Exception):
    pass


def run(cmd, what):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode != 0:
        raise CaseFailure("%s failed (exit %d): %s\nstderr:\n%s" %
                          (what, p.returncode, " ".join(cmd), p.stderr.strip()[-2000:]))
    return p.stdout


def parse_tokens(stdout):
    """The last stdout line consisting only of integers."""
    found = None
    for line in stdout.splitlines():
        parts = line.split()
        if parts and all(x.lstrip("-").isdigit() for x in parts):
            found = [int(x) for x in parts]
    if found is None:
        raise CaseFailure("no token line in sparsetf-dist output:\n" + stdout[-1000:])
    return found


def check_engine(ref, prompt, tokens, logits_path, kernels, max_tokens):
    """Returns dict(max_rel, worst_row, tokens_ok, ties, msgs)."""
    V = ref.cfg["vocab_size"]
    raw = np.fromfile(logits_path, dtype="<f4")
    if raw.size % V:
        raise CaseFailure("[%s] logits dump has %d floats, not a multiple of V=%d" %
                          (kernels, raw.size, V))
    eng = raw.reshape(-1, V).astype(np.float64)
    rows = eng.shape[0]
    n_gen = len(tokens)
    if n_gen == 0:
        raise CaseFailure("[%s] engine generated no tokens" % kernels)
    if rows != len(prompt) + n_gen - 1:
        raise CaseFailure("[%s] logits dump has %d rows, expected n_prompt + n_gen - 1 = %d" %
                          (kernels, rows, len(prompt) + n_gen - 1))
    if n_gen > max_tokens or (n_gen < max_tokens and tokens[-1] != ref.cfg["eos_id"]):
        raise CaseFailure("[%s] engine generated %d tokens for --max-tokens %d (and the last "
                          "is not eos)" % (kernels, n_gen, max_tokens))
    if not np.all(np.isfinite(eng)):
        raise CaseFailure("[%s] engine logits contain non-finite values" % kernels)
    seq = list(prompt) + list(tokens[:rows - len(prompt)])
    record, lsh_record = [], []
    rl = ref.forward(seq, record=record, lsh_record=lsh_record)
    scale = np.abs(rl).max(axis=1)
    err = np.abs(eng - rl).max(axis=1)
    rel = err / scale
    msgs = []
    q8 = bool(ref.q8)
    tol = Q8_FLIP_TOL if q8 else RTOL
    bad = np.nonzero(rel > tol)[0]
    if q8:
        over = np.nonzero(rel > RTOL)[0]
        clean = int(over[0]) if over.size else rows
        if clean < min(rows, Q8_CLEAN_ROWS):
            msgs.append("[%s] q8: row %d already differs by %.3e (> %.0e) from the reference; "
                        "need %d rows within before the first rounding flip" %
                        (kernels, clean, rel[clean], RTOL, Q8_CLEAN_ROWS))
    if bad.size:
        t = int(bad[0])
        msgs.append("[%s] %d rows exceed rel err %.0e; first at row %d (%s position %d): "
                    "rel %.3e, max|ref| %.4g; engine argmax %d ref argmax %d" %
                    (kernels, bad.size, tol, t, "prompt" if t < len(prompt) else "generated",
                     t, rel[t], scale[t], int(np.argmax(eng[t])), int(np.argmax(rl[t]))))
        if record:
            gaps = min(r["min_gap"] for r in record)
            msgs.append("    (smallest sparse-FF controller margin in the reference: %.3g)" % gaps)
        if lsh_record:
            msgs.append("    (smallest LSH bucket-argmax margin in the reference: %.3g; the "
                        "engine hashes in float32)" % min(lsh_record))
    tokens_ok = True
    ties = 0
    for g in range(n_gen):
        row = len(prompt) - 1 + g
        want = int(np.argmax(rl[row]))
        got = tokens[g]
        if got != want:
            # accept only a genuine near-tie in the reference logits
            if rl[row, got] >= rl[row, want] - tol * scale[row]:
                ties += 1
                continue
            tokens_ok = False
            msgs.append("[%s] generated token %d: engine %d, reference greedy %d "
                        "(ref logits %.6g vs %.6g)" % (kernels, g, got, want, rl[row, got],
                                                       rl[row, want]))
            break
    return {"max_rel": float(rel.max()), "worst_row": int(np.argmax(rel)),
            "tokens_ok": tokens_ok, "ties": ties, "msgs": msgs, "record": record}


def key_bias_in_dense_rule_layer(ref, name):
    """A key bias of a softmax-attention sub-layer (not LSH: there it moves the shared qk)."""
    parts = name.split(".")
    if len(parts) < 4 or parts[0] != "layers" or not (
            name.endswith(".bk") or name.endswith(".conv_k.b")):
        return False
    i, which = int(parts[1]), parts[2]
    ell = {"attn": i, "attn1": 2 * i, "attn2": 2 * i + 1}[which]
    return not ref.is_lsh(ell)


def sensitivity_check(ref, seq):
    """Every tensor must influence the reference logits. Returns failure strings."""
    fails = []
    base = ref.forward(seq)
    rng = np.random.default_rng(7)
    saved = dict(ref.w)
    try:
        for name in sorted(saved):
            w = saved[name]
            ref.w = dict(saved)
            # a controller bias only matters through which unit wins: perturb it strongly
            amp = 1.0 if name.endswith("ctrl.cb") else 0.05 * (np.abs(w).mean() + 1e-3)
            ref.w[name] = w + amp * rng.standard_normal(w.shape)
            d = np.abs(ref.forward(seq) - base).max()
            changed = d > 1e-6 * np.abs(base).max()
            # a key bias adds q.bk to every score of a query: softmax is invariant to it
            invariant = key_bias_in_dense_rule_layer(ref, name)
            if invariant and changed:
                fails.append("perturbing the key bias %s changes the logits (%.3g), but softmax "
                             "is shift-invariant" % (name, d))
            elif not invariant and not changed:
                fails.append("perturbing %s does not change the reference logits (%.3g)" % (name, d))
    finally:
        ref.w = saved
    # a single-element perturbation must change logits too (one attention/FF weight)
    names = [n for n in saved if n.endswith("attn.wq") or n.endswith("attn.conv_q.w")]
    if names:
        ref.w = dict(saved)
        w = saved[names[0]].copy()
        w.flat[0] += 0.5
        ref.w[names[0]] = w
        d = np.abs(ref.forward(seq) - base).max()
        ref.w = saved
        if not d > 1e-7:
            fails.append("single-element perturbation of %s has no effect" % names[0])
    return fails


def mutant_check(model, seq, eng_logits, sigma):
    """Each deliberately wrong reference variant must disagree with the engine.
    Returns (list of (mutant, rel err, applicable)), failure strings)."""
    res, fails = [], []
    base = R.Reference.from_file(model, rotation_seed=sigma)
    cfg = base.cfg
    lsh = cfg["lsh_period"] > 0
    tf = cfg["arch"] == R.ARCH_TERRAFORMER
    n_sub = cfg["n_layers"] * (2 if tf else 1)
    dense_rule = any(not base.is_lsh(l) for l in range(n_sub))
    applicable = {
        "conv_time_reversed": cfg["attn"] == 1, "conv_modules_flipped": cfg["attn"] == 1,
        "conv_noncausal_reset": cfg["attn"] == 1,
        "mult_flatten_minor": cfg["attn"] == 1 or cfg["out"] == 1,
        "sparse_ff_no_cb": cfg["ff"] == 1, "sparse_ff_bias_relu": cfg["ff"] == 1,
        "sru_gate_order_fry": cfg["sru_units"] > 0, "sru_no_sqrt3": cfg["sru_units"] > 0,
        "sru_reads_ln2": cfg["sru_units"] > 0,
        "heads_interleaved": dense_rule, "attn_scale_1_over_dh": dense_rule,
        "lsh_hash_no_negation": lsh, "lsh_raw_keys": lsh, "lsh_recent_only": lsh,
        "lsh_self_unmasked": lsh, "lsh_no_drop": lsh, "lsh_rotation_layer_local": lsh and tf,
        "rev_no_swap": tf, "rev_out_from_a": tf,
    }
    for m in R.MUTANTS:
        if not applicable.get(m, True):
            continue
        ref = R.Reference(cfg, {}, m, base.q8, sigma)
        ref.w = base.w
        rl = ref.forward(seq)
        rel = float((np.abs(eng_logits - rl).max(axis=1) / np.abs(rl).max(axis=1)).max())
        res.append((m, rel))
        if rel <= RTOL:
            fails.append("mutant %s agrees with the engine (rel %.2e): the comparison cannot "
                         "tell this detail apart" % (m, rel))
    return res, fails


def controller_variety(record, N):
    """Returns (min over layers of mean distinct units per block, failure strings)."""
    fails = []
    worst = None
    for li, r in enumerate(record):
        units = r["units"]  # (T, B)
        distinct = [len(np.unique(units[:, b])) for b in range(units.shape[1])]
        mean_d = float(np.mean(distinct))
        worst = mean_d if worst is None else min(worst, mean_d)
        if mean_d < 2.0:
            fails.append("layer %d: sparse FF selects on average only %.2f distinct units per "
                         "block across tokens" % (li, mean_d))
        # within a token, the chosen unit must lie in its own block
        B = units.shape[1]
        if np.any(units // N != np.arange(B)[None, :]):
            fails.append("layer %d: chosen unit outside its block" % li)
    return worst, fails


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--gen", required=True, help="path to sparsetf-gen")
    ap.add_argument("--dist", required=True, help="path to sparsetf-dist")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cases", help="comma separated case indices (default all)")
    ap.add_argument("--kernels", default="ref,fast")
    ap.add_argument("--keep-going", action="store_true", default=True)
    a = ap.parse_args()

    os.makedirs(a.workdir, exist_ok=True)
    t0 = time.time()
    failures = []

    # --- reference self-checks -------------------------------------------------------------
    st = R.self_test()
    print("reference self-test (vectorised blocks vs naive SPEC loops): %s" %
          ("ok" if not st else "FAILED"))
    failures += ["self-test: " + f for f in st]

    cases = build_cases()
    sel = range(len(cases)) if not a.cases else [int(x) for x in a.cases.split(",")]
    kernels = [k for k in a.kernels.split(",") if k]

    rows_out = []
    checked_sensitivity = False
    checked_sensitivity_tf = False
    variety = []
    for ci in sel:
        case = cases[ci]
        tag = "case%02d" % ci
        model = os.path.join(a.workdir, tag + ".stf")
        cfgfile = os.path.join(a.workdir, tag + ".cfg")
        with open(cfgfile, "w") as fh:
            for k, v in case["over"].items():
                fh.write("%s = %s\n" % (k, v))
        row = {"case": ci, "name": case["name"], "res": {}, "err": None}
        rows_out.append(row)
        try:
            run([a.gen, "--preset", case["preset"], "--config", cfgfile, "--seed",
                 str(case["seed"]), "--out", model], "sparsetf-gen")
            run_seed = 1000 + ci
            ref = R.Reference.from_file(model, verify_crc=(ci == sel[0]),  # crc: one case
                                        rotation_seed=rotation_seed(run_seed, 0))
            cfg = ref.cfg
            # the config must be what we asked for
            want = {"ff": {"dense": 0, "sparse": 1}, "attn": {"dense": 0, "sparse_qkv": 1},
                    "weights": {"f32": 0, "q8": 1},
                    "arch": {"scaling": 0, "terraformer": 1},
                    "out": {"dense": 0, "multiplicative": 1}}
            for k, v in case["over"].items():
                exp = want[k][v] if k in want else int(v)
                if cfg[k] != exp:
                    raise CaseFailure("model config %s = %s, asked for %s" % (k, cfg[k], v))
            rng = np.random.default_rng(1000 + ci)
            n_prompt = case.get("n_prompt", N_PROMPT)
            max_tokens = case.get("max_tokens", MAX_TOKENS)
            prompt = [int(t) for t in rng.integers(0, cfg["vocab_size"], n_prompt)]
            prompt = [t if t != cfg["eos_id"] else (t + 1) % cfg["vocab_size"] for t in prompt]
            toks_by_k = {}
            for k in kernels:
                out = os.path.join(a.workdir, "%s.%s.f32" % (tag, k))
                if os.path.exists(out):
                    os.remove(out)
                stdout = run([a.dist, "--model", model, "--prompt-tokens",
                              " ".join(map(str, prompt)), "--max-tokens", str(max_tokens),
                              "--temperature", "0", "--print-tokens", "--dump-logits", out,
                              "--kernels", k, "--seed", str(run_seed)],
                             "sparsetf-dist --kernels " + k)
                toks = parse_tokens(stdout)
                toks_by_k[k] = toks
                res = check_engine(ref, prompt, toks, out, k, max_tokens)
                row["res"][k] = res
                failures += ["%s (%s): %s" % (tag, case["name"], m) for m in res["msgs"]
                             if not m.startswith("    ")]
                for m in res["msgs"]:
                    print("  " + tag + " " + m)
                if cfg["ff"] == 1 and k == kernels[0]:
                    worst, vf = controller_variety(res["record"], cfg["ff_block"])
                    variety.append(worst)
                    failures += ["%s: %s" % (tag, f) for f in vf]
            if ci in MUTANT_CASES and kernels:
                k0 = kernels[0]
                eng = np.fromfile(os.path.join(a.workdir, "%s.%s.f32" % (tag, k0)),
                                  dtype="<f4").reshape(-1, cfg["vocab_size"]).astype(np.float64)
                toks = toks_by_k[k0]
                seq = list(prompt) + list(toks[:eng.shape[0] - len(prompt)])
                mres, mf = mutant_check(model, seq, eng, ref.sigma)
                print("mutants on %s (each must disagree; min rel err %.2e over %d): %s" %
                      (tag, min(r for _, r in mres), len(mres), "ok" if not mf else "FAILED"))
                for m, r in mres:
                    print("    %-22s rel err %.2e" % (m, r))
                failures += ["%s: %s" % (tag, f) for f in mf]
            full = cfg["ff"] == 1 and cfg["attn"] == 1 and cfg["sru_units"] and cfg["out"] == 1 \
                and len(prompt) >= 24
            tf = cfg["arch"] == R.ARCH_TERRAFORMER
            if full and not (checked_sensitivity_tf if tf else checked_sensitivity):
                sf = sensitivity_check(ref, prompt[:24] if not tf else prompt[:40])
                print("reference sensitivity (every tensor changes the logits) on %s: %s" %
                      (tag, "ok" if not sf else "FAILED"))
                failures += ["sensitivity: " + f for f in sf]
                if tf:
                    checked_sensitivity_tf = True
                else:
                    checked_sensitivity = True
        except (CaseFailure, R.FormatError, ValueError, KeyError) as e:
            row["err"] = str(e)
            failures.append("%s (%s): %s" % (tag, case["name"], e))
            print("  %s ERROR: %s" % (tag, e))

    # --- table --------------------------------------------------------------------------------
    print()
    hdr = "%-4s %-62s" % ("#", "case")
    for k in kernels:
        hdr += " | %-9s %-9s" % ("rel(" + k + ")", "tokens")
    print(hdr)
    print("-" * len(hdr))
    for row in rows_out:
        line = "%-4d %-62s" % (row["case"], row["name"])
        for k in kernels:
            r = row["res"].get(k)
            if r is None:
                line += " | %-9s %-9s" % ("ERROR", "-")
            else:
                ok = ("ok" if r["tokens_ok"] else "MISMATCH") + ("(%dt)" % r["ties"] if r["ties"] else "")
                flag = "" if r["max_rel"] <= RTOL else "!"
                line += " | %-9s %-9s" % ("%.2e%s" % (r["max_rel"], flag), ok)
        print(line)
    print()
    if variety:
        print("sparse FF: min over layers of mean distinct units per block across tokens: %.2f"
              % min(variety))
    print("tolerance: max|engine - reference| <= %.0e * max|reference| per row; %d prompt + %d "
          "generated tokens unless stated; %.1fs" % (RTOL, N_PROMPT, MAX_TOKENS, time.time() - t0))
    if not (checked_sensitivity and checked_sensitivity_tf) and (not a.cases):
        failures.append("sensitivity check did not run (Scaling and Terraformer)")
    if failures:
        print("\nFAILED (%d problems):" % len(failures))
        for f in failures:
            print("  - " + f)
        return 1
    print("\nALL OK: the C engine matches the independent reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
