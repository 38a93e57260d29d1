#include "model/forward.h"

#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

enum stf_status seq_state_create(const struct model_config *cfg, uint32_t layer_begin,
                                 uint32_t layer_end, uint32_t capacity, struct seq_state **out,
                                 struct stf_error *err)
{
    *out = NULL;
    struct seq_state *s = calloc(1, sizeof *s);
    if (!s) return stf_fail(err, STF_ERR_NOMEM, "out of memory for sequence state");
    uint64_t L = layer_end - layer_begin, d = cfg->d_model;
    s->layer_begin = layer_begin;
    s->layer_end = layer_end;
    s->capacity = capacity;
    s->d = cfg->d_model;
    s->sru_n = cfg->sru_units;
    s->k = stf_alloc(L * capacity * d * sizeof(float));
    s->v = stf_alloc(L * capacity * d * sizeof(float));
    s->conv_y = stf_alloc(L * 2 * d * sizeof(float));
    s->sru_c = stf_alloc(L * (cfg->sru_units + 1) * sizeof(float));
    if (!s->k || !s->v || !s->conv_y || !s->sru_c) {
        seq_state_free(s);
        return stf_fail(err, STF_ERR_NOMEM,
                        "out of memory for a KV cache of %u positions x %llu layers x d=%llu",
                        capacity, (unsigned long long)L, (unsigned long long)d);
    }
    *out = s;
    return STF_OK;
}

void seq_state_reset(struct seq_state *s)
{
    uint64_t L = s->layer_end - s->layer_begin;
    memset(s->conv_y, 0, L * 2 * s->d * sizeof(float));
    memset(s->sru_c, 0, L * (s->sru_n + 1) * sizeof(float));
}

void seq_state_free(struct seq_state *s)
{
    if (!s) return;
    stf_free(s->k);
    stf_free(s->v);
    stf_free(s->conv_y);
    stf_free(s->sru_c);
    free(s);
}

enum stf_status workspace_create(const struct model_config *c, uint32_t capacity,
                                 const struct kernels *k, struct workspace **out,
                                 struct stf_error *err)
{
    *out = NULL;
    struct workspace *ws = calloc(1, sizeof *ws);
    if (!ws) return stf_fail(err, STF_ERR_NOMEM, "out of memory for the workspace");
    size_t d = c->d_model, F = c->d_ff, n = c->sru_units + 1;
    size_t S = c->attn == ATTN_SPARSE_QKV ? c->qkv_modules : 1;
    size_t So = c->out == OUT_MULT ? c->out_modules : 1;
    size_t scratch = S * d;
    if (So * d > scratch) scratch = So * d;
    if (9 * d > scratch) scratch = 9 * d;
    ws->k = k;
    ws->xn = stf_alloc(d * sizeof(float));
    ws->q = stf_alloc(d * sizeof(float));
    ws->kn = stf_alloc(d * sizeof(float));
    ws->vn = stf_alloc(d * sizeof(float));
    ws->att = stf_alloc(d * sizeof(float));
    ws->y = stf_alloc(d * sizeof(float));
    ws->sub = stf_alloc(d * sizeof(float));
    ws->sru_out = stf_alloc(d * sizeof(float));
    ws->hidden = stf_alloc(F * sizeof(float));
    ws->scores = stf_alloc((size_t)capacity * sizeof(float));
    ws->scratch = stf_alloc(scratch * sizeof(float));
    ws->sru_u = stf_alloc(n * sizeof(float));
    ws->sru_gates = stf_alloc(3 * n * sizeof(float));
    ws->sru_h = stf_alloc(n * sizeof(float));
    ws->ff.u = stf_alloc((c->ff_rank + 1) * sizeof(float));
    ws->ff.logits = stf_alloc(F * sizeof(float));
    ws->ff.chosen = stf_alloc(F * sizeof(uint32_t));
    ws->ff.h = stf_alloc(F * sizeof(float));
    if (!ws->xn || !ws->q || !ws->kn || !ws->vn || !ws->att || !ws->y || !ws->sub || !ws->sru_out ||
        !ws->hidden || !ws->scores || !ws->scratch || !ws->sru_u || !ws->sru_gates || !ws->sru_h ||
        !ws->ff.u || !ws->ff.logits || !ws->ff.chosen || !ws->ff.h) {
        workspace_free(ws);
        return stf_fail(err, STF_ERR_NOMEM, "out of memory for the workspace");
    }
    *out = ws;
    return STF_OK;
}

