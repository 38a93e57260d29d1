/*
 * attn_sparse_qkv: the Sparse QKV attention sub-layer (SPEC §2), S modules of M = d / S:
 *   y = mult_dense(x)                 SPEC §1 multiplicative layer with O = d
 *   q = conv3x3(y_{t-2}, y_{t-1}, y_t), k = conv3x3(same), v = conv3x1(same)
 *   out = causal softmax attention of q over the KV cache — no output projection
 * State per sequence and layer: the two previous rows of y (zero when a sequence starts),
 * then the KV cache, K (capacity, d) and V (capacity, d).
 *
 * Tensor parallelism (model/tp.h), T dividing S and H: rank t owns modules [t·S/T, (t+1)·S/T)
 * and heads [t·H/T, (t+1)·H/T) — the same d/T coordinates. It computes y for its modules
 * plus one neighbour module on each side (the 3x3 convolution's halo: recomputing two
 * modules of y costs less than a message), keeps their convolution history, computes q, k
 * and v of its modules, holds the KV cache of its heads only, (capacity, d/T), and attends
 * with its heads; one allgather of the d/T outputs gives every rank the merged heads. Every
 * number is computed exactly as on one rank (the kernels' per-output order does not depend
 * on how many modules a call covers), so the output is bitwise that of T = 1.
 */
#include <math.h>
#include <string.h>

#include "model/layer_kinds.h"

enum { MULT_G, MULT_P, MULT_C, CONV_Q_W, CONV_Q_B, CONV_K_W, CONV_K_B, CONV_V_W, CONV_V_B, N_T };

static int tensors(const struct model_config *c, struct tensor_desc *t)
{
    uint64_t d = c->d_model, S = c->qkv_modules, M = d / S;
    float s33 = (float)(1.0 / sqrt(9.0 * (double)M)), s31 = (float)(1.0 / sqrt(3.0 * (double)M));
    /* G scales x per module (element-wise); P and the convolution kernels serve all S
     * modules, so each weight read takes part in S multiply-adds */
    kind_tensor(&t[MULT_G], "attn.mult.g", INIT_NORMAL, 1.0f, 2, S, d)->uses = 0;
    kind_tensor(&t[MULT_P], "attn.mult.p", INIT_NORMAL, (float)(1.0 / sqrt((double)d)), 2, d, M)
        ->uses = (uint32_t)S;
    kind_tensor(&t[MULT_C], "attn.mult.c", INIT_NORMAL, KIND_BIAS_SCALE, 1, d);
    kind_tensor(&t[CONV_Q_W], "attn.conv_q.w", INIT_NORMAL, s33, 4, (uint64_t)3, (uint64_t)3, M, M)
        ->uses = (uint32_t)S;
    kind_tensor(&t[CONV_Q_B], "attn.conv_q.b", INIT_NORMAL, KIND_BIAS_SCALE, 1, M);
    kind_tensor(&t[CONV_K_W], "attn.conv_k.w", INIT_NORMAL, s33, 4, (uint64_t)3, (uint64_t)3, M, M)
        ->uses = (uint32_t)S;
    kind_tensor(&t[CONV_K_B], "attn.conv_k.b", INIT_NORMAL, KIND_BIAS_SCALE, 1, M);
    kind_tensor(&t[CONV_V_W], "attn.conv_v.w", INIT_NORMAL, s31, 4, (uint64_t)3, (uint64_t)1, M, M)
        ->uses = (uint32_t)S;
    kind_tensor(&t[CONV_V_B], "attn.conv_v.b", INIT_NORMAL, KIND_BIAS_SCALE, 1, M);
    /* tensor parallelism: a rank reads G and c of its modules and their two neighbours */
    t[MULT_G].tp_units = t[MULT_C].tp_units = (uint32_t)S;
    t[MULT_G].tp_halo = t[MULT_C].tp_halo = 1;
    /* q8: G as S rows of d; P and the kernels transposed, rows along the reduction axis */
    kind_q8(c, &t[MULT_G], false);
    kind_q8(c, &t[MULT_P], true);
    kind_q8(c, &t[CONV_Q_W], true);
    kind_q8(c, &t[CONV_K_W], true);
    kind_q8(c, &t[CONV_V_W], true);
    return N_T;
}

