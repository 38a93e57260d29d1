"""PyTorch Scaling Transformer LM (Jaszczur et al. 2021), exactly as docs/model.md.

Parameters are stored in the sparsetf file layout (SPEC / docs/file-format.md): W of shape
(in, out) with y = x·W + b, sparse FF W1 stored transposed (F, d), local-conv kernels as
(time tap, module tap, in, out). The state dict keys are the file's tensor names, so export is
a straight copy (see export.py); `tensor_names()` gives the file order.

Training-only behaviour (Sparse FF): Gumbel-softmax straight-through estimator with
temperature 0.1 following Trax `SparseFF` semantics (mask = softmax of the controller logits
per block; hard one-hot of argmax(log mask + 0.1·Gumbel noise) with the straight-through
gradient of the soft mask; on a random fraction of steps the soft mask itself). In eval mode
the controller takes argmax (first maximum), the engine's decoding rule.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as Fn

LN_EPS = 1e-6

FF_KINDS = {"dense": 0, "sparse": 1}
ATTN_KINDS = {"dense": 0, "sparse_qkv": 1}
OUT_KINDS = {"dense": 0, "multiplicative": 1}


class Config:
    KEYS = ("d_model", "n_heads", "n_layers", "d_ff", "vocab_size", "max_seq_len", "ff",
            "ff_block", "ff_rank", "attn", "qkv_modules", "out", "out_modules", "bos_id",
            "eos_id")

    def __init__(self, **kw):
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
        names += [p + "ln1.g", p + "ln1.b"]
        if c.attn == "dense":
            names += [p + "attn." + n for n in ("wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo")]
        else:
            names += [p + "attn." + n for n in ("mult.g", "mult.p", "mult.c", "conv_q.w",
                                                 "conv_q.b", "conv_k.w", "conv_k.b",
                                                 "conv_v.w", "conv_v.b")]
        names += [p + "ln2.g", p + "ln2.b"]
        if c.ff == "dense":
            names += [p + "ff.w1", p + "ff.b1", p + "ff.w2"]
        else:
            names += [p + "ff.ctrl.c1", p + "ff.ctrl.c2", p + "ff.ctrl.cb", p + "ff.w1t",
                      p + "ff.w2"]
        names += [p + "ff.b2"]
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
            P[p + "ln1.g"], P[p + "ln1.b"] = ones(d), zeros(d)
            if c.attn == "dense":
                for n in ("q", "k", "v", "o"):
                    P[p + "attn.w" + n] = normal((d, d), d ** -0.5)
                    P[p + "attn.b" + n] = zeros(d)
            else:
                S = c.qkv_modules
                M = d // S
                P[p + "attn.mult.g"] = normal((S, d), 1.0)
                P[p + "attn.mult.p"] = normal((d, M), d ** -0.5)
                P[p + "attn.mult.c"] = zeros(d)
                P[p + "attn.conv_q.w"] = normal((3, 3, M, M), (9 * M) ** -0.5)
                P[p + "attn.conv_q.b"] = zeros(M)
                P[p + "attn.conv_k.w"] = normal((3, 3, M, M), (9 * M) ** -0.5)
                P[p + "attn.conv_k.b"] = zeros(M)
                P[p + "attn.conv_v.w"] = normal((3, 1, M, M), (3 * M) ** -0.5)
                P[p + "attn.conv_v.b"] = zeros(M)
            P[p + "ln2.g"], P[p + "ln2.b"] = ones(d), zeros(d)
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

    def w(self, name):
        return self.params[self.index[name]]

    def named_tensors(self):
        return [(n, self.params[j]) for j, n in enumerate(self.names)]

    def ln(self, x, p):
        return Fn.layer_norm(x, (x.shape[-1],), self.w(p + ".g"), self.w(p + ".b"), LN_EPS)

    def attention(self, i, h):
        c = self.c
        p = "layers.%d.attn." % i
        if c.attn == "dense":
            q = h @ self.w(p + "wq") + self.w(p + "bq")
            k = h @ self.w(p + "wk") + self.w(p + "bk")
            v = h @ self.w(p + "wv") + self.w(p + "bv")
            o = causal_attention(q, k, v, c.n_heads)
            return o @ self.w(p + "wo") + self.w(p + "bo")
        B, T, d = h.shape
        y = mult_dense(h, self.w(p + "mult.g"), self.w(p + "mult.p"), self.w(p + "mult.c"))
        q = local_conv(y, self.w(p + "conv_q.w"), self.w(p + "conv_q.b")).reshape(B, T, d)
        k = local_conv(y, self.w(p + "conv_k.w"), self.w(p + "conv_k.b")).reshape(B, T, d)
        v = local_conv(y, self.w(p + "conv_v.w"), self.w(p + "conv_v.b")).reshape(B, T, d)
        return causal_attention(q, k, v, c.n_heads)  # no output projection

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
        for i in range(c.n_layers):
            x = x + self.attention(i, self.ln(x, "layers.%d.ln1" % i))
            x = x + self.ff(i, self.ln(x, "layers.%d.ln2" % i), stats)
        h = self.ln(x, "ln_f")
        if c.out == "dense":
            return h @ self.w("out.w") + self.w("out.b")
        lg = mult_dense(h, self.w("out.g"), self.w("out.p"), self.w("out.c"))
        return lg.reshape(*h.shape[:-1], c.vocab_size)


def count_params(model):
    return sum(p.numel() for p in model.parameters())
