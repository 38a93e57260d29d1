/*
 * ff_dense: the baseline FF sub-layer (SPEC §1 "Dense FF"):
 *   out = ReLU(x·W1 + b1)·W2 + b2      W1 (d, F), W2 (F, d)
 * No per-sequence state.
 */
#include <math.h>

#include "model/layer_kinds.h"

enum { W1, B1, W2, B2, N_TENSORS };

static int tensors(const struct model_config *c, struct tensor_desc *t)
{
    uint64_t d = c->d_model, F = c->d_ff;
    kind_tensor(&t[W1], "ff.w1", INIT_NORMAL, (float)(1.0 / sqrt((double)d)), 2, d, F);
    kind_tensor(&t[B1], "ff.b1", INIT_NORMAL, KIND_BIAS_SCALE, 1, F);
    kind_tensor(&t[W2], "ff.w2", INIT_NORMAL, (float)(1.0 / sqrt((double)F)), 2, F, d);
    kind_tensor(&t[B2], "ff.b2", INIT_NORMAL, KIND_BIAS_SCALE, 1, d);
    kind_q8(c, &t[W1], true); /* q8: (F, d) and (d, F), rows along the reduction axis */
    kind_q8(c, &t[W2], true);
    return N_TENSORS;
}

static struct sublayer_sizes sizes(const struct model_config *c, uint32_t capacity, uint32_t tp)
{
    (void)tp; /* computed whole on every rank of a stage */
    (void)capacity;
    struct carve cv = {NULL, 0};
    struct q8_scratch qs;
    carve_take(&cv, c->d_ff * sizeof(float)); /* the hidden layer (F) */
    kind_q8_scratch(c, &cv, &qs, 1, c->d_ff > c->d_model ? c->d_ff : c->d_model);
    return (struct sublayer_sizes){.scratch_bytes = cv.used};
}

static void forward(const struct sublayer_step *s, const float *x, float *out)
{
    const struct tensor_view *w = s->w;
    uint32_t d = s->cfg->d_model, F = s->cfg->d_ff;
    struct carve cv = {s->scratch, 0};
    struct q8_scratch qs;
    float *hidden = carve_take(&cv, F * sizeof(float)); /* (F) */
    kind_q8_scratch(s->cfg, &cv, &qs, 1, F > d ? F : d);
    kind_dense(s, hidden, x, &w[W1], &w[B1], d, F, &qs);
    for (uint32_t i = 0; i < F; i++)
        hidden[i] = hidden[i] > 0.0f ? hidden[i] : 0.0f;
    kind_dense(s, out, hidden, &w[W2], &w[B2], F, d, &qs);
}

static uint64_t rows_scratch_bytes(const struct model_config *c, uint32_t capacity, uint32_t rows)
{
    (void)capacity;
    struct carve cv = {NULL, 0};
    struct q8_scratch qs;
    carve_take(&cv, (uint64_t)rows * c->d_ff * sizeof(float)); /* the hidden layer (rows, F) */
    kind_q8_rows_scratch(c, &cv, &qs, rows, c->d_model, rows, c->d_ff);
    return cv.used;
}

static void forward_rows(const struct sublayer_rows *s, const float *x, float *out)
{
    const struct tensor_view *w = s->w;
    uint32_t d = s->cfg->d_model, F = s->cfg->d_ff, R = s->rows;
    struct carve cv = {s->scratch, 0};
    struct q8_scratch qs;
    float *hidden = carve_take(&cv, (uint64_t)R * F * sizeof(float)); /* (R, F) */
    kind_q8_rows_scratch(s->cfg, &cv, &qs, R, d, R, F);
    kind_dense_rows(s, hidden, x, &w[W1], &w[B1], d, F, &qs);
    for (uint64_t i = 0; i < (uint64_t)R * F; i++)
        hidden[i] = hidden[i] > 0.0f ? hidden[i] : 0.0f;
    kind_dense_rows(s, out, hidden, &w[W2], &w[B2], F, d, &qs);
}

const struct sublayer_kind ff_dense = {
    .name = "dense",
    .tensors = tensors,
    .validate = NULL,
    .sizes = sizes,
    .forward = forward,
    .forward_rows = forward_rows,
    .rows_scratch_bytes = rows_scratch_bytes,
};