static enum stf_status validate(const struct model_config *c, struct stf_error *err)
{
    if (c->qkv_modules == 0 || c->d_model % c->qkv_modules != 0)
        return stf_fail(err, STF_ERR_FORMAT, "config: qkv_modules (%u) must divide d_model (%u)",
                        c->qkv_modules, c->d_model);
    return STF_OK;
}

struct scratch {
    float *q;             /* (d) query (T > 1: the rank's d/T) */
    float *y;             /* (d) multiplicative layer output, (S, M) module-major */
    float *scores;        /* (capacity) */
    float *work;          /* max(S·d, 9·d): mult_dense's and local_conv's own scratch */
    float *ext;           /* (d) T > 1: a convolution's output over the rank's modules and halo */
    float *att;           /* (d) T > 1: the rank's heads' output, d/T */
    struct q8_scratch qs; /* q8: S rows of max(d, 3·3·M) */
};

static uint64_t scratch_layout(const struct model_config *c, uint32_t capacity, void *base,
                               struct scratch *s)
{
    uint64_t d = c->d_model, S = c->qkv_modules;
    struct carve cv = {base, 0};
    s->q = carve_take(&cv, d * sizeof(float));
    s->y = carve_take(&cv, d * sizeof(float));
    s->scores = carve_take(&cv, (uint64_t)capacity * sizeof(float));
    s->work = carve_take(&cv, (S > 9 ? S : 9) * d * sizeof(float));
    s->ext = carve_take(&cv, d * sizeof(float));
    s->att = carve_take(&cv, d * sizeof(float));
    uint64_t K = 9 * (d / S);
    kind_q8_scratch(c, &cv, &s->qs, (uint32_t)S, (uint32_t)(K > d ? K : d));
    return cv.used;
}

struct state {
    float *conv_y; /* (2, d): y_{t-2}, y_{t-1} */
    float *k, *v;  /* (capacity, d) each */
};

/* T ranks: K and V hold the rank's d/T coordinates (its heads); conv_y stays (2, d), of which
 * the rank's modules and halo are used. */
static uint64_t state_layout(const struct model_config *c, uint32_t capacity, uint32_t tp,
                             void *base, struct state *s, uint64_t *reset_bytes)
{
    uint64_t d = c->d_model, w = d / (tp ? tp : 1);
    struct carve cv = {base, 0};
    s->conv_y = carve_take(&cv, 2 * d * sizeof(float));
    *reset_bytes = cv.used;
    s->k = carve_take(&cv, (uint64_t)capacity * w * sizeof(float));
    s->v = carve_take(&cv, (uint64_t)capacity * w * sizeof(float));
    return cv.used;
}

static struct sublayer_sizes sizes(const struct model_config *c, uint32_t capacity, uint32_t tp)
{
    struct scratch sc;
    struct state st;
    struct sublayer_sizes z;
    z.state_bytes = state_layout(c, capacity, tp, NULL, &st, &z.reset_bytes);
    z.scratch_bytes = scratch_layout(c, capacity, NULL, &sc);
    return z;
}

static uint32_t tp_units(const struct model_config *c)
{
    uint32_t a = c->qkv_modules, b = c->n_heads;
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a; /* T must divide both S and H */
}

