#!/usr/bin/env python3
"""bench/scaling/model.py: predicted per-token latency and throughput of sparsetf-dist on a
P x T grid of N nodes, from measurements (docs/scaling.md explains every term).

Inputs (bench/scaling/data/, written by calibrate.sh):
  compute-NAME.jsonl   sparsetf-bench --model on a slice: per part and per kernel shape, ms
                       per token, one thread (one rank per core)
  net-LINK-npK.json    sparsetf-netbench over K simulated hosts (or this host, LINK = local):
                       ring hop time per message size, idle (think 0) and sleeping (think
                       5 ms) receivers; allgather time per rank count and contribution

The model, per decode token of one session (rank 0 = leader of stage 0, holds embedding,
output layer and sampler; stages hold contiguous layers, balanced by weight bytes as
src/pipeline/plan.c does):
  latency = embed + head + sample + sum over stages of
              (layers x (shard compute(T) + collectives(T)) + mirror(T))
            + P hops of one d-vector frame (0 hops when P = 1)
  shard compute(T): the kinds' split (src/model/tp.c): Sparse QKV's multiplicative layer and
    convolutions on S/T + 2 halo modules of S, attention on H/T heads, Sparse FF's gathered
    rows on 1/T of the blocks (controller whole); norms, residuals, dense kinds and the
    output layer whole ("design"). "full" is a hypothetical split of everything but the
    norms by 1/T (dense kinds Megatron-style, output layer by vocabulary).
  collectives(T): one allgather of d/T floats (Sparse QKV) and one of d floats (FF partial
    sums) per layer: measured at T = 2, 4, fitted as a log2(T) + (T - 1) m / b, plus the
    link's one-way delay per round on a real network (the simulation does not delay
    collectives).
  mirror(T): the leader sends the frame to T - 1 partners: one hop + (T - 2) frames'
    serialisation on its link (the difference of the polling hop at 2 frames and 1).
  hop(bytes): measured ring hop, interpolated in message size; the sleeping-receiver figure
    when the receiving rank waited over 2 ms (transport_pause sleeps then).
Throughput with S concurrent sessions: mean-value analysis of a closed network: each stage
a queue (its compute and collectives per token), the hops a pure delay.

Run as a program it prints the prediction for one configuration.
"""
import argparse
import bisect
import glob
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
Q8_BYTES_PER_WEIGHT = 34 / 32  # q8_0: 32 int8 + an f16 scale