void workspace_free(struct workspace *ws)
{
    if (!ws) return;
    float *bufs[] = {ws->xn,        ws->q,       ws->kn,     ws->vn,        ws->att,     ws->y,
                     ws->sub,       ws->sru_out, ws->hidden, ws->scores,    ws->scratch, ws->sru_u,
                     ws->sru_gates, ws->sru_h,   ws->ff.u,   ws->ff.logits, ws->ff.h};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        stf_free(bufs[i]);
    stf_free(ws->ff.chosen);
    free(ws);
}

void forward_embed(const struct model *m, uint32_t token, uint32_t pos, float *x)
{
    uint32_t d = m->cfg.d_model;
    const float *e = m->w.embed + (uint64_t)token * d, *p = m->w.pos + (uint64_t)pos * d;
    for (uint32_t i = 0; i < d; i++)
        x[i] = e[i] + p[i]; /* SPEC §1: E[tok] + PE[p], no scaling */
}

/* SPEC §2 attention sub-layer on ws->xn; writes ws->sub. Appends this position's key and
 * value to the layer's cache. */
static void attention_sublayer(const struct model_config *c, const struct layer_weights *lw,
                               struct workspace *ws, float *kcache, float *vcache, float *conv_y,
                               uint32_t pos)
{
    const struct kernels *k = ws->k;
    uint32_t d = c->d_model, H = c->n_heads, dh = d / H;
    float *kslot = kcache + (uint64_t)pos * d, *vslot = vcache + (uint64_t)pos * d;
    if (c->attn == ATTN_DENSE) {
        k->dense(ws->q, ws->xn, lw->wq, lw->bq, d, d);
        k->dense(kslot, ws->xn, lw->wk, lw->bk, d, d);
        k->dense(vslot, ws->xn, lw->wv, lw->bv, d, d);
        k->attention(ws->att, ws->q, kcache, vcache, pos + 1, d, H, dh, ws->scores);
        k->dense(ws->sub, ws->att, lw->wo, lw->bo, d, d);
        return;
    }
    /* Sparse QKV: y = mult(xn); q, k = conv3x3(y history), v = conv3x1; no output proj. */
    uint32_t S = c->qkv_modules, M = d / S;
    k->mult_dense(ws->y, ws->xn, lw->mult_g, lw->mult_p, lw->mult_c, d, S, M, ws->scratch);
    const float *rows[3] = {conv_y, conv_y + d, ws->y}; /* y_{t-2}, y_{t-1}, y_t */
    k->local_conv(ws->q, rows, lw->conv_q_w, lw->conv_q_b, S, M, 3, ws->scratch);
    k->local_conv(kslot, rows, lw->conv_k_w, lw->conv_k_b, S, M, 3, ws->scratch);
    k->local_conv(vslot, rows, lw->conv_v_w, lw->conv_v_b, S, M, 1, ws->scratch);
    memcpy(conv_y, conv_y + d, d * sizeof(float)); /* shift the time window */
    memcpy(conv_y + d, ws->y, d * sizeof(float));
    k->attention(ws->sub, ws->q, kcache, vcache, pos + 1, d, H, dh, ws->scores);
}

