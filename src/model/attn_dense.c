/*
 * attn_dense: the baseline attention sub-layer (SPEC §2 "Dense"):
 *   q, k, v = x·Wq + bq, x·Wk + bk, x·Wv + bv   split into H heads of dh (head-major)
 *   o = causal softmax attention of q over the sequence's KV cache, scale 1/sqrt(dh)
 *   out = o·Wo + bo
 * State per sequence and layer: the KV cache, K (capacity, d) then V (capacity, d).
 */
#include <math.h>
#include <string.h>

#include "model/layer_kinds.h"

enum { WQ, BQ, WK, BK, WV, BV, WO, BO, N_TENSORS };

static int tensors(const struct model_config *c, struct tensor_desc *t)
{
    uint64_t d = c->d_model;
    float s = (float)(1.0 / sqrt((double)d));
    kind_q8(c, kind_tensor(&t[WQ], "attn.wq", INIT_NORMAL, s, 2, d, d), true);
    kind_tensor(&t[BQ], "attn.bq", INIT_NORMAL, KIND_BIAS_SCALE, 1, d);
    kind_q8(c, kind_tensor(&t[WK], "attn.wk", INIT_NORMAL, s, 2, d, d), true);
    kind_tensor(&t[BK], "attn.bk", INIT_NORMAL, KIND_BIAS_SCALE, 1, d);
    kind_q8(c, kind_tensor(&t[WV], "attn.wv", INIT_NORMAL, s, 2, d, d), true);
    kind_tensor(&t[BV], "attn.bv", INIT_NORMAL, KIND_BIAS_SCALE, 1, d);
    kind_q8(c, kind_tensor(&t[WO], "attn.wo", INIT_NORMAL, s, 2, d, d), true);
    kind_tensor(&t[BO], "attn.bo", INIT_NORMAL, KIND_BIAS_SCALE, 1, d);
    return N_TENSORS;
}

struct scratch {
    float *q;      /* (d) query */
    float *att;    /* (d) merged heads */
    float *scores; /* (capacity) */
    struct q8_scratch qs;
};

static uint64_t scratch_layout(const struct model_config *c, uint32_t capacity, void *base,
                               struct scratch *s)
{
    struct carve cv = {base, 0};
    s->q = carve_take(&cv, c->d_model * sizeof(float));
    s->att = carve_take(&cv, c->d_model * sizeof(float));
    s->scores = carve_take(&cv, (uint64_t)capacity * sizeof(float));
    kind_q8_scratch(c, &cv, &s->qs, 1, c->d_model);
    return cv.used;
}

struct state {
    float *k, *v; /* (capacity, d) each */
};

static uint64_t state_layout(const struct model_config *c, uint32_t capacity, void *base,
                             struct state *s)
{
    struct carve cv = {base, 0};
    s->k = carve_take(&cv, (uint64_t)capacity * c->d_model * sizeof(float));
    s->v = carve_take(&cv, (uint64_t)capacity * c->d_model * sizeof(float));
    return cv.used;
}

static struct sublayer_sizes sizes(const struct model_config *c, uint32_t capacity, uint32_t tp)
{
    (void)tp; /* computed whole on every rank of a stage */
    struct scratch sc;
    struct state st;
    return (struct sublayer_sizes){.state_bytes = state_layout(c, capacity, NULL, &st),
                                   .reset_bytes = 0,
                                   .scratch_bytes = scratch_layout(c, capacity, NULL, &sc)};
}

static void forward(const struct sublayer_step *s, const float *x, float *out)
{
    const struct kernels *k = s->k;
    const struct tensor_view *w = s->w;
    uint32_t d = s->cfg->d_model, H = s->cfg->n_heads, dh = d / H;
    struct scratch sc;
    struct state st;
    scratch_layout(s->cfg, s->capacity, s->scratch, &sc);
    state_layout(s->cfg, s->capacity, s->state, &st);
    float *kslot = st.k + (uint64_t)s->pos * d, *vslot = st.v + (uint64_t)s->pos * d;
    kind_dense(s, sc.q, x, &w[WQ], &w[BQ], d, d, &sc.qs);
    kind_dense(s, kslot, x, &w[WK], &w[BK], d, d, &sc.qs);
    kind_dense(s, vslot, x, &w[WV], &w[BV], d, d, &sc.qs);
    k->attention(sc.att, sc.q, st.k, st.v, s->pos + 1, d, H, dh, sc.scores);
    kind_dense(s, out, sc.att, &w[WO], &w[BO], d, d, &sc.qs);
}

