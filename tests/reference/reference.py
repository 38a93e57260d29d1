#!/usr/bin/python3
"""Independent numpy reference of the sparsetf forward pass (SPEC §1, §2 dense + sparse QKV, §3 LM).

Written from docs/model.md only (not from the C kernels). Computes in float64 from the
float32 weights of a sparsetf model file, over a whole token sequence at once (no decode state),
so that it is also independent of the engine's incremental caching.

Usage as a program:
    /usr/bin/python3 reference.py --model FILE --tokens "1 2 3" [--out logits.f64] [--verify-crc]
prints the greedy next token after each prefix and, with --out, writes float64 logits (rows = tokens).
"""

import argparse
import math
import re
import struct
import sys

import numpy as np

LN_EPS = 1e-6

# ---------------------------------------------------------------------------------------------
# File reading: 64-byte header + protobuf manifest (hand-written wire-format decoder).
# ---------------------------------------------------------------------------------------------

MAGIC = b"SPARSETF"

# Config field numbers (proto/model.proto, message Config).
CONFIG_FIELDS = {
    1: "arch", 2: "d_model", 3: "n_heads", 4: "n_layers", 5: "d_ff", 6: "vocab_size",
    7: "max_seq_len", 8: "ff", 9: "ff_block", 10: "ff_rank", 11: "attn", 12: "qkv_modules",
    13: "out", 14: "out_modules", 15: "sru_units", 16: "bos_id", 17: "eos_id",
    18: "weights", 19: "lsh_period", 20: "lsh_phase", 21: "lsh_n_hashes", 22: "lsh_n_buckets",
    23: "lsh_chunk_len", 24: "lsh_chunks_before", 25: "lsh_cache_len", 26: "lsh_drop_len",
}
ARCH_SCALING, ARCH_TERRAFORMER = 0, 1
FF_DENSE, FF_SPARSE = 0, 1
ATTN_DENSE, ATTN_SPARSE_QKV, ATTN_LSH = 0, 1, 2
OUT_DENSE, OUT_MULT = 0, 1
DTYPE_F32, DTYPE_U8 = 1, 2
DTYPE_Q8_0 = 6  # blocks of 32 int8 along a row, each after its IEEE half scale (34 bytes)
Q8_BLOCK = 32


class FormatError(Exception):
    pass


def _varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise FormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise FormatError("varint too long")


def pb_fields(buf):
    """Yields (field_number, wire_type, value) for one message; value is int or bytes."""
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        field, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            if pos + 8 > n:
                raise FormatError("truncated fixed64")
            val = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wt == 2:
            ln, pos = _varint(buf, pos)
            if pos + ln > n:
                raise FormatError("truncated length-delimited field")
            val = bytes(buf[pos:pos + ln])
            pos += ln
        elif wt == 5:
            if pos + 4 > n:
                raise FormatError("truncated fixed32")
            val = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise FormatError("unsupported wire type %d" % wt)
        yield field, wt, val


def parse_config(buf):
    cfg = {name: 0 for name in CONFIG_FIELDS.values()}  # proto3 defaults
    for f, wt, v in pb_fields(buf):
        if f in CONFIG_FIELDS:
            if wt != 0:
                raise FormatError("config field %d: wire type %d" % (f, wt))
            cfg[CONFIG_FIELDS[f]] = v
    return cfg


def parse_tensor(buf):
    t = {"name": "", "dtype": 0, "shape": [], "offset": 0, "nbytes": 0, "crc32c": 0}
    for f, wt, v in pb_fields(buf):
        if f == 1:
            t["name"] = v.decode("utf-8")
        elif f == 2:
            t["dtype"] = v
        elif f == 3:
            if wt == 2:  # packed
                p = 0
                while p < len(v):
                    x, p = _varint(v, p)
                    t["shape"].append(x)
            else:
                t["shape"].append(v)
        elif f == 4:
            t["offset"] = v
        elif f == 5:
            t["nbytes"] = v
        elif f == 6:
            t["crc32c"] = v
    return t


def parse_manifest(buf):
    m = {"format_version": 0, "config": parse_config(b""), "tensors": [], "name": "",
         "generator": ""}
    for f, wt, v in pb_fields(buf):
        if f == 1:
            m["format_version"] = v
        elif f == 2:
            m["config"] = parse_config(v)
        elif f == 3:
            m["tensors"].append(parse_tensor(v))
        elif f == 4:
            m["name"] = v.decode("utf-8")
        elif f == 5:
            m["generator"] = v.decode("utf-8")
    return m


_CRC_TABLE = None


