#!/usr/bin/python3
"""bench/scaling/study.py: writes docs/scaling.md and its plots (docs/img/scaling-*.png) from
the measurements in bench/scaling/data/ and the latency model (bench/scaling/model.py).

  /usr/bin/python3 bench/scaling/study.py [--data DIR] [--out docs] [--check]

--check only runs the model on the committed data and checks the validation table (no
files written): what the CTest scaling_model runs. Needs python3-matplotlib for the plots.
"""
import argparse
import glob
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402

ROOT = os.path.abspath(os.path.join(M.HERE, "..", ".."))
LINKS = [("1gbit", "1 GbE"), ("10gbit", "10 GbE"), ("25gbit", "25 GbE")]
NODES = [1, 2, 3, 4, 6, 8, 12, 15, 16, 24, 32, 48, 64]

# reference marks (see the doc's "References" for the sources)
PAPER_T1 = {  # Jaszczur et al. 2021, Table 1: decoding time per token, seconds
    "17B baseline": 3.690, "17B +Sparse FF+QKV": 0.183,
    "800M baseline": 0.160, "800M +Sparse FF+QKV": 0.061,
}
DLLAMA = {  # distributed-llama README (commit aec85b9), ms per token on 1, 2, 4 devices
    "Llama 2 7B, 4 x Raspberry Pi 4B, 1 GbE": [1312.50, 793.69, 494.00],
    "Llama 2 70B, 4 x c3d-highcpu-30 VM": [909.69, 501.38, 293.06],
}


def net_for(data, link):
    files = sorted(glob.glob(os.path.join(data, "net-%s-np*.json" % link.replace(",", "-"))))
    return M.Net(files) if files else None


def computes(data):
    out = {}
    for name, (f, layers) in M.COMPUTE_FILES.items():
        p = os.path.join(data, f)
        if os.path.exists(p) or glob.glob(glob.escape(p[:-6]) + ".r*.jsonl"):
            out[name] = M.Compute(p, layers)
    return out


RUN_RE = re.compile(r"run-(?P<model>bundled|17b-slice|17b-whole)-(?P<where>local|sim-(?P<link>.+?))"
                    r"-np(?P<np>\d+)(?:-t(?P<T>\d+))?-s(?P<s>\d+)(?:\.r(?P<rep>\d+))?\.json$")