/* T > 1: the rank's share (see the top of this file). */
static void forward_tp(const struct sublayer_step *s, const float *x, float *out)
{
    const struct kernels *k = s->k;
    const struct tensor_view *w = s->w;
    const uint32_t T = s->tp->size, t = s->tp->rank;
    const uint32_t d = s->cfg->d_model, H = s->cfg->n_heads, dh = d / H;
    const uint32_t S = s->cfg->qkv_modules, M = d / S, width = d / T;
    const uint32_t s0 = t * (S / T), s1 = s0 + S / T;                  /* own modules */
    const uint32_t lo = s0 > 0 ? s0 - 1 : 0, hi = s1 < S ? s1 + 1 : S; /* with the halo */
    const uint32_t Se = hi - lo, own = (s0 - lo) * M;                  /* own part of an ext row */
    struct scratch sc;
    struct state st;
    uint64_t reset;
    scratch_layout(s->cfg, s->capacity, s->scratch, &sc);
    state_layout(s->cfg, s->capacity, T, s->state, &st, &reset);
    float *kslot = st.k + (uint64_t)s->pos * width, *vslot = st.v + (uint64_t)s->pos * width;
    float *y = sc.y + (uint64_t)lo * M, *y1 = st.conv_y + (uint64_t)lo * M, *y2 = y1 + d;
    const float *rows[3] = {y1, y2, y}; /* y_{t-2}, y_{t-1}, y_t over lo..hi-1 */
    const float *cb[3] = {view_f32(&w[CONV_Q_B]), view_f32(&w[CONV_K_B]), view_f32(&w[CONV_V_B])};
    float *dst[3] = {sc.q, kslot, vslot};
    const uint32_t km[3] = {3, 3, 1};
    /* rows lo.. of G (S rows of d) and c (d elements): this rank may map only its rows */
    const void *g = view_row(&w[MULT_G], lo, stf_dtype_row_bytes(w[MULT_G].dtype, d));
    const float *cm = view_row(&w[MULT_C], (uint64_t)lo * M, sizeof(float));
    if (w[MULT_P].dtype == STF_DTYPE_Q8_0) { /* q8 weights: kernels_q8.h, G rows whole */
        const struct kernels_q8 *q8 = kernels_q8_for(k);
        /* y of modules lo..hi-1: rows lo.. of G and c */
        q8->mult_dense(y, x, g, w[MULT_G].dtype, w[MULT_P].data, cm, d, Se, M, &sc.qs);
        const void *cw[3] = {w[CONV_Q_W].data, w[CONV_K_W].data, w[CONV_V_W].data};
        for (int i = 0; i < 3; i++) {
            q8->local_conv(sc.ext, rows, cw[i], cb[i], Se, M, km[i], &sc.qs);
            memcpy(dst[i], sc.ext + own, width * sizeof(float));
        }
    } else {
        k->mult_dense(y, x, g, view_f32(&w[MULT_P]), cm, d, Se, M, sc.work);
        const float *cw[3] = {view_f32(&w[CONV_Q_W]), view_f32(&w[CONV_K_W]),
                              view_f32(&w[CONV_V_W])};
        for (int i = 0; i < 3; i++) {
            k->local_conv(sc.ext, rows, cw[i], cb[i], Se, M, km[i], sc.work);
            memcpy(dst[i], sc.ext + own, width * sizeof(float));
        }
    }
    memcpy(y1, y2, (size_t)Se * M * sizeof(float)); /* shift the time window */
    memcpy(y2, y, (size_t)Se * M * sizeof(float));
    /* heads t·H/T.. over the rank's cache, then every rank's heads in order */
    k->attention(sc.att, sc.q, st.k, st.v, s->pos + 1, width, H / T, dh, sc.scores);
    s->tp->allgather(s->tp->ctx, sc.att, width * sizeof(float), out);
}

/* q (d), k (d), v (d) of this token, on one rank (T = 1: LSH attention computes its
 * projections whole on every rank of a stage); shifts the convolution rows. */