def crc32c(data):
    global _CRC_TABLE
    if _CRC_TABLE is None:
        tab = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            tab.append(c)
        _CRC_TABLE = tab
    crc = 0xFFFFFFFF
    tab = _CRC_TABLE
    for b in data:
        crc = tab[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def load_model(path, verify_crc=False):
    """Returns (config dict, {name: float32 ndarray}, manifest dict)."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 64:
        raise FormatError("file shorter than the 64-byte header")
    if data[0:8] != MAGIC:
        raise FormatError("bad magic %r" % data[0:8])
    version, header_size = struct.unpack_from("<II", data, 8)
    man_off, man_size, data_off, file_size = struct.unpack_from("<QQQQ", data, 16)
    man_crc = struct.unpack_from("<I", data, 48)[0]
    if version != 1 or header_size != 64:
        raise FormatError("unsupported version %d / header size %d" % (version, header_size))
    if file_size != len(data):
        raise FormatError("header file_size %d != actual %d" % (file_size, len(data)))
    if man_off + man_size > len(data) or man_off + man_size > data_off:
        raise FormatError("manifest out of range")
    man_bytes = data[man_off:man_off + man_size]
    if verify_crc and crc32c(man_bytes) != man_crc:
        raise FormatError("manifest crc32c mismatch")
    man = parse_manifest(man_bytes)
    weights = {}
    q8 = set()
    for t in man["tensors"]:
        off, nb = t["offset"], t["nbytes"]
        if off + nb > len(data):
            raise FormatError("tensor %s out of range" % t["name"])
        raw = data[off:off + nb]
        if verify_crc and crc32c(raw) != t["crc32c"]:
            raise FormatError("tensor %s crc32c mismatch" % t["name"])
        if t["dtype"] == DTYPE_F32:
            shape = tuple(t["shape"])
            n = int(np.prod(shape)) if shape else 1
            if nb != 4 * n:
                raise FormatError("tensor %s: nbytes %d != 4*%d" % (t["name"], nb, n))
            weights[t["name"]] = np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
        elif t["dtype"] == DTYPE_Q8_0:
            weights[t["name"]] = q8_logical(man["config"], t["name"], q8_decode(t, raw))
            q8.add(t["name"])
        # DTYPE_U8 (tokenizer) and anything else is ignored
    man["q8"] = q8
    return man["config"], weights, man


# ---------------------------------------------------------------------------------------------
# q8 (docs/file-format.md): a q8 tensor is stored as rows along the reduction axis of the
# product it takes part in; rows of n values take ceil(n/32) blocks of (IEEE half scale,
# 32 int8), the tail zero. The engine also rounds the activations that meet a q8 weight in a
# product (per block of 32 along the reduction: d = max|x|/127 in float32, q = rint(x·(1/d)));
# act_q8 below repeats that rounding, in float32 like the engine.
# ---------------------------------------------------------------------------------------------

Q8_BLOCK_DTYPE = np.dtype([("d", "<f2"), ("q", "i1", (Q8_BLOCK,))])


def q8_decode(t, raw):
    """Dequantised float32 array of a q8 tensor in its stored shape (rows, row...)."""
    shape = tuple(t["shape"])
    rows = shape[0]
    n = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    nb = -(-n // Q8_BLOCK)
    if len(raw) != rows * nb * Q8_BLOCK_DTYPE.itemsize:
        raise FormatError("tensor %s: nbytes %d, a q8 (%d, %d) takes %d" %
                          (t["name"], len(raw), rows, n, rows * nb * Q8_BLOCK_DTYPE.itemsize))
    blocks = np.frombuffer(raw, dtype=Q8_BLOCK_DTYPE).reshape(rows, nb)
    d = blocks["d"].astype(np.float32)
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise FormatError("tensor %s: a q8 scale is not finite or negative" % t["name"])
    vals = (d[..., None] * blocks["q"].astype(np.float32)).reshape(rows, nb * Q8_BLOCK)
    return vals[:, :n].reshape(shape)


def q8_transposed(cfg, name):
    """True when the q8 tensor is stored transposed: W (in, out) as out rows of in."""
    short = name.split(".", 2)[2] if name.startswith("layers.") else name
    short = re.sub(r"^attn[12]\.", "attn.", short)  # Terraformer blocks: attn1., attn2.
    if short in ("attn.wq", "attn.wk", "attn.wv", "attn.wo", "attn.mult.p", "sru.wi", "sru.w",
                 "sru.wo", "out.w", "out.p", "ff.w1"):
        return True
    return short == "ff.w2" and cfg["ff"] == FF_DENSE


def q8_logical(cfg, name, arr):
    """The f32 layout of SPEC (y = x·W, conv (3, Km, M, M)) from a q8 tensor's stored one."""
    if ".conv_" in name:  # (M_out, 3·Km·M_in), element (o, (a·Km + k)·M + c) = W[a, k, c, o]
        M = arr.shape[0]
        Km = arr.shape[1] // (3 * M)
        return arr.reshape(M, 3, Km, M).transpose(1, 2, 3, 0).copy()
    return arr.T.copy() if q8_transposed(cfg, name) else arr


def act_q8(x):
    """The engine's activation rounding along the last axis, returned as float64 values."""
    x32 = np.asarray(x, dtype=np.float32)
    n = x32.shape[-1]
    nb = -(-n // Q8_BLOCK)
    pad = np.zeros(x32.shape[:-1] + (nb * Q8_BLOCK,), dtype=np.float32)
    pad[..., :n] = x32
    blk = pad.reshape(x32.shape[:-1] + (nb, Q8_BLOCK))
    d = (np.abs(blk).max(axis=-1) / np.float32(127.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d > 0, np.float32(1.0) / np.where(d > 0, d, np.float32(1.0)), np.float32(0.0))
    q = np.rint(blk * inv[..., None].astype(np.float32))
    out = q.astype(np.float64) * d[..., None].astype(np.float64)
    return out.reshape(pad.shape)[..., :n]


# ---------------------------------------------------------------------------------------------
# Building blocks (SPEC §1). All functions take float64 arrays; time is the leading axis.
# ---------------------------------------------------------------------------------------------

def layer_norm(x, g, b):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # population variance
    return g * (x - mean) / np.sqrt(var + LN_EPS) + b


def dense_ff(x, w1, b1, w2, b2, q8=(False, False)):
    h = np.maximum((act_q8(x) if q8[0] else x) @ w1 + b1, 0.0)
    return (act_q8(h) if q8[1] else h) @ w2 + b2


def sparse_ff(x, c1, c2, cb, w1t, w2, b2, N, record=None, mutant=None, q8=False):
    """x: (T, d). W1 stored transposed (F, d). Returns (T, d); record gets chosen unit ids."""
    T = x.shape[0]
    F = w1t.shape[0]
    B = F // N
    logits = (x @ c1) @ c2 + (0.0 if mutant == "sparse_ff_no_cb" else cb)  # (T, F)
    l = logits.reshape(T, B, N)
    j = np.argmax(l, axis=-1)                        # first maximum wins
    idx = np.arange(B)[None, :] * N + j              # (T, B) absolute unit index
    if record is not None:
        srt = np.sort(l, axis=-1)
        gap = srt[..., -1] - srt[..., -2]            # margin of the winning unit
        record.append({"units": idx.copy(), "min_gap": float(gap.min())})
    rows1 = w1t[idx]                                 # (T, B, d)
    pre = np.einsum("tbd,td->tb", rows1, act_q8(x) if q8 else x)  # controller: raw x
    if mutant == "sparse_ff_bias_relu":
        pre = pre + np.take_along_axis(l, j[..., None], axis=-1)[..., 0]
    h = np.maximum(pre, 0.0)                         # no bias before ReLU
    rows2 = w2[idx]                                  # (T, B, d)
    return np.einsum("tb,tbd->td", h, rows2) + b2


def mult_dense(x, G, P, c, mutant=None, q8=False):
    """Multiplicative dense. x: (T, d), G: (S, d), P: (d, M), c: (S*M). Returns (T, S, M).
    With q8 P, each scaled copy x ⊙ G[s] is rounded as the engine does."""
    S = G.shape[0]
    M = P.shape[1]
    if q8:
        y = np.einsum("tsi,im->tsm", act_q8(x[:, None, :] * G[None, :, :]), P)
    else:
        y = np.einsum("ti,si,im->tsm", x, G, P)
    if mutant == "mult_flatten_minor":  # index m*S + s instead of s*M + m
        return (y.transpose(0, 2, 1) + c.reshape(M, S)).reshape(-1, M, S).reshape(-1, S, M)
    return y + c.reshape(S, M)


def local_conv(y, W, beta, mutant=None, q8=False):
    """Causal-in-time local convolution. y: (T, S, M) rows y_0..y_{T-1};
    W: (K_t, K_m, M, M) as [a, k, c_in, o_out]; beta: (M). Returns (T, S, M)."""
    T, S, M = y.shape
    Kt, Km = W.shape[0], W.shape[1]
    pm = (Km - 1) // 2
    ypad = np.zeros((T + Kt - 1, S + 2 * pm, M))
    ypad[Kt - 1:, pm:pm + S, :] = y
    out = np.broadcast_to(beta, (T, S, M)).copy()
    if mutant == "conv_time_reversed":
        W = W[::-1]
    if mutant == "conv_modules_flipped":
        W = W[:, ::-1]
    if q8:  # the im2col row of each (t, s), index (a·Km + k)·M + c, rounded as a whole
        col = np.concatenate([ypad[a:a + T, k:k + S, :] for a in range(Kt) for k in range(Km)],
                             axis=-1)
        return out + act_q8(col) @ W.reshape(Kt * Km * M, M)
    for a in range(Kt):
        if mutant == "conv_noncausal_reset" and a != Kt - 1:
            continue
        # ypad row (t + a) holds y_{t - (Kt-1) + a}
        for k in range(Km):
            # module s + k - pm is at padded index s + k
            out += ypad[a:a + T, k:k + S, :] @ W[a, k]
    return out


def causal_attention(q, k, v, H, mutant=None):
    """q, k, v: (T, d), heads split head-major (contiguous dh chunks). Returns merged (T, d)."""
    T, d = q.shape
    dh = d // H
    if mutant == "heads_interleaved":
        split = lambda z: z.reshape(T, dh, H).transpose(2, 0, 1)
    else:
        split = lambda z: z.reshape(T, H, dh).transpose(1, 0, 2)
    qh, kh, vh = split(q), split(k), split(v)
    scale = 1.0 / dh if mutant == "attn_scale_1_over_dh" else 1.0 / np.sqrt(dh)
    s = qh @ kh.transpose(0, 2, 1) * scale          # (H, T, T)
    mask = np.triu(np.ones((T, T), dtype=bool), k=1)
    s = np.where(mask[None], -np.inf, s)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    o = p @ vh                                       # (H, T, dh)
    if mutant == "heads_interleaved":
        return o.transpose(1, 2, 0).reshape(T, d)
    return o.transpose(1, 0, 2).reshape(T, d)


def sru(u, W, b, mutant=None, q8=False):
    """u: (T, n). W: (n, 3n), b: (3n); gates [r~, f~, y~] in that order. Returns h (T, n)."""
    T, n = u.shape
    z = (act_q8(u) if q8 else u) @ W + b
    r = 1.0 / (1.0 + np.exp(-z[:, 0:n]))
    f = 1.0 / (1.0 + np.exp(-z[:, n:2 * n]))
    if mutant == "sru_gate_order_fry":
        r, f = f, r
    k3 = 1.0 if mutant == "sru_no_sqrt3" else np.sqrt(3.0)
    yt = z[:, 2 * n:3 * n]
    c = np.zeros(n)
    h = np.empty((T, n))
    for t in range(T):
        c = f[t] * c + (1.0 - f[t]) * yt[t]
        h[t] = r[t] * c + (1.0 - r[t]) * u[t] * k3
    return h


# ---------------------------------------------------------------------------------------------
# LSH attention (SPEC §2 "LSH attention"), written from the SPEC text.
# ---------------------------------------------------------------------------------------------

GOLDEN = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1


def splitmix64(z):
    """One SplitMix64 step on a Python int (mod 2^64): returns the output of state z."""
    z = (z + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def lsh_rotations(sigma, sublayer, head, dh, n_hashes, n_buckets):
    """R (dh, n_hashes, n_buckets/2) float32 for attention sub-layer `sublayer`, head `head`."""
    key = splitmix64(splitmix64(splitmix64(sigma) ^ sublayer) ^ head)
    n = dh * n_hashes * (n_buckets // 2)
    vals = []
    k = 0
    while len(vals) < n:
        # w_k = sm(key + (k-1)·golden): the state advances by the same step
        w1 = splitmix64((key + k * GOLDEN) & MASK64)
        w2 = splitmix64((key + (k + 1) * GOLDEN) & MASK64)
        k += 2
        u1 = ((w1 >> 11) + 1) * 2.0 ** -53
        u2 = ((w2 >> 11) + 1) * 2.0 ** -53
        r = math.sqrt(-2.0 * math.log(u1))
        vals.append(r * math.cos(2.0 * math.pi * u2))
        vals.append(r * math.sin(2.0 * math.pi * u2))
    return np.array(vals[:n], dtype=np.float32).reshape(dh, n_hashes, n_buckets // 2)


def lsh_first_held(T, P, D):
    """first[t]: the oldest position still cached when position t is written (SPEC §2 cache:
    before writing at index end, if end + 1 > P drop the oldest D)."""
    first = np.zeros(T, dtype=np.int64)
    end, lo = 0, 0
    for t in range(T):
        if end + 1 > P:
            end -= D
            lo += D
        end += 1
        first[t] = lo
    return first


def lsh_buckets(z, R, record=None, mutant=None):
    """z: (T, dh); R: (dh, n_hashes, nb/2). Returns (T, n_hashes) bucket ids (first maximum)."""
    t = np.einsum("td,drb->trb", z, R.astype(np.float64))
    full = t if mutant == "lsh_hash_no_negation" else np.concatenate([t, -t], axis=-1)
    if record is not None:
        srt = np.sort(full, axis=-1)
        record.append(float((srt[..., -1] - srt[..., -2]).min()))
    return np.argmax(full, axis=-1)


def lsh_attention(qk, v, H, rots, C, P, D, record=None, mutant=None):
    """SPEC §2 LSH attention over a whole sequence, position by position.
    qk, v: (T, d) head-major; rots[h]: (dh, n_hashes, nb/2). Returns merged (T, d)."""
    T, d = qk.shape
    dh = d // H
    first = lsh_first_held(T, P if mutant != "lsh_no_drop" else T + 1, D)
    out = np.zeros((T, d))
    for h in range(H):
        sl = slice(h * dh, (h + 1) * dh)
        z = qk[:, sl]
        bk = lsh_buckets(z, rots[h], record, mutant)
        if mutant == "lsh_raw_keys":
            kn = z / np.sqrt(dh)
        else:
            kn = z / np.sqrt((z ** 2).mean(axis=-1, keepdims=True) + 1e-6) / np.sqrt(dh)
        for t in range(T):
            j = np.arange(first[t], t + 1)
            if len(j) > C:
                match = (bk[j] == bk[t]).any(axis=-1)
                if mutant == "lsh_recent_only":
                    match[:] = False
                prio = j + P * match            # distinct, so no ties
                j = np.sort(j[np.argsort(-prio)[:C]])
            s = kn[j] @ z[t]
            if mutant != "lsh_self_unmasked":
                s = s - 1e5 * (j == t)
            s = s - s.max()
            p = np.exp(s)
            p /= p.sum()
            out[t, sl] = p @ v[j, sl]
    return out


# ---------------------------------------------------------------------------------------------
# The model (SPEC §2, §3).
# ---------------------------------------------------------------------------------------------

# Deliberately wrong variants of the semantics ("mutants"). compare.py checks that the engine
# disagrees with each of them, which shows the comparison can tell these details apart.
MUTANTS = (
    "heads_interleaved",      # heads take strided instead of contiguous dh chunks
    "attn_scale_1_over_dh",   # softmax scale 1/dh instead of 1/sqrt(dh)
    "conv_time_reversed",     # time taps applied in the opposite order
    "conv_modules_flipped",   # module taps applied in the opposite order
    "conv_noncausal_reset",   # only the current row of y used (no history)
    "mult_flatten_minor",     # multiplicative output flattened m-major instead of s-major
    "sparse_ff_no_cb",        # controller bias ignored
    "sparse_ff_bias_relu",    # controller logit added before the ReLU
    "sru_gate_order_fry",     # gates split as [f, r, y] instead of [r, f, y]
    "sru_no_sqrt3",           # highway term without sqrt(3)
    "sru_reads_ln2",          # SRU branch reads LN2(x) instead of its own LN
    "no_pos",                 # positional rows ignored
    "lsh_hash_no_negation",   # bucket = argmax(t) instead of argmax([t, -t])
    "lsh_raw_keys",           # keys not normalised
    "lsh_recent_only",        # bucket matches ignored: the C most recent entries
    "lsh_self_unmasked",      # no -1e5 on the query's own entry
    "lsh_no_drop",            # the cache never drops (P ignored)
    "lsh_rotation_layer_local",  # rotations drawn with the block index instead of 2·block + k
    "rev_no_swap",            # Terraformer streams not swapped after a block
    "rev_out_from_a",         # Terraformer output from stream a only, not (a + b)/2
)


class Reference:
    def __init__(self, cfg, weights, mutant=None, q8=(), rotation_seed=0):
        self.cfg = cfg
        self.q8 = set(q8)  # names of the q8 tensors: their products round the activations
        if mutant is not None and mutant not in MUTANTS:
            raise ValueError("unknown mutant %s" % mutant)
        self.mutant = mutant
        self.sigma = rotation_seed
        self.w = {k: v.astype(np.float64) for k, v in weights.items()}
        if cfg["arch"] not in (ARCH_SCALING, ARCH_TERRAFORMER):
            raise FormatError("unknown arch %d" % cfg["arch"])
        if cfg["attn"] not in (ATTN_DENSE, ATTN_SPARSE_QKV):
            raise FormatError("attn must be dense or sparse QKV (LSH is chosen per sub-layer "
                              "by lsh_layers)")
        if cfg["lsh_period"] and cfg["lsh_phase"] >= cfg["lsh_period"]:
            raise FormatError("lsh_phase must be < lsh_period")
        if cfg["lsh_period"]:
            nb = cfg["lsh_n_buckets"]
            if cfg["lsh_n_hashes"] < 1 or nb < 2 or nb % 2 or cfg["lsh_chunk_len"] < 1:
                raise FormatError("bad LSH hyper-parameters")
            if not 1 <= cfg["lsh_drop_len"] <= cfg["lsh_cache_len"] or \
                    self.lsh_C() > cfg["lsh_cache_len"]:
                raise FormatError("bad LSH cache: need C <= P and 1 <= D <= P")
        self._rot = {}

    @classmethod
    def from_file(cls, path, verify_crc=False, mutant=None, rotation_seed=0):
        cfg, w, man = load_model(path, verify_crc)
        return cls(cfg, w, mutant, man["q8"], rotation_seed)

    def xin(self, x, name):
        """x as it enters a product with weight `name` (rounded when that weight is q8)."""
        return act_q8(x) if name in self.q8 else x

    def lsh_C(self):
        c = self.cfg
        return c["lsh_n_hashes"] * c["lsh_chunk_len"] * (1 + c["lsh_chunks_before"])

    def is_lsh(self, ell):
        """Attention sub-layer ell (global index) uses LSH iff ell % lsh_period == lsh_phase."""
        per = self.cfg["lsh_period"]
        return per > 0 and ell % per == self.cfg["lsh_phase"]

    def rotations(self, ell):
        c = self.cfg
        H = c["n_heads"]
        dh = c["d_model"] // H
        lay = ell
        if self.mutant == "lsh_rotation_layer_local" and c["arch"] == ARCH_TERRAFORMER:
            lay = ell // 2
        k = (self.sigma, lay)
        if k not in self._rot:
            self._rot[k] = [lsh_rotations(self.sigma, lay, h, dh, c["lsh_n_hashes"],
                                          c["lsh_n_buckets"]) for h in range(H)]
        return self._rot[k]

    def attention(self, p, ell, h, lsh_record=None):
        """Attention sub-layer with tensors named p + "wq" etc.; ell its global index."""
        w, c = self.w, self.cfg
        H = c["n_heads"]
        lsh = self.is_lsh(ell)
        mu = self.mutant
        if c["attn"] == ATTN_DENSE:
            hq = self.xin(h, p + "wq")
            q = hq @ w[p + "wq"] + w[p + "bq"]
            k = hq @ w[p + "wk"] + w[p + "bk"]
            v = hq @ w[p + "wv"] + w[p + "bv"]
        else:
            T = h.shape[0]
            q8 = self.q8
            y = mult_dense(h, w[p + "mult.g"], w[p + "mult.p"], w[p + "mult.c"], mu,
                           p + "mult.p" in q8)  # (T, S, M)
            q = local_conv(y, w[p + "conv_q.w"], w[p + "conv_q.b"], mu,
                           p + "conv_q.w" in q8).reshape(T, -1)  # s-major
            k = local_conv(y, w[p + "conv_k.w"], w[p + "conv_k.b"], mu,
                           p + "conv_k.w" in q8).reshape(T, -1)
            v = local_conv(y, w[p + "conv_v.w"], w[p + "conv_v.b"], mu,
                           p + "conv_v.w" in q8).reshape(T, -1)
        if lsh:
            o = lsh_attention((q + k) / 2, v, H, self.rotations(ell), self.lsh_C(),
                              c["lsh_cache_len"], c["lsh_drop_len"], lsh_record, mu)
        else:
            o = causal_attention(q, k, v, H, mu)
        if c["attn"] == ATTN_DENSE:
            return self.xin(o, p + "wo") @ w[p + "wo"] + w[p + "bo"]
        return o  # sparse QKV: no output projection

    def ff(self, p, h, record=None):
        w, c = self.w, self.cfg
        if c["ff"] == FF_DENSE:
            return dense_ff(h, w[p + "w1"], w[p + "b1"], w[p + "w2"], w[p + "b2"],
                            (p + "w1" in self.q8, p + "w2" in self.q8))
        return sparse_ff(h, w[p + "ctrl.c1"], w[p + "ctrl.c2"], w[p + "ctrl.cb"], w[p + "w1t"],
                         w[p + "w2"], w[p + "b2"], c["ff_block"], record, self.mutant,
                         p + "w1t" in self.q8)

    def sru_branch(self, p, x, wrong_ln):
        w = self.w
        if self.mutant == "sru_reads_ln2":
            h = layer_norm(x, w[wrong_ln + ".g"], w[wrong_ln + ".b"])
        else:
            h = layer_norm(x, w[p + "sru.ln.g"], w[p + "sru.ln.b"])
        u = self.xin(h, p + "sru.wi") @ w[p + "sru.wi"] + w[p + "sru.bi"]
        hs = sru(u, w[p + "sru.w"], w[p + "sru.b"], self.mutant, p + "sru.w" in self.q8)
        return self.xin(hs, p + "sru.wo") @ w[p + "sru.wo"] + w[p + "sru.bo"]

    def ffb(self, p, x, ln, record=None):
        """FF(LN(x)) [+ Dense_o(SRU(Dense_i(LN'(x))))]; ln names the FF's own LayerNorm."""
        w, c = self.w, self.cfg
        delta = self.ff(p + "ff.", layer_norm(x, w[ln + ".g"], w[ln + ".b"]), record)
        if c["sru_units"]:
            delta = delta + self.sru_branch(p, x, ln)  # both branches read the same x
        return delta

    def forward(self, tokens, record=None, record_hidden=None, lsh_record=None):
        """tokens: sequence of ids at positions 0..T-1. Returns float64 logits (T, V).
        record: sparse FF choices; lsh_record: bucket-argmax margins (near-tie detection)."""
        w, c = self.w, self.cfg
        tokens = np.asarray(tokens, dtype=np.int64)
        T = len(tokens)
        if T > c["max_seq_len"]:
            raise ValueError("sequence longer than max_seq_len")
        if T and (tokens.min() < 0 or tokens.max() >= c["vocab_size"]):
            raise ValueError("token id out of range")
        x = w["embed"][tokens] + (0.0 if self.mutant == "no_pos" else w["pos"][:T])
        ln = lambda z, n: layer_norm(z, w[n + ".g"], w[n + ".b"])  # noqa: E731
        if c["arch"] == ARCH_TERRAFORMER:
            # SPEC §3: a += Attn1(LN1(b)); b += Attn2(LN2(a)); a += FFB(b); (a, b) = (b, a)
            a, b = x, x.copy()
            for i in range(c["n_layers"]):
                p = "layers.%d." % i
                a = a + self.attention(p + "attn1.", 2 * i, ln(b, p + "ln1"), lsh_record)
                b = b + self.attention(p + "attn2.", 2 * i + 1, ln(a, p + "ln2"), lsh_record)
                a = a + self.ffb(p, b, p + "ln3", record)
                if self.mutant != "rev_no_swap":
                    a, b = b, a
                if record_hidden is not None:
                    record_hidden.append(("block%d.a" % i, a.copy()))
                    record_hidden.append(("block%d.b" % i, b.copy()))
            x = a if self.mutant == "rev_out_from_a" else (a + b) / 2
        else:
            for i in range(c["n_layers"]):
                p = "layers.%d." % i
                x = x + self.attention(p + "attn.", i, ln(x, p + "ln1"), lsh_record)
                if record_hidden is not None:
                    record_hidden.append(("layer%d.attn" % i, x.copy()))
                x = x + self.ffb(p, x, p + "ln2", record)
                if record_hidden is not None:
                    record_hidden.append(("layer%d.ff" % i, x.copy()))
        h = layer_norm(x, w["ln_f.g"], w["ln_f.b"])
        if c["out"] == OUT_DENSE:
            return self.xin(h, "out.w") @ w["out.w"] + w["out.b"]
        return mult_dense(h, w["out.g"], w["out.p"], w["out.c"], self.mutant,
                          "out.p" in self.q8).reshape(T, -1)


# ---------------------------------------------------------------------------------------------
# Naive (loop) versions of the structured blocks, used by the self-test to check the vectorised
# code above against the literal SPEC formulas.
# ---------------------------------------------------------------------------------------------

def naive_mult_dense(x, G, P, c):
    S, d = G.shape
    M = P.shape[1]
    y = np.zeros(S * M)
    for s in range(S):
        for m in range(M):
            acc = 0.0
            for i in range(d):
                acc += x[i] * G[s, i] * P[i, m]
            y[s * M + m] = acc + c[s * M + m]
    return y


def naive_local_conv_step(ys, t, W, beta):
    """ys: list of (S, M) rows; computes out_t by the SPEC formula with explicit zero padding."""
    Kt, Km, M, _ = W.shape
    S = ys[0].shape[0]
    out = np.zeros((S, M))
    for s in range(S):
        for o in range(M):
            acc = beta[o]
            for a in range(Kt):
                tt = t - (Kt - 1) + a
                if tt < 0:
                    continue
                for k in range(Km):
                    ss = s + k - (Km - 1) // 2
                    if ss < 0 or ss >= S:
                        continue
                    for ci in range(M):
                        acc += ys[tt][ss, ci] * W[a, k, ci, o]
            out[s, o] = acc
    return out


def naive_sparse_ff_step(x, c1, c2, cb, w1t, w2, b2, N):
    F = w1t.shape[0]
    B = F // N
    l = (x @ c1) @ c2 + cb
    out = b2.copy()
    for b in range(B):
        best = 0
        for n in range(1, N):
            if l[b * N + n] > l[b * N + best]:
                best = n
        col = b * N + best
        hb = max(0.0, float(np.dot(x, w1t[col])))
        out = out + hb * w2[col]
    return out


def self_test(seed=1234):
    """Checks vectorised blocks against naive loops. Returns list of failure strings."""
    rng = np.random.default_rng(seed)
    fails = []
    # multiplicative dense
    T, d, S = 3, 12, 3
    M = d // S
    x = rng.standard_normal((T, d))
    G, P, c = rng.standard_normal((S, d)), rng.standard_normal((d, M)), rng.standard_normal(d)
    y = mult_dense(x, G, P, c).reshape(T, -1)
    for t in range(T):
        if not np.allclose(y[t], naive_mult_dense(x[t], G, P, c), rtol=1e-12, atol=1e-12):
            fails.append("mult_dense differs from the naive SPEC formula")
            break
    # local convolution, both kernel shapes
    T, S, M = 5, 4, 3
    ys = rng.standard_normal((T, S, M))
    for Km in (3, 1):
        W = rng.standard_normal((3, Km, M, M))
        beta = rng.standard_normal(M)
        out = local_conv(ys, W, beta)
        for t in range(T):
            ref = naive_local_conv_step(list(ys), t, W, beta)
            if not np.allclose(out[t], ref, rtol=1e-12, atol=1e-12):
                fails.append("local_conv (3x%d) differs from the naive SPEC formula" % Km)
                break
    # sparse FF
    T, d, F, N, r = 4, 8, 24, 4, 3
    x = rng.standard_normal((T, d))
    args = (rng.standard_normal((d, r)), rng.standard_normal((r, F)), rng.standard_normal(F),
            rng.standard_normal((F, d)), rng.standard_normal((F, d)), rng.standard_normal(d))
    out = sparse_ff(x, *args, N)
    for t in range(T):
        if not np.allclose(out[t], naive_sparse_ff_step(x[t], *args, N), rtol=1e-12, atol=1e-12):
            fails.append("sparse_ff differs from the naive SPEC formula")
            break
    # first-maximum tie-breaking
    l = np.array([[0.5, 2.0, 2.0, 1.0]])
    if int(np.argmax(l, axis=-1)[0]) != 1:
        fails.append("argmax tie-breaking is not first-max")
    # causal attention: output at t must not depend on later positions
    T, d, H = 6, 8, 2
    q, k, v = (rng.standard_normal((T, d)) for _ in range(3))
    o1 = causal_attention(q, k, v, H)
    k2, v2 = k.copy(), v.copy()
    k2[4:] += 1.0
    v2[4:] += 1.0
    o2 = causal_attention(q, k2, v2, H)
    if not np.allclose(o1[:4], o2[:4]) or np.allclose(o1[4:], o2[4:]):
        fails.append("attention is not causal")
    # explicit single-position attention for the last row
    dh = d // H
    t = T - 1
    exp = np.zeros(d)
    for hh in range(H):
        sl = slice(hh * dh, (hh + 1) * dh)
        sc = np.array([np.dot(q[t, sl], k[j, sl]) / np.sqrt(dh) for j in range(t + 1)])
        pr = np.exp(sc - sc.max())
        pr /= pr.sum()
        exp[sl] = sum(pr[j] * v[j, sl] for j in range(t + 1))
    if not np.allclose(o1[t], exp, rtol=1e-12, atol=1e-12):
        fails.append("attention differs from the explicit per-head formula")
    # SRU step by step
    T, n = 4, 3
    u = rng.standard_normal((T, n))
    W, b = rng.standard_normal((n, 3 * n)), rng.standard_normal(3 * n)
    h = sru(u, W, b)
    cst = np.zeros(n)
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))
    for t in range(T):
        g = u[t] @ W + b
        rr, ff, yy = sig(g[:n]), sig(g[n:2 * n]), g[2 * n:]
        cst = ff * cst + (1 - ff) * yy
        if not np.allclose(h[t], rr * cst + (1 - rr) * u[t] * np.sqrt(3), rtol=1e-12):
            fails.append("sru differs from the step formula")
            break
    # layer norm
    x = rng.standard_normal(7)
    g, bb = rng.standard_normal(7), rng.standard_normal(7)
    mu = sum(x) / 7
    var = sum((xi - mu) ** 2 for xi in x) / 7
    if not np.allclose(layer_norm(x, g, bb), g * (x - mu) / np.sqrt(var + 1e-6) + bb):
        fails.append("layer_norm differs")
    fails += lsh_self_test(rng)
    return fails


def naive_lsh_step_cache(entries, q_buckets, C, P):
    """entries: list of (pos, qk, v, buckets) held by the cache, oldest first, the last one the
    query's own. Transcribes SPEC §2 "One step" literally (sort by prio, ties larger j first)."""
    t = len(entries) - 1
    q = entries[t][1]
    dh = q.shape[0]
    cand = []
    for j, (_, z, _, b) in enumerate(entries):
        match = any(int(b[r]) == int(q_buckets[r]) for r in range(len(b)))
        cand.append((j + P * int(match), j))
    cand.sort(key=lambda pj: (-pj[0], -pj[1]))
    J = [j for _, j in cand[:C]] if t + 1 > C else list(range(t + 1))
    scores = []
    for j in J:
        z = entries[j][1]
        kj = z / math.sqrt(sum(float(x) ** 2 for x in z) / dh + 1e-6) / math.sqrt(dh)
        scores.append(float(np.dot(q, kj)) - (1e5 if j == t else 0.0))
    m = max(scores)
    e = [math.exp(sc - m) for sc in scores]
    tot = sum(e)
    o = np.zeros_like(entries[0][2])
    for ej, j in zip(e, J):
        o = o + (ej / tot) * entries[j][2]
    return o


def lsh_self_test(rng):
    fails = []
    # the rotation generator: Python ints vs numpy uint64 arithmetic, and a Gaussian draw
    sigma, ell, head, dh, nh, nb = 0xDEADBEEF12345678, 5, 3, 7, 3, 6  # 63 values: odd count
    R = lsh_rotations(sigma, ell, head, dh, nh, nb)
    with np.errstate(over="ignore"):
        g = np.uint64(GOLDEN)

        def sm(z):
            z = z + g
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            return z ^ (z >> np.uint64(31))
        key = sm(sm(sm(np.array([sigma], np.uint64)) ^ np.uint64(ell)) ^ np.uint64(head))
        w = sm(key + np.arange(64, dtype=np.uint64) * g)
    u = ((w >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0 ** -53
    r = np.sqrt(-2 * np.log(u[0::2]))
    zz = np.stack([r * np.cos(2 * np.pi * u[1::2]), r * np.sin(2 * np.pi * u[1::2])], 1).ravel()
    if not np.array_equal(R.ravel(), zz[:63].astype(np.float32)):
        fails.append("lsh_rotations differs from a numpy uint64 transcription")
    big = lsh_rotations(1, 0, 0, 64, 4, 64).astype(np.float64)
    if abs(big.mean()) > 0.03 or abs(big.std() - 1) > 0.03:
        fails.append("lsh_rotations is not a standard normal draw (mean %.3f std %.3f)" %
                     (big.mean(), big.std()))
    if np.array_equal(lsh_rotations(1, 0, 0, 4, 1, 2), lsh_rotations(1, 0, 1, 4, 1, 2)):
        fails.append("lsh_rotations: heads share rotations")
    # LSH attention against a literal cache simulation with drops (several P, D, C)
    for (T, H, dh, nh, nb, C, P, D) in ((23, 2, 4, 2, 4, 4, 6, 2), (30, 1, 5, 1, 2, 3, 3, 3),
                                        (17, 2, 3, 3, 6, 6, 9, 1), (12, 1, 4, 2, 4, 12, 12, 5)):
        d = H * dh
        qk, v = rng.standard_normal((T, d)), rng.standard_normal((T, d))
        rots = [rng.standard_normal((dh, nh, nb // 2)).astype(np.float32) for _ in range(H)]
        out = lsh_attention(qk, v, H, rots, C, P, D)
        for h in range(H):
            sl = slice(h * dh, (h + 1) * dh)
            cache = []
            for t in range(T):
                if len(cache) + 1 > P:
                    cache = cache[D:]
                tb = np.einsum("d,drb->rb", qk[t, sl], rots[h].astype(np.float64))
                bk = np.argmax(np.concatenate([tb, -tb], axis=-1), axis=-1)
                cache.append((t, qk[t, sl], v[t, sl], bk))
                ref = naive_lsh_step_cache(cache, bk, C, P)
                if not np.allclose(out[t, sl], ref, rtol=1e-12, atol=1e-12):
                    fails.append("lsh_attention differs from the literal cache simulation "
                                 "(T=%d C=%d P=%d D=%d, t=%d head %d)" % (T, C, P, D, t, h))
                    break
    # while the sequence fits in C: shared-QK causal attention with normalised keys
    T, H, dh = 9, 2, 4
    qk, v = rng.standard_normal((T, H * dh)), rng.standard_normal((T, H * dh))
    rots = [rng.standard_normal((dh, 2, 2)).astype(np.float32) for _ in range(H)]
    out = lsh_attention(qk, v, H, rots, 16, 16, 1)
    for h in range(H):
        sl = slice(h * dh, (h + 1) * dh)
        z = qk[:, sl]
        kn = z / np.sqrt((z ** 2).mean(-1, keepdims=True) + 1e-6) / np.sqrt(dh)
        s = z @ kn.T - 1e5 * np.eye(T)
        s = np.where(np.triu(np.ones((T, T), bool), 1), -np.inf, s)
        pr = np.exp(s - s.max(-1, keepdims=True))
        pr /= pr.sum(-1, keepdims=True)
        if not np.allclose(out[:, sl], pr @ v[:, sl], rtol=1e-12, atol=1e-12):
            fails.append("lsh_attention with t + 1 <= C differs from shared-QK causal attention")
    return fails


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--tokens", help="space separated token ids")
    ap.add_argument("--out", help="write float64 logits (rows = tokens) here")
    ap.add_argument("--verify-crc", action="store_true")
    ap.add_argument("--rotation-seed", type=lambda v: int(v, 0), default=0,
                    help="the sequence's LSH rotation seed (SPEC §2), for LSH layers")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        fails = self_test()
        for f in fails:
            print("FAIL:", f)
        print("self-test", "FAILED" if fails else "ok")
        return 1 if fails else 0
    if not a.model or a.tokens is None:
        ap.error("--model and --tokens are required")
    ref = Reference.from_file(a.model, a.verify_crc, rotation_seed=a.rotation_seed)
    toks = [int(t) for t in a.tokens.split()]
    logits = ref.forward(toks)
    if a.out:
        logits.astype("<f8").tofile(a.out)
    print(" ".join(str(int(i)) for i in np.argmax(logits, axis=-1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