struct rows_scratch {
    float *q, *kn, *vn;   /* (rows, d) query, new key, new value */
    float *att;           /* (rows, d) merged heads */
    float *scores;        /* (capacity) */
    struct q8_scratch qs; /* q8: the rows of d */
};

static uint64_t rows_layout(const struct model_config *c, uint32_t capacity, uint32_t rows,
                            void *base, struct rows_scratch *s)
{
    uint64_t rd = (uint64_t)rows * c->d_model * sizeof(float);
    struct carve cv = {base, 0};
    s->q = carve_take(&cv, rd);
    s->kn = carve_take(&cv, rd);
    s->vn = carve_take(&cv, rd);
    s->att = carve_take(&cv, rd);
    s->scores = carve_take(&cv, (uint64_t)capacity * sizeof(float));
    kind_q8_rows_scratch(c, &cv, &s->qs, rows, c->d_model, 0, 0);
    return cv.used;
}

static uint64_t rows_scratch_bytes(const struct model_config *c, uint32_t capacity, uint32_t rows)
{
    struct rows_scratch sc;
    return rows_layout(c, capacity, rows, NULL, &sc);
}

/* The projections of all rows at once; attention row by row over each row's own cache. */
static void forward_rows(const struct sublayer_rows *s, const float *x, float *out)
{
    const struct kernels *k = s->k;
    const struct tensor_view *w = s->w;
    uint32_t d = s->cfg->d_model, H = s->cfg->n_heads, dh = d / H, R = s->rows;
    struct rows_scratch sc;
    rows_layout(s->cfg, s->capacity, R, s->scratch, &sc);
    kind_dense_rows(s, sc.q, x, &w[WQ], &w[BQ], d, d, &sc.qs);
    kind_dense_rows(s, sc.kn, x, &w[WK], &w[BK], d, d, &sc.qs);
    kind_dense_rows(s, sc.vn, x, &w[WV], &w[BV], d, d, &sc.qs);
    for (uint32_t r = 0; r < R; r++) {
        struct state st;
        state_layout(s->cfg, s->capacity, s->states[r], &st);
        uint64_t p = s->pos[r], o = (uint64_t)r * d;
        memcpy(st.k + p * d, sc.kn + o, d * sizeof(float));
        memcpy(st.v + p * d, sc.vn + o, d * sizeof(float));
        k->attention(sc.att + o, sc.q + o, st.k, st.v, s->pos[r] + 1, d, H, dh, sc.scores);
    }
    kind_dense_rows(s, out, sc.att, &w[WO], &w[BO], d, d, &sc.qs);
}

/* For LSH attention over these weights (attn_lsh.c): its scratch starts with this kind's. */
static void project(const struct sublayer_step *s, const float *x, float *q, float *kk, float *v)
{
    const struct tensor_view *w = s->w;
    uint32_t d = s->cfg->d_model;
    struct scratch sc;
    scratch_layout(s->cfg, s->capacity, s->scratch, &sc);
    kind_dense(s, q, x, &w[WQ], &w[BQ], d, d, &sc.qs);
    kind_dense(s, kk, x, &w[WK], &w[BK], d, d, &sc.qs);
    kind_dense(s, v, x, &w[WV], &w[BV], d, d, &sc.qs);
}

static void output(const struct sublayer_step *s, const float *o, float *out)
{
    uint32_t d = s->cfg->d_model;
    struct scratch sc;
    scratch_layout(s->cfg, s->capacity, s->scratch, &sc);
    kind_dense(s, out, o, &s->w[WO], &s->w[BO], d, d, &sc.qs);
}

const struct sublayer_kind attn_dense = {
    .name = "dense",
    .tensors = tensors,
    .validate = NULL,
    .sizes = sizes,
    .forward = forward,
    .forward_rows = forward_rows,
    .rows_scratch_bytes = rows_scratch_bytes,
    .project = project,
    .output = output,
};