static void project(const struct sublayer_step *s, const float *x, float *q, float *kk, float *v)
{
    const struct kernels *k = s->k;
    const struct tensor_view *w = s->w;
    uint32_t d = s->cfg->d_model;
    uint32_t S = s->cfg->qkv_modules, M = d / S;
    struct scratch sc;
    struct state st;
    uint64_t reset;
    scratch_layout(s->cfg, s->capacity, s->scratch, &sc);
    state_layout(s->cfg, s->capacity, 1, s->state, &st, &reset);
    /* y = mult(x); q, k = conv3x3(y history), v = conv3x1 */
    const float *rows[3] = {st.conv_y, st.conv_y + d, sc.y}; /* y_{t-2}, y_{t-1}, y_t */
    if (w[MULT_P].dtype == STF_DTYPE_Q8_0) {                 /* q8 weights: kernels_q8.h */
        const struct kernels_q8 *q8 = kernels_q8_for(k);
        q8->mult_dense(sc.y, x, w[MULT_G].data, w[MULT_G].dtype, w[MULT_P].data,
                       view_f32(&w[MULT_C]), d, S, M, &sc.qs);
        q8->local_conv(q, rows, w[CONV_Q_W].data, view_f32(&w[CONV_Q_B]), S, M, 3, &sc.qs);
        q8->local_conv(kk, rows, w[CONV_K_W].data, view_f32(&w[CONV_K_B]), S, M, 3, &sc.qs);
        q8->local_conv(v, rows, w[CONV_V_W].data, view_f32(&w[CONV_V_B]), S, M, 1, &sc.qs);
    } else {
        k->mult_dense(sc.y, x, view_f32(&w[MULT_G]), view_f32(&w[MULT_P]), view_f32(&w[MULT_C]), d,
                      S, M, sc.work);
        k->local_conv(q, rows, view_f32(&w[CONV_Q_W]), view_f32(&w[CONV_Q_B]), S, M, 3, sc.work);
        k->local_conv(kk, rows, view_f32(&w[CONV_K_W]), view_f32(&w[CONV_K_B]), S, M, 3, sc.work);
        k->local_conv(v, rows, view_f32(&w[CONV_V_W]), view_f32(&w[CONV_V_B]), S, M, 1, sc.work);
    }
    memcpy(st.conv_y, st.conv_y + d, d * sizeof(float)); /* shift the time window */
    memcpy(st.conv_y + d, sc.y, d * sizeof(float));
}

static void forward(const struct sublayer_step *s, const float *x, float *out)
{
    if (s->tp && s->tp->size > 1) {
        forward_tp(s, x, out);
        return;
    }
    uint32_t d = s->cfg->d_model, H = s->cfg->n_heads, dh = d / H;
    struct scratch sc;
    struct state st;
    uint64_t reset;
    scratch_layout(s->cfg, s->capacity, s->scratch, &sc);
    state_layout(s->cfg, s->capacity, 1, s->state, &st, &reset);
    float *kslot = st.k + (uint64_t)s->pos * d, *vslot = st.v + (uint64_t)s->pos * d;
    project(s, x, sc.q, kslot, vslot);
    s->k->attention(out, sc.q, st.k, st.v, s->pos + 1, d, H, dh, sc.scores);
}

/* No output projection: the merged heads are the sub-layer output. */
static void output(const struct sublayer_step *s, const float *o, float *out)
{
    memcpy(out, o, s->cfg->d_model * sizeof(float));
}

struct rows_scratch {
    float *q, *kn, *vn;      /* (rows, d) query, new key, new value */
    float *y;                /* (rows, d) multiplicative layer outputs */
    float *scores;           /* (capacity) */
    float *work;             /* f32: rows · max(S·d, 9·d) */
    const float *(*hist)[3]; /* (rows) each row's y_{t-2}, y_{t-1}, y_t */
    struct q8_scratch qs;    /* q8: panels of the rows·S scaled copies and im2col rows */
};

static uint64_t rows_layout(const struct model_config *c, uint32_t capacity, uint32_t rows,
                            void *base, struct rows_scratch *s)
{
    uint64_t d = c->d_model, S = c->qkv_modules, rd = rows * d * sizeof(float);
    struct carve cv = {base, 0};
    s->q = carve_take(&cv, rd);
    s->kn = carve_take(&cv, rd);
    s->vn = carve_take(&cv, rd);
    s->y = carve_take(&cv, rd);
    s->scores = carve_take(&cv, (uint64_t)capacity * sizeof(float));
    s->work = c->weights == WEIGHTS_Q8 ? NULL : carve_take(&cv, (S > 9 ? S : 9) * rd);
    s->hist = carve_take(&cv, rows * sizeof *s->hist);
    kind_q8_rows_scratch(c, &cv, &s->qs, (uint32_t)(rows * S), (uint32_t)d, (uint32_t)(rows * S),
                         (uint32_t)(9 * (d / S)));
    return cv.used;
}

