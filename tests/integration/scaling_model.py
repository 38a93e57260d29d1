#!/usr/bin/python3
"""CTest scaling_model: the latency model of bench/scaling/model.py against cases computed by
hand, sparsetf-netbench under mpirun (its JSON is what the model reads), and the study
generator on the committed data (bench/scaling/study.py --check).

  scaling_model.py SOURCE_DIR NETBENCH WORKDIR MPIEXEC [MPI FLAGS...]
"""
import json
import os
import subprocess
import sys

src, netbench, work, mpiexec = sys.argv[1:5]
mpiflags = sys.argv[5:]
sys.path.insert(0, os.path.join(src, "bench", "scaling"))
import model as M  # noqa: E402

os.makedirs(work, exist_ok=True)
fails = 0


def check(name, got, want, rel=1e-9):
    global fails
    ok = abs(got - want) <= rel * max(abs(want), 1e-12)
    print("%s %s: got %.9g, want %.9g" % ("ok  " if ok else "FAIL", name, got, want))
    fails += not ok


# --- a synthetic calibration whose predictions are easy to compute by hand ------------------
# 4 layers, d = 64, S = 4 modules, H = 4 heads, 8 FF blocks of 16; per layer: attention 1.0 ms
# (mult_dense 0.4 + convolutions 0.2 + attention kernel 0.2 + 0.2 other), FF 0.8 ms (kernel
# 0.6), norms 0.1, residual 0.1; output layer 0.5 ms, embedding 0.05, sampling 0.15.
L = 2  # layers in the "slice" the figures are per token of
comp_rows = [
    {"kind": "budget", "part": "embedding", "ms": 0.05, "bytes": 0},
    {"kind": "budget", "part": "layernorm", "ms": 0.1 * L, "bytes": 0},
    {"kind": "budget", "part": "attention", "ms": 1.0 * L, "bytes": 0},
    {"kind": "budget", "part": "ff", "ms": 0.8 * L, "bytes": L * 4 * 2 * 8 * 64 * 34 / 32},
    {"kind": "budget", "part": "residual", "ms": 0.1 * L, "bytes": 0},
    {"kind": "budget", "part": "output layer", "ms": 0.5, "bytes": 0},
    {"kind": "budget", "part": "sampling", "ms": 0.15, "bytes": 0},
    {"kind": "kernel", "kernel": "mult_dense d=64 S=4 M=16", "ms": 0.4 * L},
    {"kind": "kernel", "kernel": "local_conv 3x3 S=4 M=16", "ms": 0.2 * L},
    {"kind": "kernel", "kernel": "attention H=4 dh=16", "ms": 0.2 * L},
    {"kind": "kernel", "kernel": "sparse_ff d=64 F=128 N=8 r=4", "ms": 0.6 * L},
    {"kind": "kernel", "kernel": "mult_dense d=64 S=4 M=100", "ms": 0.5},
]
with open(os.path.join(work, "compute-q8.jsonl"), "w") as f:
    for r in comp_rows:
        f.write(json.dumps(r) + "\n")
# ring hop: 100 us at 64 B, 300 us at 1064 B (linear between); slept: +50 us; allgather of
# 2 ranks: 20 us at 32 B, 40 us at 256 B; 4 ranks: 40 us at 16 B, 80 us at 256 B
net = {"sim_link_delay_us": 25, "points": [
    {"kind": "ring", "ranks": 2, "bytes": 64, "think_us": 0, "median_us": 100},
    {"kind": "ring", "ranks": 2, "bytes": 1064, "think_us": 0, "median_us": 300},
    {"kind": "ring", "ranks": 2, "bytes": 64, "think_us": 5000, "median_us": 150},
    {"kind": "ring", "ranks": 2, "bytes": 1064, "think_us": 5000, "median_us": 350},
    {"kind": "allgather", "ranks": 2, "bytes": 32, "median_us": 20},
    {"kind": "allgather", "ranks": 2, "bytes": 256, "median_us": 40},
    {"kind": "allgather", "ranks": 4, "bytes": 16, "median_us": 40},
    {"kind": "allgather", "ranks": 4, "bytes": 256, "median_us": 80},
]}
with open(os.path.join(work, "net.json"), "w") as f:
    json.dump(net, f)
comp = M.Compute(os.path.join(work, "compute-q8.jsonl"), L)
nt = M.Net([os.path.join(work, "net.json")])
shape = M.Shape(d=64, layers=4, heads=4, vocab=100, attn="sparse_qkv", ff="sparse", qkv_modules=4,
                d_ff=128, ff_block=16, layer_bytes=1000, embed_bytes=500, head_bytes=500)
frame = 4 * 64 + 16  # 272 B: hop = 100 + 200 * (272 - 64) / 1000 = 141.6 us