def validation(data, shapes, comps):
    """[(config, measured ms, predicted ms, measured tok/s, predicted tok/s)]."""
    rows = []
    model_of = {"bundled": "bundled", "17b-slice": "17b-sparse-q8-L2", "17b-whole": "17b-sparse-q8"}
    # repeated runs of a configuration (run-CONFIG.rK.json): the median run counts (by its
    # median latency with one session, by tokens/s with several), as for the calibration
    best = {}
    for p in sorted(glob.glob(os.path.join(data, "run-*.json"))):
        m = RUN_RE.search(os.path.basename(p))
        if not m:
            continue
        with open(p) as f:
            s = json.load(f)
        cfg = os.path.basename(p)[4:].split(".r")[0].replace(".json", "")
        score = s["latency_ms"]["median"] if int(m["s"]) == 1 else -s["tokens_per_s"]
        runs = best.setdefault(cfg, [])
        runs.append((score, p, m, s))
    for cfg in sorted(best):
        runs = sorted(best[cfg], key=lambda r: r[0])
        _, p, m, s = runs[(len(runs) - 1) // 2]
        spread = (runs[-1][0] / runs[0][0]) if runs[0][0] else 1.0
        key = model_of[m["model"]]
        if key not in shapes or key not in comps:
            continue
        link = m["link"] or "local"
        net = net_for(data, link)
        if net is None:
            continue
        N, T, S = int(m["np"]), int(m["T"] or 1), int(m["s"])
        pr = M.predict(shapes[key], comps[key], net, N, T, S, local_ranks=max(N, 2))
        meas = s["latency_ms"]["median"]
        # one session: the per-token latency; several: the decode throughput (the engine's
        # latency of a frame then leaves out the time it waited at rank 0 before starting)
        if S == 1:
            err = (pr["latency_ms"] - meas) / meas
        else:
            err = (pr["tokens_per_s"] - s["tokens_per_s"]) / s["tokens_per_s"]
        rows.append(dict(config=cfg, runs=len(runs), spread=spread, N=N, T=T, S=S, link=link,
                         measured_ms=meas, predicted_ms=pr["latency_ms"],
                         measured_tps=s["tokens_per_s"], predicted_tps=pr["tokens_per_s"],
                         err=err))
    return rows


def best_grid(shape, comp, net, N, split, tp_only=False, sessions=1):
    best = None
    for P, T in M.valid_grids(shape, N) if split == "design" else full_grids(shape, N):
        if tp_only and T == 1 and N > 1:
            continue
        r = M.predict(shape, comp, net, N, T, sessions, split, real_network=True)
        key = r["latency_ms"] if sessions == 1 else -r["tokens_per_s"]
        if best is None or key < best[0]:
            best = (key, r)
    return best[1] if best else None


def full_grids(shape, N):
    return [(N // T, T) for T in range(1, N + 1) if N % T == 0 and N // T <= shape.layers]


def curves(shape, comp, net):
    pipe, tp, full = [], [], []
    for N in NODES:
        if N <= shape.layers + 1:
            pipe.append((N, M.predict(shape, comp, net, N, 1, real_network=True)))
        r = best_grid(shape, comp, net, N, "design", tp_only=True)
        if r:
            tp.append((N, r))
        r = best_grid(shape, comp, net, N, "full")
        if r:
            full.append((N, r))
    return pipe, tp, full


def fmt(x, nd=1):
    return ("%%.%df" % nd) % x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=M.DATA)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs"))
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    shapes = {k: M.Shape(**v) for k, v in json.load(open(os.path.join(a.data, "shapes.json"))).items()}
    comps = computes(a.data)
    rows = validation(a.data, shapes, comps)
    if a.check:
        for r in rows:
            print("%-40s measured %9.3f ms  predicted %9.3f ms  error %+6.1f%%"
                  % (r["config"], r["measured_ms"], r["predicted_ms"], 100 * r["err"]))
        ok = bool(rows) and all(math.isfinite(r["predicted_ms"]) and r["predicted_ms"] > 0
                                for r in rows)
        print("study.py --check: %d configurations, model %s" % (len(rows), "ok" if ok else "FAILED"))
        return 0 if ok else 1
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    img = os.path.join(a.out, "img")
    os.makedirs(img, exist_ok=True)
    nets = {l: net_for(a.data, l) for l, _ in LINKS}
    out = Doc()
    study = {}
    for key in ("17b-sparse-q8", "17b-dense-q8"):
        if key in shapes and key in comps:
            study[key] = {l: curves(shapes[key], comps[key], nets[l]) for l, _ in LINKS if nets[l]}
    write_doc(out, a, shapes, comps, nets, rows, study, plt, img)
    with open(os.path.join(a.out, "scaling.md"), "w") as f:
        f.write(out.text())
    print("study.py: wrote %s and %s/scaling-*.png" % (os.path.join(a.out, "scaling.md"), img))
    return 0


class Doc:
    def __init__(self):
        self.lines = []

    def __call__(self, s=""):
        self.lines.append(s)

    def text(self):
        return "\n".join(self.lines) + "\n"


def plot_latency(plt, img, study, shapes):
    colors = {"1gbit": "tab:red", "10gbit": "tab:blue", "25gbit": "tab:green"}
    fig, axes = plt.subplots(1, len(study), figsize=(6.2 * len(study), 4.6), squeeze=False)
    for ax, (key, per_link) in zip(axes[0], study.items()):
        for link, label in LINKS:
            if link not in per_link:
                continue
            pipe, tp, full = per_link[link]
            c = colors[link]
            ax.plot([n for n, _ in pipe], [r["latency_ms"] for _, r in pipe], "-o", color=c, ms=3,
                    label="pipeline, %s" % label)
            ax.plot([n for n, _ in tp], [r["latency_ms"] for _, r in tp], "--s", color=c, ms=3,
                    label="P x T grid (splits as built), %s" % label)
            ax.plot([n for n, _ in full], [r["latency_ms"] for _, r in full], ":", color=c,
                    label="every kind split (not built), %s" % label)
        if key.startswith("17b-sparse"):
            ax.axhline(PAPER_T1["17B +Sparse FF+QKV"] * 1e3, color="gray", lw=0.8)
            ax.text(8, PAPER_T1["17B +Sparse FF+QKV"] * 1e3 * 1.08,
                    "paper Table 1, 17B Sparse FF+QKV: 183 ms", fontsize=7, color="gray")
        else:
            ax.axhline(PAPER_T1["17B baseline"] * 1e3, color="gray", lw=0.8)
            ax.text(8, PAPER_T1["17B baseline"] * 1e3 * 1.08,
                    "paper Table 1, 17B baseline: 3690 ms", fontsize=7, color="gray")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("nodes N (one rank per node, 1 thread)")
        ax.set_ylabel("predicted per-token latency, ms")
        ax.set_title("%s (q8 weights)" % key.replace("-q8", ""))
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=6, loc="center left")
    fig.tight_layout()
    fig.savefig(os.path.join(img, "scaling-latency.png"), dpi=110)
    plt.close(fig)


def plot_relative(plt, img, study):
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for key, per_link in study.items():
        if "10gbit" not in per_link:
            continue
        pipe, tp, full = per_link["10gbit"]
        one = pipe[0][1]["latency_ms"]
        ax.plot([n for n, _ in tp], [r["latency_ms"] / one for _, r in tp], "--s", ms=3,
                label="%s, P x T grid as built, 10 GbE" % key)
        ax.plot([n for n, _ in full], [r["latency_ms"] / one for _, r in full], ":",
                label="%s, every kind split (not built), 10 GbE" % key)
        ax.plot([n for n, _ in pipe], [r["latency_ms"] / one for _, r in pipe], "-o", ms=3,
                label="%s, pipeline, 10 GbE" % key)
    for name, v in DLLAMA.items():
        ax.plot([1, 2, 4], [x / v[0] for x in v], "k^" if "Pi" in name else "kv", ms=6,
                label="distributed-llama: %s" % name)
    ax.axhline(0.3, color="gray", lw=0.8)
    ax.text(1.05, 0.31, "target: 0.3 x one node at 8 nodes", fontsize=7, color="gray")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("nodes N")
    ax.set_ylabel("per-token latency / one node's")
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(os.path.join(img, "scaling-relative.png"), dpi=110)
    plt.close(fig)


def plot_throughput(plt, img, shape, comp, net, title):
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for S, mk in ((1, "o"), (4, "s"), (16, "^"), (64, "v")):
        xs, pipe_y, tp_y = [], [], []
        for N in NODES:
            r = best_grid(shape, comp, net, N, "design", sessions=S)
            if r:
                xs.append(N)
                tp_y.append(r["tokens_per_s"])
            if N <= shape.layers + 1:
                pipe_y.append((N, M.predict(shape, comp, net, N, 1, S, real_network=True)["tokens_per_s"]))
        ax.plot(xs, tp_y, "-" + mk, ms=3, label="%d sessions, best grid" % S)
        ax.plot([n for n, _ in pipe_y], [y for _, y in pipe_y], ":" + mk, ms=3,
                label="%d sessions, pipeline" % S)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("nodes N")
    ax.set_ylabel("predicted tokens/s, all sessions")
    ax.set_title(title)
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(os.path.join(img, "scaling-throughput.png"), dpi=110)
    plt.close(fig)


def plot_split(plt, img, study):
    if "17b-sparse-q8" not in study:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colors = {"1gbit": "tab:red", "10gbit": "tab:blue", "25gbit": "tab:green"}
    for link, label in LINKS:
        if link not in study["17b-sparse-q8"]:
            continue
        _, tp, _ = study["17b-sparse-q8"][link]
        ax.plot([n for n, _ in tp], [r["compute_ms"] for _, r in tp], "-", color=colors[link],
                label="compute, %s" % label)
        ax.plot([n for n, _ in tp], [r["network_ms"] for _, r in tp], "--", color=colors[link],
                label="network (hops, mirrors, collectives), %s" % label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("nodes N (best P x T grid as built)")
    ax.set_ylabel("ms per token")
    ax.set_title("17b-sparse q8: where the time goes")
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(os.path.join(img, "scaling-split.png"), dpi=110)
    plt.close(fig)


def plot_validation(plt, img, rows):
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for r in rows:
        ax.plot(r["measured_ms"], r["predicted_ms"], "o", ms=4,
                color="tab:blue" if r["link"] == "local" else "tab:orange")
    lo = min([r["measured_ms"] for r in rows] + [r["predicted_ms"] for r in rows]) * 0.7
    hi = max([r["measured_ms"] for r in rows] + [r["predicted_ms"] for r in rows]) * 1.4
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.6)
    ax.plot([lo, hi], [lo * 1.15, hi * 1.15], "k:", lw=0.5)
    ax.plot([lo, hi], [lo * 0.85, hi * 0.85], "k:", lw=0.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured median ms/token (blue: this host, orange: simulated hosts)")
    ax.set_ylabel("predicted ms/token")
    ax.grid(True, which="both", lw=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(img, "scaling-validation.png"), dpi=110)
    plt.close(fig)


def write_doc(d, a, shapes, comps, nets, rows, study, plt, img):
    plot_latency(plt, img, study, shapes)
    plot_relative(plt, img, study)
    if "17b-sparse-q8" in comps and nets.get("10gbit"):
        plot_throughput(plt, img, shapes["17b-sparse-q8"], comps["17b-sparse-q8"], nets["10gbit"],
                        "17b-sparse q8, 10 GbE: throughput with concurrent sessions")
    plot_split(plt, img, study)
    if rows:
        plot_validation(plt, img, rows)
    from study_text import write_text  # the prose, kept apart from the plotting
    write_text(d, a, shapes, comps, nets, rows, study, M, fmt, LINKS, PAPER_T1, DLLAMA)


if __name__ == "__main__":
    sys.exit(main())
