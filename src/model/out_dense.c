/*
 * out_dense: the baseline output layer (SPEC §3): logits = x·W + b, W (d, V), b (V).
 */
#include <math.h>

#include "model/layer_kinds.h"

enum { W, B, N_TENSORS };

static int tensors(const struct model_config *c, struct tensor_desc *t)
{
    uint64_t d = c->d_model, V = c->vocab_size;
    kind_tensor(&t[W], "out.w", INIT_NORMAL, (float)(1.0 / sqrt((double)d)), 2, d, V);
    kind_tensor(&t[B], "out.b", INIT_NORMAL, KIND_BIAS_SCALE, 1, V);
    kind_q8(c, &t[W], true);
    return N_TENSORS;
}

static struct sublayer_sizes sizes(const struct model_config *c, uint32_t capacity, uint32_t tp)
{
    (void)capacity, (void)tp; /* computed whole on every rank of a stage */
    struct carve cv = {NULL, 0};
    struct q8_scratch qs;
    kind_q8_scratch(c, &cv, &qs, 1, c->d_model);
    return (struct sublayer_sizes){.scratch_bytes = cv.used};
}

static void forward(const struct sublayer_step *s, const float *x, float *logits)
{
    struct carve cv = {s->scratch, 0};
    struct q8_scratch qs;
    kind_q8_scratch(s->cfg, &cv, &qs, 1, s->cfg->d_model);
    kind_dense(s, logits, x, &s->w[W], &s->w[B], s->cfg->d_model, s->cfg->vocab_size, &qs);
}

static uint64_t rows_scratch_bytes(const struct model_config *c, uint32_t capacity, uint32_t rows)
{
    (void)capacity;
    struct carve cv = {NULL, 0};
    struct q8_scratch qs;
    kind_q8_rows_scratch(c, &cv, &qs, rows, c->d_model, 0, 0);
    return cv.used;
}

static void forward_rows(const struct sublayer_rows *s, const float *x, float *logits)
{
    struct carve cv = {s->scratch, 0};
    struct q8_scratch qs;
    kind_q8_rows_scratch(s->cfg, &cv, &qs, s->rows, s->cfg->d_model, 0, 0);
    kind_dense_rows(s, logits, x, &s->w[W], &s->w[B], s->cfg->d_model, s->cfg->vocab_size, &qs);
}

const struct sublayer_kind out_dense = {
    .name = "dense",
    .tensors = tensors,
    .validate = NULL,
    .sizes = sizes,
    .forward = forward,
    .forward_rows = forward_rows,
    .rows_scratch_bytes = rows_scratch_bytes,
};