# one rank: embed + 4 layers x 2.0 + head + sampling
r = M.predict(shape, comp, nt, 1)
check("N=1 latency", r["latency_ms"], 0.05 + 4 * 2.0 + 0.5 + 0.15)
check("N=1 tokens/s", r["tokens_per_s"], 1e3 / 8.7)
# two ranks, pipeline: the same compute plus 2 hops of 141.6 us (the wait of either rank
# exceeds 2 ms, so the slept figure: 191.6 us)
r = M.predict(shape, comp, nt, 2)
check("N=2 pipeline latency", r["latency_ms"], 8.7 + 2 * 0.1916)
# rank 0 holds embedding and head (1000 bytes = one layer): plan 1 + 3 layers
check("N=2 plan rank 0 layers", r["stages"][0], 1)
# 4 sessions on 2 stages: MVA by hand. Stage demands 0.7 + 2.0 = 2.7 ms and 3 x 2.0 = 6.0 ms,
# delay Z = 2 hops idle (141.6 us each, busy stages do not sleep)
D, Z = [2.7, 6.0], 2 * 0.1416
Q = [0.0, 0.0]
for n in range(1, 5):
    R = [d * (1 + q) for d, q in zip(D, Q)]
    X = n / (Z + sum(R))
    Q = [X * x for x in R]
r = M.predict(shape, comp, nt, 2, sessions=4)
check("N=2 4 sessions tokens/s", r["tokens_per_s"], 1e3 * X)
# tensor parallel T = 2 (P = 1): shard per layer: mult_dense + conv 0.6 x (4/2 + 2 = 4 of 4
# modules, min(S, S/T + 2)) + attention kernel 0.2 / 2 + other 0.2; FF: kernel rows fraction
# f = 2 x 8 x 64 x 34/32 / (ff bytes per layer = 4 x 2 x 8 x 64 x 34/32) = 1/4: 0.2 (outside the
# kernel) + 0.6 x 3/4 + 0.6 x 1/4 / 2; norms 0.2
attn_t2 = 0.6 * 4 / 4 + 0.2 / 2 + 0.2
ff_t2 = 0.2 + 0.6 * 0.75 + 0.6 * 0.25 / 2
check("T=2 shard", M.shard_layer_ms(shape, comp, 2), attn_t2 + ff_t2 + 0.2)
# collectives per layer on the simulated cluster: allgather 2 x 32 B (d/T floats = 128 B:
# interpolated 20 + 20 x (128 - 32) / 224) and 2 x 256 B (d floats): 40 us
ag = (20 + 20 * (128 - 32) / 224 + 40) / 1e3
mirror = 0.1416  # one hop (T - 2 = 0 more frames)
r = M.predict(shape, comp, nt, 2, T=2)
check("N=2 T=2 latency (simulated network)", r["latency_ms"],
      0.05 + 0.5 + 0.15 + 4 * (attn_t2 + ff_t2 + 0.2 + ag) + mirror)
# on a real network the collectives pay the delay per round: the fit a + c m through the
# 2-rank points (20 us at 32 B, 40 us at 256 B: c = 20/224 us per byte), plus 25 us
r2 = M.predict(shape, comp, nt, 2, T=2, real_network=True)
fc = 20 / 224
fa = 20 - 32 * fc
ag_real = (fa + fc * 128 + 25 + fa + fc * 256 + 25) / 1e3
check("N=2 T=2 latency (real network)", r2["latency_ms"],
      0.05 + 0.5 + 0.15 + 4 * (attn_t2 + ff_t2 + 0.2 + ag_real) + mirror)
# the grids sparsetf-dist accepts for 8 ranks of this shape: T divides gcd(S=4, H=4, B=8) = 4,
# pipeline up to 5 ranks, every stage a layer with T > 1
check("valid grids for 8", len(M.valid_grids(shape, 8)), 2)  # 4x2, 2x4
print("grids for 8:", M.valid_grids(shape, 8))

# --- sparsetf-netbench: runs under mpirun and writes the JSON the model reads ---------------
out = os.path.join(work, "netbench.json")
cmd = [mpiexec, "-n", "2"] + mpiflags + [netbench, "--sizes", "64,4096", "--gather-sizes", "256",
                                        "--think-us", "0", "--reps", "5", "--warmup", "1",
                                        "--json", out]
p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
print(p.stdout, p.stderr)
ok = p.returncode == 0
if ok:
    j = json.load(open(out))
    kinds = sorted((q["kind"], q["ranks"], q["bytes"]) for q in j["points"])
    ok = kinds == [("allgather", 2, 256), ("ring", 2, 64), ("ring", 2, 4096)] and all(
        0 < q["p10_us"] <= q["median_us"] <= q["p90_us"] for q in j["points"])
    Net = M.Net([out])  # the model reads it
    ok = ok and Net.hop_us(64, 2, False) > 0
print("%s sparsetf-netbench under mpirun, JSON read by the model" % ("ok  " if ok else "FAIL"))
fails += not ok
p = subprocess.run([netbench, "--sizes", "12,x"], capture_output=True, text=True, timeout=30)
ok = p.returncode == 2 and "--sizes 12,x" in p.stderr
print("%s sparsetf-netbench --sizes 12,x: exit %d, %s" % ("ok  " if ok else "FAIL", p.returncode,
                                                        p.stderr.strip()))
fails += not ok

# --- the study generator on the committed data ----------------------------------------------
p = subprocess.run([sys.executable, os.path.join(src, "bench", "scaling", "study.py"), "--check"],
                   capture_output=True, text=True, timeout=120)
print(p.stdout, p.stderr)
ok = p.returncode == 0
print("%s study.py --check on the committed data" % ("ok  " if ok else "FAIL"))
fails += not ok
print("scaling_model: %d failure(s)" % fails)
sys.exit(1 if fails else 0)