/* SPEC §1 FF (dense or sparse) on ws->xn; writes ws->sub. */
static void ff_sublayer(const struct model_config *c, const struct layer_weights *lw,
                        struct workspace *ws)
{
    const struct kernels *k = ws->k;
    uint32_t d = c->d_model, F = c->d_ff;
    if (c->ff == FF_DENSE) {
        k->dense(ws->hidden, ws->xn, lw->w1, lw->b1, d, F);
        for (uint32_t i = 0; i < F; i++)
            ws->hidden[i] = ws->hidden[i] > 0.0f ? ws->hidden[i] : 0.0f;
        k->dense(ws->sub, ws->hidden, lw->w2, lw->b2, F, d);
    } else {
        struct sparse_ff_dims dims = {d, F, c->ff_block, c->ff_rank};
        k->sparse_ff(ws->sub, ws->xn, lw->ctrl_c1, lw->ctrl_c2, lw->ctrl_cb, lw->w1t, lw->w2,
                     lw->b2, dims, &ws->ff);
    }
}

/* SPEC §3 SRU branch: Dense_o(SRU(Dense_i(LN'(x)))) into ws->sru_out. */
static void sru_branch(const struct model_config *c, const struct layer_weights *lw,
                       struct workspace *ws, const float *x, float *state)
{
    const struct kernels *k = ws->k;
    uint32_t d = c->d_model, n = c->sru_units;
    layernorm(ws->xn, x, lw->sru_ln_g, lw->sru_ln_b, d);
    k->dense(ws->sru_u, ws->xn, lw->sru_wi, lw->sru_bi, d, n);
    k->dense(ws->sru_gates, ws->sru_u, lw->sru_w, lw->sru_b, n, 3 * n);
    sru_step(ws->sru_h, state, ws->sru_u, ws->sru_gates, n);
    k->dense(ws->sru_out, ws->sru_h, lw->sru_wo, lw->sru_bo, n, d);
}

void forward_layers(const struct model *m, struct seq_state *s, struct workspace *ws, uint32_t pos,
                    float *x)
{
    const struct model_config *c = &m->cfg;
    uint32_t d = c->d_model;
    for (uint32_t l = s->layer_begin; l < s->layer_end; l++) {
        const struct layer_weights *lw = &m->w.layers[l];
        uint64_t li = l - s->layer_begin;
        float *kcache = s->k + li * s->capacity * d, *vcache = s->v + li * s->capacity * d;
        /* x += Attn(LN1(x)) */
        layernorm(ws->xn, x, lw->ln1_g, lw->ln1_b, d);
        attention_sublayer(c, lw, ws, kcache, vcache, s->conv_y + li * 2 * d, pos);
        for (uint32_t i = 0; i < d; i++)
            x[i] += ws->sub[i];
        /* x += FF(LN2(x)) [+ Dense_o(SRU(Dense_i(LN'(x))))] */
        if (c->sru_units) {
            sru_branch(c, lw, ws, x, s->sru_c + li * (s->sru_n + 1));
            layernorm(ws->xn, x, lw->ln2_g, lw->ln2_b, d);
            ff_sublayer(c, lw, ws);
            for (uint32_t i = 0; i < d; i++)
                x[i] += ws->sub[i] + ws->sru_out[i];
        } else {
            layernorm(ws->xn, x, lw->ln2_g, lw->ln2_b, d);
            ff_sublayer(c, lw, ws);
            for (uint32_t i = 0; i < d; i++)
                x[i] += ws->sub[i];
        }
    }
}

void forward_head(const struct model *m, struct workspace *ws, const float *x, float *logits)
{
    const struct model_config *c = &m->cfg;
    uint32_t d = c->d_model, V = c->vocab_size;
    layernorm(ws->xn, x, m->w.lnf_g, m->w.lnf_b, d);
    if (c->out == OUT_DENSE)
        ws->k->dense(logits, ws->xn, m->w.out_w, m->w.out_b, d, V);
    else
        ws->k->mult_dense(logits, ws->xn, m->w.out_g, m->w.out_p, m->w.out_c, d, c->out_modules,
                          V / c->out_modules, ws->scratch);
}