# model shapes (sparsetf-gen --print-config) and weight bytes (sparsetf-info, q8 files)
# filled by shapes(); the per-layer and embed/head bytes only balance the plan


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def typical_run(path):
    """path, or of its repeated runs (NAME.rK.jsonl) the median one by whole-token time (on
    a shared machine whose 2 vCPUs other jobs also use, runs of the same thing differ by up to
    20 %; the validation runs are taken the same way)."""
    stem = path[:-len(".jsonl")]
    runs = sorted(glob.glob(glob.escape(stem) + ".r*.jsonl"))
    if not runs:
        return path

    def whole(p):
        return next((r["ms"] for r in load_jsonl(p)
                     if r["kind"] == "budget" and r["part"] == "whole token"), float("inf"))
    return sorted(runs, key=whole)[(len(runs) - 1) // 2]


class Compute:
    """One model's compute calibration (sparsetf-bench --model on an L-layer slice)."""

    def __init__(self, path, layers):
        path = typical_run(path)
        rows = load_jsonl(path)
        self.path = path
        self.layers = layers
        self.part = {}
        self.part_bytes = {}
        for r in rows:
            if r["kind"] == "budget":
                self.part[r["part"]] = r["ms"]
                self.part_bytes[r["part"]] = r["bytes"]
        self.kernels = {r["kernel"]: r["ms"] for r in rows if r["kind"] == "kernel"}
        self.roofline = next((r for r in rows if r["kind"] == "roofline"), None)

    def weight_bytes_per_value(self):
        """q8 (34 bytes per 32 weights) unless the slice's file name says f32 or it is the
        bundled f32 model."""
        return Q8_BYTES_PER_WEIGHT if "q8" in os.path.basename(self.path) else 4.0

    def per_layer(self, part):
        return self.part.get(part, 0.0) / self.layers

    def kernels_like(self, prefix, exclude=None):
        return sum(ms for k, ms in self.kernels.items()
                   if k.startswith(prefix) and not (exclude and exclude in k)) / self.layers


class Shape:
    def __init__(self, d, layers, heads, vocab, attn, ff, qkv_modules=0, d_ff=0, ff_block=0,
                 layer_bytes=0, embed_bytes=0, head_bytes=0):
        self.d, self.layers, self.heads, self.vocab = d, layers, heads, vocab
        self.attn, self.ff = attn, ff
        self.qkv_modules, self.d_ff, self.ff_block = qkv_modules, d_ff, ff_block
        self.layer_bytes, self.embed_bytes, self.head_bytes = layer_bytes, embed_bytes, head_bytes

    def frame_bytes(self):
        return 4 * self.d + 16  # one f32 d-vector row and the frame's header

    def tp_units(self):
        """What every T must divide (src/model/tp.c): 0 when nothing splits."""
        u = 0
        if self.attn == "sparse_qkv":
            u = math.gcd(u, math.gcd(self.qkv_modules, self.heads))
        if self.ff == "sparse":
            u = math.gcd(u, self.d_ff // self.ff_block)
        return u


def shard_layer_ms(shape, comp, T, split="design"):
    """One layer's compute on one of T ranks, ms (T = 1: the whole layer).

    The per-kernel table of sparsetf-bench times the f32 kernels; q8 kernels are timed only
    per part. Then the Sparse QKV part less its attention kernel counts as module work (its
    multiply-adds are the multiplicative layer's d x d and the convolutions' 21 M^2 per
    module: 99 % of the part at 17b), and the whole FF part as the sparse_ff kernel."""
    attn = comp.per_layer("attention")
    ff = comp.per_layer("ff")
    rest = comp.per_layer("layernorm") + comp.per_layer("residual")
    if T == 1:
        return attn + ff + rest
    if split == "full":
        return (attn + ff) / T + rest
    if shape.attn == "sparse_qkv":
        S = shape.qkv_modules
        tag = "S=%d " % S
        heads = comp.kernels_like("attention")
        mods = sum(ms for k, ms in comp.kernels.items()
                   if (k.startswith("mult_dense") or k.startswith("local_conv")) and tag in k
                   and "M=%d" % shape.vocab not in k) / comp.layers
        if mods == 0.0:  # q8: not in the kernel table
            mods = max(attn - heads, 0.0)
        other = max(attn - mods - heads, 0.0)
        halo = min(S, S // T + 2)
        attn = mods * halo / S + heads / T + other
    if shape.ff == "sparse":
        kern = comp.kernels_like("sparse_ff") or ff
        ff_bytes = comp.part_bytes["ff"] / comp.layers
        rows = 2 * (shape.d_ff // shape.ff_block) * shape.d * comp.weight_bytes_per_value()
        f_rows = min(rows / ff_bytes, 1.0)
        ff = (ff - kern) + kern * (1 - f_rows) + kern * f_rows / T
    return attn + ff + rest


def head_ms(comp, T, split="design"):
    h = comp.part.get("output layer", 0.0)
    return h / T if split == "full" else h


class Net:
    """One link setting's calibration: ring hops and allgathers (sparsetf-netbench)."""

    def __init__(self, paths, delay_us=None):
        self.ring = {}  # (np, think_us) -> sorted [(bytes, us)]
        self.gather = {}  # T -> sorted [(bytes, us)]
        self.delay_us = 0.0
        job_of = {}  # T -> ranks of the job its allgathers were measured in (fewest wins)
        for p in paths:
            with open(p) as f:
                j = json.load(f)
            self.delay_us = float(j.get("sim_link_delay_us", 0))
            job = j.get("ranks", 0)
            for pt in j["points"]:
                if pt["kind"] == "ring":
                    self.ring.setdefault((pt["ranks"], pt["think_us"]), []).append(
                        (pt["bytes"], pt["median_us"]))
                    continue
                T = pt["ranks"]
                if T in job_of and job_of[T] < job:
                    continue
                if T in job_of and job_of[T] > job:
                    self.gather[T] = []
                job_of[T] = job
                self.gather.setdefault(T, []).append((pt["bytes"], pt["median_us"]))
        for v in list(self.ring.values()) + list(self.gather.values()):
            v.sort()
        if delay_us is not None:
            self.delay_us = delay_us
        self._fit_gather()

    @staticmethod
    def interp(pts, x):
        xs = [p[0] for p in pts]
        i = bisect.bisect_left(xs, x)
        if i < len(xs) and xs[i] == x:
            return pts[i][1]
        if i == 0:
            return pts[0][1]
        if i == len(xs):
            (x0, y0), (x1, y1) = pts[-2], pts[-1]
        else:
            (x0, y0), (x1, y1) = pts[i - 1], pts[i]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0)

    def hop_us(self, nbytes, ranks, slept):
        nps = sorted({k[0] for k in self.ring})
        np_ = min(nps, key=lambda n: (abs(n - ranks), n))
        thinks = sorted({k[1] for k in self.ring if k[0] == np_})
        think = thinks[-1] if slept else thinks[0]
        return self.interp(self.ring[(np_, think)], nbytes)

    def _fit_gather(self):
        """t(T, m) = a log2 T + (T - 1) m / b by least squares over the points measured with
        2 ranks (each on its own core here; 4 ranks share this machine's 2 cores, so their
        figures carry CPU contention a cluster would not have)."""
        xs = []
        for T, pts in self.gather.items():
            if T != 2 and 2 in self.gather:
                continue
            for m, us in pts:
                xs.append((math.log2(T), (T - 1) * m, us))
        if not xs:
            self.ga, self.gb = 0.0, float("inf")
            return
        s11 = sum(a * a for a, _, _ in xs)
        s12 = sum(a * b for a, b, _ in xs)
        s22 = sum(b * b for _, b, _ in xs)
        r1 = sum(a * y for a, _, y in xs)
        r2 = sum(b * y for _, b, y in xs)
        det = s11 * s22 - s12 * s12
        if abs(det) < 1e-12 * max(s11 * s22, 1e-300):  # one size only: latency per round
            a, c = r1 / s11, 0.0
        else:
            a = (r1 * s22 - r2 * s12) / det
            c = (s11 * r2 - s12 * r1) / det
        self.ga, self.gc = max(a, 0.0), max(c, 0.0)  # us per round, us per byte

    def allgather_us(self, T, m, real_network):
        if T <= 1:
            return 0.0
        if T in self.gather and not real_network:
            return self.interp(self.gather[T], m)
        t = self.ga * math.log2(T) + self.gc * (T - 1) * m
        if real_network:
            t += self.delay_us * math.log2(T)
        return t


def plan_stages(shape, P, T):
    """Layers per stage, balanced by weight bytes with rank 0 holding embedding and head
    (src/pipeline/plan.c, --balance memory); with T > 1 every stage holds a layer."""
    L = shape.layers
    lb = shape.layer_bytes / T
    fixed0 = (shape.embed_bytes + shape.head_bytes) / (1 if T == 1 else T)
    best = None
    # dynamic programme over the first stage's count, the rest as even as possible
    for n0 in range(0 if T == 1 else 1, L + 1):
        rest = L - n0
        if P == 1:
            if rest:
                continue
            cand = [n0]
        else:
            if rest < P - 1:
                continue
            q, r = divmod(rest, P - 1)
            cand = [n0] + [q + 1] * r + [q] * (P - 1 - r)
        loads = [fixed0 + cand[0] * lb] + [c * lb for c in cand[1:]]
        key = (max(loads), sum(x * x for x in loads), n0)
        if best is None or key < best[0]:
            best = (key, cand)
    return best[1] if best else None


def valid_grids(shape, N):
    """(P, T) pairs sparsetf-dist accepts for N ranks."""
    out = []
    u = shape.tp_units()
    for T in range(1, N + 1):
        if N % T:
            continue
        P = N // T
        if T == 1 and P <= shape.layers + 1:
            out.append((P, T))
        elif T > 1 and P <= shape.layers and (u == 0 or u % T == 0):
            out.append((P, T))
    return out


def predict(shape, comp, net, N, T=1, sessions=1, split="design", real_network=False,
            local_ranks=None):
    """Per-token latency (ms) and throughput (tokens/s) of N = P x T ranks.

    real_network: collectives pay the link's one-way delay per round (a real network); the
    simulated cluster does not delay them. local_ranks: the ring figures to use (number of
    ranks of the calibration run nearest to it), default P."""
    P = N // T
    stages = plan_stages(shape, P, T)
    if stages is None:
        raise ValueError("no plan for %d x %d" % (P, T))
    lay = shard_layer_ms(shape, comp, T, split)
    coll = 0.0
    if T > 1:
        d4 = 4 * shape.d
        if shape.attn == "sparse_qkv" or split == "full":
            coll += net.allgather_us(T, d4 // T, real_network) / 1e3
        if shape.ff == "sparse" or split == "full":
            coll += net.allgather_us(T, d4, real_network) / 1e3
    fb = shape.frame_bytes()
    ranks_for_hop = local_ranks or max(P, 2)
    r0 = comp.part.get("embedding", 0) + head_ms(comp, T, split) + comp.part.get("sampling", 0)
    demand = []
    for k, n in enumerate(stages):
        t = n * (lay + coll) + (r0 if k == 0 else 0.0)
        demand.append(t)
    hops = P if P > 1 else 0

    def hop_ms(slept, nbytes=fb):
        return net.hop_us(nbytes, ranks_for_hop, slept) / 1e3

    def mirror_ms(slept):
        if T == 1:
            return 0.0
        # each further partner: one more frame's serialisation on the leader's link (from the
        # polling figures: the sleeping ones add a wake-up once, not per frame)
        extra = max(hop_ms(False, 2 * fb) - hop_ms(False, fb), 0.0)
        return hop_ms(slept) + (T - 2) * extra

    # first with busy (spinning) receivers; then each stage whose rank waited over 2 ms for
    # its frame gets the sleeping-receiver figure (one session only: with several, stages
    # stay busy)
    fast = sum(demand) + P * mirror_ms(False) + hops * hop_ms(False)
    slept = [sessions == 1 and fast - t > 2.0 for t in demand]
    hop_k = [hop_ms(sl) for sl in slept] if hops else [0.0] * P
    mir_k = [mirror_ms(sl) for sl in slept]
    lat = sum(demand) + sum(mir_k) + sum(hop_k)
    hop, mirror = hop_k[-1], mir_k[-1]
    # mean-value analysis: stages are queues, the hops and mirrors a delay
    Z = sum(hop_k)
    D = [t + m for t, m in zip(demand, mir_k)]
    Q = [0.0] * len(D)
    X = 0.0
    for n in range(1, sessions + 1):
        R = [dk * (1 + q) for dk, q in zip(D, Q)]
        X = n / (Z + sum(R))
        Q = [X * r for r in R]
    return {
        "N": N, "P": P, "T": T, "sessions": sessions, "split": split,
        "latency_ms": lat if sessions == 1 else sessions / X,
        "tokens_per_s": 1e3 * X,
        "layer_ms": lay, "collectives_ms_per_layer": coll, "hop_ms": hop, "mirror_ms": mirror,
        "stages": stages, "compute_ms": sum(demand) - coll * sum(stages),
        "network_ms": sum(hop_k) + sum(mir_k) + coll * sum(stages),
    }


# --- shapes of the models the study and the validation use ---------------------------------

def shapes():
    """Shapes (sparsetf-gen --print-config) and q8 weight bytes (data/shapes.json, written by
    calibrate.sh compute from sparsetf-info)."""
    with open(os.path.join(DATA, "shapes.json")) as f:
        j = json.load(f)
    return {k: Shape(**v) for k, v in j.items()}


def shape_from_info(info, config):
    """A Shape from `sparsetf-info FILE` (tensor bytes of layer 0, embedding and head) and
    `sparsetf-gen --preset NAME --print-config` (the whole model's config)."""
    cfg = {}
    for line in config.splitlines():
        if "=" in line:
            k, v = (x.strip() for x in line.split("=", 1))
            cfg[k] = v
    layer = embed = head = 0
    in_table = False
    for line in info.splitlines():
        if line.startswith("tensors ("):
            in_table = True
            continue
        f = line.split()
        if not in_table or not f or f[0] == "name":
            continue
        if f[0] == "total" or not f[-1].isdigit():
            break
        name, nbytes = f[0], int(f[-1])
        if name.startswith("layers.0."):
            layer += nbytes
        elif name in ("embed", "pos"):
            embed += nbytes
        elif not name.startswith("layers."):
            head += nbytes
    i = lambda k: int(cfg.get(k, 0))
    return dict(d=i("d_model"), layers=i("n_layers"), heads=i("n_heads"), vocab=i("vocab_size"),
                attn=cfg["attn"], ff=cfg["ff"], qkv_modules=i("qkv_modules"), d_ff=i("d_ff"),
                ff_block=i("ff_block"), layer_bytes=layer, embed_bytes=embed, head_bytes=head)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--write-shape":
        # --write-shape NAME INFO_FILE CONFIG_FILE: add NAME to data/shapes.json
        path = os.path.join(DATA, "shapes.json")
        j = json.load(open(path)) if os.path.exists(path) else {}
        j[sys.argv[2]] = shape_from_info(open(sys.argv[3]).read(), open(sys.argv[4]).read())
        with open(path, "w") as f:
            json.dump(j, f, indent=1, sort_keys=True)
        print("model.py: %s: %s" % (sys.argv[2], j[sys.argv[2]]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="17b-sparse-q8", help="a key of data/shapes.json")
    ap.add_argument("--compute", help="compute calibration (default data/compute-<slice>.jsonl)")
    ap.add_argument("--link", default="10gbit", help="net calibration: data/net-LINK-np*.json")
    ap.add_argument("-N", type=int, default=8)
    ap.add_argument("-T", type=int, default=1)
    ap.add_argument("--sessions", type=int, default=1)
    ap.add_argument("--split", choices=["design", "full"], default="design")
    a = ap.parse_args()
    sh = shapes()
    if a.model not in sh:
        sys.exit("model.py: --model %s: not in data/shapes.json (%s)" % (a.model, ", ".join(sh)))
    s = sh[a.model]
    comp = Compute(a.compute or os.path.join(DATA, COMPUTE_FILES[a.model][0]), COMPUTE_FILES[a.model][1])
    net = Net([os.path.join(DATA, f) for f in sorted(os.listdir(DATA))
               if f.startswith("net-%s-np" % a.link.replace(",", "-"))])
    print(json.dumps(predict(s, comp, net, a.N, a.T, a.sessions, a.split, real_network=True),
                     indent=1))


# compute calibration per model: (file, layers in the slice)
COMPUTE_FILES = {
    "17b-sparse-q8": ("compute-17b-sparse-q8-L2.jsonl", 2),
    "17b-sparse-q8-L2": ("compute-17b-sparse-q8-L2.jsonl", 2),
    "17b-dense-q8": ("compute-17b-dense-q8-L1.jsonl", 1),
    "bundled": ("compute-default-sparse.jsonl", 4),
}

if __name__ == "__main__":
    main()
