/*
 * sru: the optional SRU branch beside the FF (SPEC §3), n = sru_units:
 *   u = Dense_i(LN'(x)) (n);  [r~, f~, y~] = u·W + b (3n);  r = σ(r~), f = σ(f~)
 *   c_t = f ⊙ c_{t-1} + (1 − f) ⊙ y~;  h = r ⊙ c_t + (1 − r) ⊙ u · sqrt(3)
 *   out = Dense_o(h) (d)
 * State per sequence and layer: c (n), zero when a sequence starts.
 */
#include <math.h>

#include "model/layer_kinds.h"

enum { LN_G, LN_B, WI, BI, W, B, WO, BO, N_TENSORS };

static int tensors(const struct model_config *c, struct tensor_desc *t)
{
    uint64_t d = c->d_model, n = c->sru_units;
    kind_tensor(&t[LN_G], "sru.ln.g", INIT_GAIN, KIND_NORM_SCALE, 1, d);
    kind_tensor(&t[LN_B], "sru.ln.b", INIT_NORMAL, KIND_NORM_SCALE, 1, d);
    kind_tensor(&t[WI], "sru.wi", INIT_NORMAL, (float)(1.0 / sqrt((double)d)), 2, d, n);
    kind_tensor(&t[BI], "sru.bi", INIT_NORMAL, KIND_BIAS_SCALE, 1, n);
    kind_tensor(&t[W], "sru.w", INIT_NORMAL, (float)(1.0 / sqrt((double)n)), 2, n, 3 * n);
    kind_tensor(&t[B], "sru.b", INIT_NORMAL, KIND_BIAS_SCALE, 1, 3 * n);
    kind_tensor(&t[WO], "sru.wo", INIT_NORMAL, (float)(1.0 / sqrt((double)n)), 2, n, d);
    kind_tensor(&t[BO], "sru.bo", INIT_NORMAL, KIND_BIAS_SCALE, 1, d);
    kind_q8(c, &t[WI], true);
    kind_q8(c, &t[W], true);
    kind_q8(c, &t[WO], true);
    return N_TENSORS;
}

struct scratch {
    float *xn;    /* (d) LN'(x) */
    float *u;     /* (n) */
    float *gates; /* (3n) */
    float *h;     /* (n) */
    struct q8_scratch qs;
};

static uint64_t scratch_layout(const struct model_config *c, void *base, struct scratch *s)
{
    uint64_t n = c->sru_units;
    struct carve cv = {base, 0};
    s->xn = carve_take(&cv, c->d_model * sizeof(float));
    s->u = carve_take(&cv, n * sizeof(float));
    s->gates = carve_take(&cv, 3 * n * sizeof(float));
    s->h = carve_take(&cv, n * sizeof(float));
    uint32_t wide = 3 * c->sru_units > c->d_model ? 3 * c->sru_units : c->d_model;
    kind_q8_scratch(c, &cv, &s->qs, 1, wide);
    return cv.used;
}

static struct sublayer_sizes sizes(const struct model_config *c, uint32_t capacity, uint32_t tp)
{
    (void)tp; /* computed whole on every rank of a stage */
    (void)capacity;
    struct scratch sc;
    struct carve state = {NULL, 0};
    carve_take(&state, c->sru_units * sizeof(float)); /* c */
    return (struct sublayer_sizes){.state_bytes = state.used,
                                   .reset_bytes = state.used,
                                   .scratch_bytes = scratch_layout(c, NULL, &sc)};
}

static void forward(const struct sublayer_step *s, const float *x, float *out)
{
    const struct tensor_view *w = s->w;
    uint32_t d = s->cfg->d_model, n = s->cfg->sru_units;
    struct scratch sc;
    scratch_layout(s->cfg, s->scratch, &sc);
    layernorm(sc.xn, x, view_f32(&w[LN_G]), view_f32(&w[LN_B]), d);
    kind_dense(s, sc.u, sc.xn, &w[WI], &w[BI], d, n, &sc.qs);
    kind_dense(s, sc.gates, sc.u, &w[W], &w[B], n, 3 * n, &sc.qs);
    sru_step(sc.h, s->state, sc.u, sc.gates, n);
    kind_dense(s, out, sc.h, &w[WO], &w[BO], n, d, &sc.qs);
}

static uint64_t rows_layout(const struct model_config *c, uint32_t rows, void *base,
                            struct scratch *s)
{
    uint64_t n = c->sru_units, R = rows;
    struct carve cv = {base, 0};
    s->xn = carve_take(&cv, R * c->d_model * sizeof(float));
    s->u = carve_take(&cv, R * n * sizeof(float));
    s->gates = carve_take(&cv, R * 3 * n * sizeof(float));
    s->h = carve_take(&cv, R * n * sizeof(float));
    kind_q8_rows_scratch(c, &cv, &s->qs, rows, (uint32_t)(n > c->d_model ? n : c->d_model), 0, 0);
    return cv.used;
}

static uint64_t rows_scratch_bytes(const struct model_config *c, uint32_t capacity, uint32_t rows)
{
    (void)capacity;
    struct scratch sc;
    return rows_layout(c, rows, NULL, &sc);
}

static void forward_rows(const struct sublayer_rows *s, const float *x, float *out)
{
    const struct tensor_view *w = s->w;
    uint32_t d = s->cfg->d_model, n = s->cfg->sru_units, R = s->rows;
    struct scratch sc;
    rows_layout(s->cfg, R, s->scratch, &sc);
    for (uint32_t r = 0; r < R; r++)
        layernorm(sc.xn + (uint64_t)r * d, x + (uint64_t)r * d, view_f32(&w[LN_G]),
                  view_f32(&w[LN_B]), d);
    kind_dense_rows(s, sc.u, sc.xn, &w[WI], &w[BI], d, n, &sc.qs);
    kind_dense_rows(s, sc.gates, sc.u, &w[W], &w[B], n, 3 * n, &sc.qs);
    for (uint32_t r = 0; r < R; r++) /* each row's own carry c */
        sru_step(sc.h + (uint64_t)r * n, s->states[r], sc.u + (uint64_t)r * n,
                 sc.gates + (uint64_t)r * 3 * n, n);
    kind_dense_rows(s, out, sc.h, &w[WO], &w[BO], n, d, &sc.qs);
}

const struct sublayer_kind sru_branch = {
    .name = "sru",
    .tensors = tensors,
    .validate = NULL,
    .sizes = sizes,
    .forward = forward,
    .forward_rows = forward_rows,
    .rows_scratch_bytes = rows_scratch_bytes,
};