static uint64_t rows_scratch_bytes(const struct model_config *c, uint32_t capacity, uint32_t rows)
{
    struct rows_scratch sc;
    return rows_layout(c, capacity, rows, NULL, &sc);
}

/* The multiplicative layer and the three convolutions of all rows at once (each weight read
 * once per batch); attention row by row over each row's own cache. */
static void forward_rows(const struct sublayer_rows *s, const float *x, float *out)
{
    const struct kernels *k = s->k;
    const struct tensor_view *w = s->w;
    uint32_t d = s->cfg->d_model, H = s->cfg->n_heads, dh = d / H, R = s->rows;
    uint32_t S = s->cfg->qkv_modules, M = d / S;
    struct rows_scratch sc;
    rows_layout(s->cfg, s->capacity, R, s->scratch, &sc);
    const struct kernels_q8 *q8 = w[MULT_P].dtype == STF_DTYPE_Q8_0 ? kernels_q8_for(k) : NULL;
    if (q8)
        q8->mult_dense_rows(sc.y, x, w[MULT_G].data, w[MULT_G].dtype, w[MULT_P].data,
                            view_f32(&w[MULT_C]), R, d, S, M, &sc.qs);
    else
        k->mult_dense_rows(sc.y, x, view_f32(&w[MULT_G]), view_f32(&w[MULT_P]),
                           view_f32(&w[MULT_C]), R, d, S, M, sc.work);
    for (uint32_t r = 0; r < R; r++) {
        struct state st;
        uint64_t reset;
        state_layout(s->cfg, s->capacity, 1, s->states[r], &st, &reset);
        sc.hist[r][0] = st.conv_y;
        sc.hist[r][1] = st.conv_y + d;
        sc.hist[r][2] = sc.y + (uint64_t)r * d;
    }
    const float *const(*hist)[3] = (const float *const(*)[3])sc.hist;
    if (q8) {
        q8->local_conv_rows(sc.q, hist, w[CONV_Q_W].data, view_f32(&w[CONV_Q_B]), R, S, M, 3,
                            &sc.qs);
        q8->local_conv_rows(sc.kn, hist, w[CONV_K_W].data, view_f32(&w[CONV_K_B]), R, S, M, 3,
                            &sc.qs);
        q8->local_conv_rows(sc.vn, hist, w[CONV_V_W].data, view_f32(&w[CONV_V_B]), R, S, M, 1,
                            &sc.qs);
    } else {
        k->local_conv_rows(sc.q, hist, view_f32(&w[CONV_Q_W]), view_f32(&w[CONV_Q_B]), R, S, M, 3,
                           sc.work);
        k->local_conv_rows(sc.kn, hist, view_f32(&w[CONV_K_W]), view_f32(&w[CONV_K_B]), R, S, M, 3,
                           sc.work);
        k->local_conv_rows(sc.vn, hist, view_f32(&w[CONV_V_W]), view_f32(&w[CONV_V_B]), R, S, M, 1,
                           sc.work);
    }
    for (uint32_t r = 0; r < R; r++) {
        struct state st;
        uint64_t reset, p = s->pos[r], o = (uint64_t)r * d;
        state_layout(s->cfg, s->capacity, 1, s->states[r], &st, &reset);
        memcpy(st.k + p * d, sc.kn + o, d * sizeof(float));
        memcpy(st.v + p * d, sc.vn + o, d * sizeof(float));
        memcpy(st.conv_y, st.conv_y + d, d * sizeof(float)); /* shift the time window */
        memcpy(st.conv_y + d, sc.y + o, d * sizeof(float));
        k->attention(out + o, sc.q + o, st.k, st.v, s->pos[r] + 1, d, H, dh, sc.scores);
    }
}

const struct sublayer_kind attn_sparse_qkv = {
    .name = "sparse_qkv",
    .tensors = tensors,
    .validate = validate,
    .sizes = sizes,
    .tp_units = tp_units,
    .forward = forward,
    .forward_rows = forward_rows,
    .rows_scratch_bytes = rows_scratch_bytes,
    .project = project,
    .output = output,
};
