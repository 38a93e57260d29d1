/*
 * out_mult: the multiplicative output layer (SPEC §1 multiplicative dense, §3 "sparse
 * loss"), S_out modules of M = V / S_out:
 *   logits[s·M + m] = Σ_i x[i] · G[s,i] · P[i,m] + c[s·M + m]    G (S_out, d), P (d, M), c (V)
 */
#include <math.h>

#include "model/layer_kinds.h"

enum { G, P, C, N_TENSORS };

static int tensors(const struct model_config *c, struct tensor_desc *t)
{
    uint64_t d = c->d_model, V = c->vocab_size, S = c->out_modules;
    kind_tensor(&t[G], "out.g", INIT_NORMAL, 1.0f, 2, S, d)->uses = 0; /* element-wise */
    kind_tensor(&t[P], "out.p", INIT_NORMAL, (float)(1.0 / sqrt((double)d)), 2, d, V / S)->uses =
        (uint32_t)S; /* shared by the S modules */
    kind_tensor(&t[C], "out.c", INIT_NORMAL, KIND_BIAS_SCALE, 1, V);
    kind_q8(c, &t[G], false);
    kind_q8(c, &t[P], true);
    return N_TENSORS;
}

static enum stf_status validate(const struct model_config *c, struct stf_error *err)
{
    if (c->out_modules == 0 || c->vocab_size % c->out_modules != 0)
        return stf_fail(err, STF_ERR_FORMAT, "config: out_modules (%u) must divide vocab_size (%u)",
                        c->out_modules, c->vocab_size);
    return STF_OK;
}

static struct sublayer_sizes sizes(const struct model_config *c, uint32_t capacity, uint32_t tp)
{
    (void)tp; /* computed whole on every rank of a stage */
    (void)capacity;
    struct carve cv = {NULL, 0};
    struct q8_scratch qs;
    carve_take(&cv, (uint64_t)c->out_modules * c->d_model * sizeof(float)); /* mult_dense's */
    kind_q8_scratch(c, &cv, &qs, c->out_modules, c->d_model);
    return (struct sublayer_sizes){.scratch_bytes = cv.used};
}

static void forward(const struct sublayer_step *s, const float *x, float *logits)
{
    const struct model_config *c = s->cfg;
    const struct tensor_view *w = s->w;
    uint32_t S = c->out_modules, M = c->vocab_size / S;
    if (w[P].dtype == STF_DTYPE_Q8_0) { /* q8 weights: kernels_q8.h */
        struct carve cv = {s->scratch, 0};
        struct q8_scratch qs;
        carve_take(&cv, (uint64_t)S * c->d_model * sizeof(float));
        kind_q8_scratch(c, &cv, &qs, S, c->d_model);
        kernels_q8_for(s->k)->mult_dense(logits, x, w[G].data, w[G].dtype, w[P].data,
                                         view_f32(&w[C]), c->d_model, S, M, &qs);
        return;
    }
    s->k->mult_dense(logits, x, view_f32(&w[G]), view_f32(&w[P]), view_f32(&w[C]), c->d_model, S, M,
                     s->scratch);
}

static uint64_t rows_scratch_bytes(const struct model_config *c, uint32_t capacity, uint32_t rows)
{
    (void)capacity;
    struct carve cv = {NULL, 0};
    struct q8_scratch qs;
    if (c->weights == WEIGHTS_Q8) /* the q8 kernel's panel of the rows·S_out scaled copies */
        kind_q8_rows_scratch(c, &cv, &qs, rows * c->out_modules, c->d_model, 0, 0);
    else /* mult_dense_rows's (rows·S_out, d) */
        carve_take(&cv, (uint64_t)rows * c->out_modules * c->d_model * sizeof(float));
    return cv.used;
}

static void forward_rows(const struct sublayer_rows *s, const float *x, float *logits)
{
    const struct model_config *c = s->cfg;
    const struct tensor_view *w = s->w;
    uint32_t S = c->out_modules, M = c->vocab_size / S;
    if (w[P].dtype == STF_DTYPE_Q8_0) { /* q8 weights: kernels_q8.h */
        struct carve cv = {s->scratch, 0};
        struct q8_scratch qs;
        kind_q8_rows_scratch(c, &cv, &qs, s->rows * S, c->d_model, 0, 0);
        kernels_q8_for(s->k)->mult_dense_rows(logits, x, w[G].data, w[G].dtype, w[P].data,
                                              view_f32(&w[C]), s->rows, c->d_model, S, M, &qs);
        return;
    }
    s->k->mult_dense_rows(logits, x, view_f32(&w[G]), view_f32(&w[P]), view_f32(&w[C]), s->rows,
                          c->d_model, S, M, s->scratch);
}

const struct sublayer_kind out_mult = {
    .name = "multiplicative",
    .tensors = tensors,
    .validate = validate,
    .sizes = sizes,
    .forward = forward,
    .forward_rows = forward_rows,
    .rows_scratch_bytes = rows_scratch_bytes,
};
