"""PyTorch Scaling Transformer LM and Terraformer (Jaszczur et al. 2021), exactly as docs/model.md.

Parameters are stored in the sparsetf file layout (SPEC / docs/file-format.md): W of shape
(in, out) with y = x·W + b, sparse FF W1 stored transposed (F, d), local-conv kernels as
(time tap, module tap, in, out). The state dict keys are the file's tensor names, so export is
a straight copy (see export.py); `tensor_names()` gives the file order.

Training-only behaviour (Sparse FF): Gumbel-softmax straight-through estimator with
temperature 0.1 following Trax `SparseFF` semantics (mask = softmax of the controller logits
per block; hard one-hot of argmax(log mask + 0.1·Gumbel noise) with the straight-through
gradient of the soft mask; on a random fraction of steps the soft mask itself). In eval mode
the controller takes argmax (first maximum), the engine's decoding rule.

Terraformer (arch "terraformer", SPEC §3): reversible two-stream blocks
`a += Attn1(LN1(b)); b += Attn2(LN2(a)); a += FFB(b); swap`, output from LN_f((a + b)/2),
optional SRU branch in FFB. The attention sub-layers named in the lsh_layers bit mask
(global index 2·block + k) use SPEC §2 LSH attention: shared QK, keys normalised, each query
attends to the C most recent cached entries that share a bucket with it in some hash round,
topped up with the most recent others, over the cache of P entries that drops D at a time.
This is computed exactly, as a (T, T) selection mask per head, so training sees the decoding
rule itself. Rotations: random Gaussian ones each forward pass while training (any draw is a
valid model); in eval mode the SPEC §2 generator from `model.rotation_seed`, so the logits can
be compared with the engine's for the same seed.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as Fn

LN_EPS = 1e-6

ARCH_KINDS = {"scaling": 0, "terraformer": 1}
FF_KINDS = {"dense": 0, "sparse": 1}
ATTN_KINDS = {"dense": 0, "sparse_qkv": 1}
OUT_KINDS = {"dense": 0, "multiplicative": 1}


class Config:
    KEYS = ("d_model", "n_heads", "n_layers", "d_ff", "vocab_size", "max_seq_len", "ff",
            "ff_block", "ff_rank", "attn", "qkv_modules", "out", "out_modules", "bos_id",
            "eos_id", "arch", "sru_units", "lsh_layers", "lsh_n_hashes", "lsh_n_buckets",
            "lsh_chunk_len", "lsh_chunks_before", "lsh_cache_len", "lsh_drop_len")

    def __init__(self, **kw):
        self.arch = "scaling"
        self.sru_units = 0
        self.lsh_layers = 0          # bit l: attention sub-layer l uses LSH (SPEC §2)
        self.lsh_n_hashes = 0
        self.lsh_n_buckets = 0
        self.lsh_chunk_len = 0
        self.lsh_chunks_before = 0
        self.lsh_cache_len = 0       # P
        self.lsh_drop_len = 0        # D
        self.d_model = 256
        self.n_heads = 4
        self.n_layers = 4
        self.d_ff = 1024
        self.vocab_size = 8000
        self.max_seq_len = 256
        self.ff = "dense"
        self.ff_block = 0
        self.ff_rank = 0
        self.attn = "dense"
        self.qkv_modules = 0
        self.out = "dense"
        self.out_modules = 0
        self.bos_id = 1
        self.eos_id = 2
        for k, v in kw.items():
            if k not in self.KEYS:
                raise KeyError(k)
            setattr(self, k, v)

    def to_dict(self):
        return {k: getattr(self, k) for k in self.KEYS}

    def lsh_C(self):
        return self.lsh_n_hashes * self.lsh_chunk_len * (1 + self.lsh_chunks_before)

    def attn_prefixes(self, i):
        """(tensor prefix, LayerNorm name, global attention sub-layer index) of block i."""
        p = "layers.%d." % i
        if self.arch == "terraformer":
            return [(p + "attn1.", p + "ln1", 2 * i), (p + "attn2.", p + "ln2", 2 * i + 1)]
        return [(p + "attn.", p + "ln1", i)]

    def ff_norm(self, i):
        return "layers.%d.%s" % (i, "ln3" if self.arch == "terraformer" else "ln2")


def sincos_table(T, d):
    """The usual Transformer table: even columns sin(p / 10000^(2i/d)), odd columns cos."""
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    i = torch.arange(0, d, 2, dtype=torch.float64)[None, :]
    ang = pos / torch.pow(10000.0, i / d)
    pe = torch.zeros(T, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(ang)
    pe[:, 1::2] = torch.cos(ang[:, : d // 2])
    return pe.float()


def tensor_names(c):
    """File order of src/model/weights.c model_tensor_list()."""
    names = ["embed", "pos"]
    for i in range(c.n_layers):
        p = "layers.%d." % i
        for a, ln, _ in c.attn_prefixes(i):
            names += [ln + ".g", ln + ".b"]
            if c.attn == "dense":
                names += [a + n for n in ("wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo")]
            else:
                names += [a + n for n in ("mult.g", "mult.p", "mult.c", "conv_q.w", "conv_q.b",
                                          "conv_k.w", "conv_k.b", "conv_v.w", "conv_v.b")]
        names += [c.ff_norm(i) + ".g", c.ff_norm(i) + ".b"]
        if c.ff == "dense":
            names += [p + "ff.w1", p + "ff.b1", p + "ff.w2"]
        else:
            names += [p + "ff.ctrl.c1", p + "ff.ctrl.c2", p + "ff.ctrl.cb", p + "ff.w1t",
                      p + "ff.w2"]
        names += [p + "ff.b2"]
        if c.sru_units:
            names += [p + "sru." + n for n in ("ln.g", "ln.b", "wi", "bi", "w", "b", "wo", "bo")]
    names += ["ln_f.g", "ln_f.b"]
    if c.out == "dense":
        names += ["out.w", "out.b"]
    else:
        names += ["out.g", "out.p", "out.c"]
    return names


def normal(shape, std):
    return nn.Parameter(torch.randn(*shape) * std)


def zeros(*shape):
    return nn.Parameter(torch.zeros(*shape))


def ones(*shape):
    return nn.Parameter(torch.ones(*shape))


def mult_dense(x, G, P, c):
    """SPEC multiplicative dense: y[s,m] = sum_i x_i G[s,i] P[i,m] + c[s*M+m]; returns (..., S, M)."""
    S = G.shape[0]
    M = P.shape[1]
    return torch.matmul(x.unsqueeze(-2) * G, P) + c.view(S, M)


def local_conv(y, W, beta):
    """SPEC local convolution, causal in time. y: (B, T, S, M); W: (Kt, Km, M, M) as
    [time tap, module tap, in, out]; returns (B, T, S, M)."""
    Kt, Km = W.shape[0], W.shape[1]
    pm = (Km - 1) // 2
    inp = y.permute(0, 3, 1, 2)                            # (B, M_in, T, S)
    inp = Fn.pad(inp, (pm, pm, Kt - 1, 0))                 # modules both sides, time before
    w = W.permute(3, 2, 0, 1)                              # (out, in, Kt, Km)
    out = Fn.conv2d(inp, w, beta)                          # (B, M_out, T, S)
    return out.permute(0, 2, 3, 1)


def causal_attention(q, k, v, H):
    B, T, d = q.shape
    dh = d // H
    q = q.view(B, T, H, dh).transpose(1, 2)
    k = k.view(B, T, H, dh).transpose(1, 2)
    v = v.view(B, T, H, dh).transpose(1, 2)
    s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh)
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    p = torch.softmax(s, dim=-1)
    o = torch.matmul(p, v)
    return o.transpose(1, 2).reshape(B, T, d)


GOLDEN = 0x9E3779B97F4A7C15
M64 = (1 << 64) - 1


def _sm(z):
    z = (z + GOLDEN) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def spec_rotations(sigma, sublayer, head, dh, n_hashes, n_buckets):
    """SPEC §2 rotation generator: R (dh, n_hashes, n_buckets/2), float32 values."""
    key = _sm(_sm(_sm(sigma) ^ sublayer) ^ head)
    n = dh * n_hashes * (n_buckets // 2)
    out = []
    for k in range(0, n + 1, 2):
        u1 = ((_sm((key + k * GOLDEN) & M64) >> 11) + 1) * 2.0 ** -53
        u2 = ((_sm((key + (k + 1) * GOLDEN) & M64) >> 11) + 1) * 2.0 ** -53
        rad = math.sqrt(-2.0 * math.log(u1))
        out += [rad * math.cos(2.0 * math.pi * u2), rad * math.sin(2.0 * math.pi * u2)]
    return torch.tensor(out[:n], dtype=torch.float32).view(dh, n_hashes, n_buckets // 2)


def lsh_first_held(T, P, D):
    """Oldest cached position when position t is written (SPEC §2 cache with drops)."""
    first, end, lo = [], 0, 0
    for _ in range(T):
        if end + 1 > P:
            end -= D
            lo += D
        end += 1
        first.append(lo)
    return torch.tensor(first)


def lsh_attention(qk, v, H, R, C, P, D):
    """SPEC §2 LSH attention for every position at once. qk, v: (B, T, d); R: (H, dh, nh, nb/2).
    The selection (hash match, cache window, top C by priority) is a mask without gradient."""
    B, T, d = qk.shape
    dh = d // H
    z = qk.view(B, T, H, dh).transpose(1, 2)                         # (B, H, T, dh)
    vh = v.view(B, T, H, dh).transpose(1, 2)
    with torch.no_grad():
        t = torch.einsum("bhtd,hdrk->bhtrk", z.float(), R)
        bk = torch.argmax(torch.cat([t, -t], dim=-1), dim=-1)        # (B, H, T, nh)
        match = (bk[:, :, :, None, :] == bk[:, :, None, :, :]).any(-1)  # (B, H, Tq, Tk)
        pos = torch.arange(T, device=qk.device)
        first = lsh_first_held(T, P, D).to(qk.device)
        held = (pos[None, :] <= pos[:, None]) & (pos[None, :] >= first[:, None])  # (Tq, Tk)
        # prio = j + P·match; 2T instead of P gives the same order and exact float32 values
        prio = pos.to(torch.float32) + (2.0 * T) * match.to(torch.float32)
        prio = prio.masked_fill(~held, float("-inf"))
        if T > C:
            thr = torch.topk(prio, C, dim=-1).values[..., -1:]
            sel = held & (prio >= thr)
        else:
            sel = held.expand_as(prio)
        selfm = torch.eye(T, dtype=qk.dtype, device=qk.device) * 1e5
    kn = z * torch.rsqrt((z * z).mean(-1, keepdim=True) + 1e-6) / math.sqrt(dh)
    s = torch.matmul(z, kn.transpose(-1, -2)) - selfm                # q is raw, keys normalised
    s = s.masked_fill(~sel, float("-inf"))
    p = torch.softmax(s, dim=-1)
    return torch.matmul(p, vh).transpose(1, 2).reshape(B, T, d)


def sru(u, W, b):
    """SPEC §3 SRU over the time axis. u: (B, T, n); W: (n, 3n) as [r~, f~, y~]."""
    n = u.shape[-1]
    z = u @ W + b
    r, f, yt = torch.sigmoid(z[..., :n]), torch.sigmoid(z[..., n:2 * n]), z[..., 2 * n:]
    c = torch.zeros_like(u[:, 0])
    cs = []
    for t in range(u.shape[1]):
        c = f[:, t] * c + (1 - f[:, t]) * yt[:, t]
        cs.append(c)
    return r * torch.stack(cs, dim=1) + (1 - r) * u * math.sqrt(3.0)


class ScalingLM(nn.Module):
    def __init__(self, c, temperature=0.1, quant_prob=0.3):
        super().__init__()
        self.c = c
        self.temperature = temperature
        self.quant_prob = quant_prob  # probability of the hard (straight-through) mask
        d, V, T, F = c.d_model, c.vocab_size, c.max_seq_len, c.d_ff
        P = {}
        P["embed"] = normal((V, d), 1.0)
        P["pos"] = nn.Parameter(sincos_table(T, d))
        for i in range(c.n_layers):
            p = "layers.%d." % i
            for a, ln, _ in c.attn_prefixes(i):
                P[ln + ".g"], P[ln + ".b"] = ones(d), zeros(d)
                if c.attn == "dense":
                    for n in ("q", "k", "v", "o"):
                        P[a + "w" + n] = normal((d, d), d ** -0.5)
                        P[a + "b" + n] = zeros(d)
                else:
                    S = c.qkv_modules
                    M = d // S
                    P[a + "mult.g"] = normal((S, d), 1.0)
                    P[a + "mult.p"] = normal((d, M), d ** -0.5)
                    P[a + "mult.c"] = zeros(d)
                    P[a + "conv_q.w"] = normal((3, 3, M, M), (9 * M) ** -0.5)
                    P[a + "conv_q.b"] = zeros(M)
                    P[a + "conv_k.w"] = normal((3, 3, M, M), (9 * M) ** -0.5)
                    P[a + "conv_k.b"] = zeros(M)
                    P[a + "conv_v.w"] = normal((3, 1, M, M), (3 * M) ** -0.5)
                    P[a + "conv_v.b"] = zeros(M)
            ln = c.ff_norm(i)
            P[ln + ".g"], P[ln + ".b"] = ones(d), zeros(d)
            res_scale = (2 * c.n_layers) ** -0.5
            if c.ff == "dense":
                P[p + "ff.w1"] = normal((d, F), d ** -0.5)
                P[p + "ff.b1"] = zeros(F)
                P[p + "ff.w2"] = normal((F, d), F ** -0.5 * res_scale)
            else:
                r, N = c.ff_rank, c.ff_block
                B = F // N
                P[p + "ff.ctrl.c1"] = normal((d, r), d ** -0.5)
                P[p + "ff.ctrl.c2"] = normal((r, F), r ** -0.5)
                P[p + "ff.ctrl.cb"] = zeros(F)
                P[p + "ff.w1t"] = normal((F, d), d ** -0.5)
                P[p + "ff.w2"] = normal((F, d), B ** -0.5 * res_scale)
            P[p + "ff.b2"] = zeros(d)
            if c.sru_units:
                n = c.sru_units
                P[p + "sru.ln.g"], P[p + "sru.ln.b"] = ones(d), zeros(d)
                P[p + "sru.wi"] = normal((d, n), d ** -0.5)
                P[p + "sru.bi"] = zeros(n)
                P[p + "sru.w"] = normal((n, 3 * n), n ** -0.5)
                P[p + "sru.b"] = zeros(3 * n)
                P[p + "sru.wo"] = normal((n, d), n ** -0.5 * res_scale)
                P[p + "sru.bo"] = zeros(d)
        P["ln_f.g"], P["ln_f.b"] = ones(d), zeros(d)
        if c.out == "dense":
            P["out.w"] = normal((d, V), d ** -0.5)
            P["out.b"] = zeros(V)
        else:
            S = c.out_modules
            P["out.g"] = normal((S, d), 1.0)
            P["out.p"] = normal((d, V // S), d ** -0.5)
            P["out.c"] = zeros(V)
        assert list(P) == tensor_names(c)
        self.names = list(P)
        # nn.ParameterDict would reorder nothing but forbids '.' in keys; keep a plain list.
        self.params = nn.ParameterList([P[n] for n in self.names])
        self.index = {n: j for j, n in enumerate(self.names)}
        self.rotation_seed = 0  # SPEC §2 sequence rotation seed used in eval mode

    def rotations(self, ell):
        """(H, dh, nh, nb/2): random while training, the SPEC generator's in eval mode."""
        c = self.c
        H = c.n_heads
        dh = c.d_model // H
        shape = (H, dh, c.lsh_n_hashes, c.lsh_n_buckets // 2)
        if self.training:
            return torch.randn(*shape)
        key = (self.rotation_seed, ell)
        cache = self.__dict__.setdefault("_rot_cache", {})
        if key not in cache:
            cache[key] = torch.stack([spec_rotations(self.rotation_seed, ell, h, dh,
                                                     c.lsh_n_hashes, c.lsh_n_buckets)
                                      for h in range(H)])
        return cache[key]

    def w(self, name):
        return self.params[self.index[name]]

    def named_tensors(self):
        return [(n, self.params[j]) for j, n in enumerate(self.names)]

    def ln(self, x, p):
        return Fn.layer_norm(x, (x.shape[-1],), self.w(p + ".g"), self.w(p + ".b"), LN_EPS)

    def attention(self, a, ell, h):
        """Attention sub-layer with tensors a + "wq"...; ell: its global index (SPEC §2)."""
        c = self.c
        if c.attn == "dense":
            q = h @ self.w(a + "wq") + self.w(a + "bq")
            k = h @ self.w(a + "wk") + self.w(a + "bk")
            v = h @ self.w(a + "wv") + self.w(a + "bv")
        else:
            B, T, d = h.shape
            y = mult_dense(h, self.w(a + "mult.g"), self.w(a + "mult.p"), self.w(a + "mult.c"))
            q = local_conv(y, self.w(a + "conv_q.w"), self.w(a + "conv_q.b")).reshape(B, T, d)
            k = local_conv(y, self.w(a + "conv_k.w"), self.w(a + "conv_k.b")).reshape(B, T, d)
            v = local_conv(y, self.w(a + "conv_v.w"), self.w(a + "conv_v.b")).reshape(B, T, d)
        if (c.lsh_layers >> ell) & 1:
            o = lsh_attention((q + k) / 2, v, c.n_heads, self.rotations(ell), c.lsh_C(),
                              c.lsh_cache_len, c.lsh_drop_len)
        else:
            o = causal_attention(q, k, v, c.n_heads)
        if c.attn == "dense":
            return o @ self.w(a + "wo") + self.w(a + "bo")
        return o  # sparse QKV: no output projection

    def ffb(self, i, x, stats=None):
        """FF(LN(x)) [+ Dense_o(SRU(Dense_i(LN'(x))))] of block i (SPEC §3)."""
        out = self.ff(i, self.ln(x, self.c.ff_norm(i)), stats)
        if self.c.sru_units:
            p = "layers.%d.sru." % i
            u = self.ln(x, p + "ln") @ self.w(p + "wi") + self.w(p + "bi")
            out = out + sru(u, self.w(p + "w"), self.w(p + "b")) @ self.w(p + "wo") + \
                self.w(p + "bo")
        return out

    def ff(self, i, h, stats=None):
        c = self.c
        p = "layers.%d.ff." % i
        if c.ff == "dense":
            return torch.relu(h @ self.w(p + "w1") + self.w(p + "b1")) @ self.w(p + "w2") + \
                self.w(p + "b2")
        F, N = c.d_ff, c.ff_block
        B = F // N
        logits = (h @ self.w(p + "ctrl.c1")) @ self.w(p + "ctrl.c2") + self.w(p + "ctrl.cb")
        logits = logits.view(*h.shape[:-1], B, N)
        if self.training:
            log_mask = torch.log_softmax(logits, dim=-1)
            mask = log_mask.exp()
            if torch.rand(()) < self.quant_prob:
                u = torch.rand_like(mask).clamp_(1e-6, 1.0 - 1e-6)
                g = -torch.log(-torch.log(u))
                idx = torch.argmax(log_mask.detach() + g * self.temperature, dim=-1)
                hard = Fn.one_hot(idx, N).to(mask.dtype)
                sel = hard + mask - mask.detach()  # straight-through
            else:
                sel = mask
            mid = (h @ self.w(p + "w1t").t()) * sel.reshape(*h.shape[:-1], F)
            return torch.relu(mid) @ self.w(p + "w2") + self.w(p + "b2")
        # eval: exactly one unit per block, argmax (first maximum wins); computed as the
        # full product masked by the one-hot selection (non-selected units contribute 0)
        idx = torch.argmax(logits, dim=-1)                       # (..., B)
        if stats is not None:
            srt = torch.sort(logits, dim=-1).values
            stats.append(float((srt[..., -1] - srt[..., -2]).min()))
        hard = Fn.one_hot(idx, N).to(h.dtype).reshape(*h.shape[:-1], F)
        mid = torch.relu(h @ self.w(p + "w1t").t()) * hard
        return mid @ self.w(p + "w2") + self.w(p + "b2")

    def forward(self, tokens, stats=None):
        c = self.c
        T = tokens.shape[1]
        x = self.w("embed")[tokens] + self.w("pos")[:T]
        if c.arch == "terraformer":
            # SPEC §3: a += Attn1(LN1(b)); b += Attn2(LN2(a)); a += FFB(b); (a, b) = (b, a)
            a, b = x, x
            for i in range(c.n_layers):
                (p1, ln1, l1), (p2, ln2, l2) = c.attn_prefixes(i)
                a = a + self.attention(p1, l1, self.ln(b, ln1))
                b = b + self.attention(p2, l2, self.ln(a, ln2))
                a = a + self.ffb(i, b, stats)
                a, b = b, a
            x = (a + b) / 2
        else:
            for i in range(c.n_layers):
                ((p1, ln1, l1),) = c.attn_prefixes(i)
                x = x + self.attention(p1, l1, self.ln(x, ln1))
                x = x + self.ffb(i, x, stats)
        h = self.ln(x, "ln_f")
        if c.out == "dense":
            return h @ self.w("out.w") + self.w("out.b")
        lg = mult_dense(h, self.w("out.g"), self.w("out.p"), self.w("out.c"))
        return lg.reshape(*h.shape[:-1], c.vocab_size)


def count_params(model):
    return sum(p.numel() for p in model.parameters())
