/*
 * ff_sparse: the Sparse FF sub-layer (SPEC §1), B = F / N blocks of N units, rank r:
 *   u = x·C1;  l = u·C2 + cb;  j_b = argmax_n l[b·N + n]  (first maximum)
 *   out = Σ_b ReLU(x · W1[:, b·N + j_b]) · W2[b·N + j_b, :] + b2
 * W1 is stored transposed, (F, d), so a token reads B rows of it and B rows of W2.
 * No per-sequence state.
 */
#include <math.h>

#include "model/layer_kinds.h"

enum { CTRL_C1, CTRL_C2, CTRL_CB, W1T, W2, B2, N_TENSORS };

static int tensors(const struct model_config *c, struct tensor_desc *t)
{
    uint64_t d = c->d_model, F = c->d_ff, r = c->ff_rank, B = F / c->ff_block;
    kind_tensor(&t[CTRL_C1], "ff.ctrl.c1", INIT_NORMAL, (float)(1.0 / sqrt((double)d)), 2, d, r);
    kind_tensor(&t[CTRL_C2], "ff.ctrl.c2", INIT_NORMAL, (float)(1.0 / sqrt((double)r)), 2, r, F);
    kind_tensor(&t[CTRL_CB], "ff.ctrl.cb", INIT_NORMAL, KIND_BIAS_SCALE, 1, F);
    /* one chosen unit per block: B of the F rows are read */
    kind_tensor(&t[W1T], "ff.w1t", INIT_NORMAL, (float)(1.0 / sqrt((double)d)), 2, F, d)
        ->rows_read = B;
    kind_tensor(&t[W2], "ff.w2", INIT_NORMAL, (float)(1.0 / sqrt((double)B)), 2, F, d)->rows_read =
        B;
    kind_tensor(&t[B2], "ff.b2", INIT_NORMAL, KIND_BIAS_SCALE, 1, d);
    /* q8: the gathered rows as they are; the controller stays f32 (it picks the units) */
    kind_q8(c, &t[W1T], false);
    kind_q8(c, &t[W2], false);
    return N_TENSORS;
}

static enum stf_status validate(const struct model_config *c, struct stf_error *err)
{
    if (c->ff_block == 0 || c->d_ff % c->ff_block != 0)
        return stf_fail(err, STF_ERR_FORMAT, "config: ff_block (%u) must divide d_ff (%u)",
                        c->ff_block, c->d_ff);
    if (c->ff_rank == 0)
        return stf_fail(err, STF_ERR_FORMAT, "config: sparse FF needs ff_rank > 0");
    return STF_OK;
}

static uint64_t scratch_layout(const struct model_config *c, void *base,
                               struct sparse_ff_scratch *s, struct q8_scratch *qs)
{
    uint64_t F = c->d_ff;
    struct carve cv = {base, 0};
    s->chosen = carve_take(&cv, F * sizeof(uint32_t)); /* first: ff_sparse_chosen reads it */
    s->u = carve_take(&cv, c->ff_rank * sizeof(float));
    s->logits = carve_take(&cv, F * sizeof(float));
    s->h = carve_take(&cv, F * sizeof(float));
    kind_q8_scratch(c, &cv, qs, 1, c->d_model);
    return cv.used;
}

static struct sublayer_sizes sizes(const struct model_config *c, uint32_t capacity)
{
    (void)capacity;
    struct sparse_ff_scratch sc;
    struct q8_scratch qs;
    return (struct sublayer_sizes){.scratch_bytes = scratch_layout(c, NULL, &sc, &qs)};
}

static void forward(const struct sublayer_step *s, const float *x, float *out)
{
    const struct model_config *c = s->cfg;
    const struct tensor_view *w = s->w;
    struct sparse_ff_scratch sc;
    struct q8_scratch qs;
    scratch_layout(c, s->scratch, &sc, &qs);
    struct sparse_ff_dims dims = {c->d_model, c->d_ff, c->ff_block, c->ff_rank};
    if (w[W1T].dtype == STF_DTYPE_Q8_0) /* q8 rows, f32 controller: kernels_q8.h */
        kernels_q8_for(s->k)->sparse_ff(out, x, view_f32(&w[CTRL_C1]), view_f32(&w[CTRL_C2]),
                                        view_f32(&w[CTRL_CB]), w[W1T].data, w[W2].data,
                                        view_f32(&w[B2]), dims, &sc, &qs);
    else
        s->k->sparse_ff(out, x, view_f32(&w[CTRL_C1]), view_f32(&w[CTRL_C2]), view_f32(&w[CTRL_CB]),
                        view_f32(&w[W1T]), view_f32(&w[W2]), view_f32(&w[B2]), dims, &sc);
}

/* The batch's scratch: each field rows times the single row's, row-major. */
static uint64_t rows_layout(const struct model_config *c, uint32_t rows, void *base,
                            struct sparse_ff_scratch *s, struct q8_scratch *qs)
{
    uint64_t F = c->d_ff, B = F / c->ff_block, R = rows;
    struct carve cv = {base, 0};
    s->chosen = carve_take(&cv, R * B * sizeof(uint32_t));
    s->u = carve_take(&cv, R * c->ff_rank * sizeof(float));
    s->logits = carve_take(&cv, R * F * sizeof(float));
    s->h = carve_take(&cv, R * B * sizeof(float));
    kind_q8_rows_scratch(c, &cv, qs, rows, c->d_model, 0, 0);
    return cv.used;
}

static uint64_t rows_scratch_bytes(const struct model_config *c, uint32_t capacity, uint32_t rows)
{
    (void)capacity;
    struct sparse_ff_scratch sc;
    struct q8_scratch qs;
    return rows_layout(c, rows, NULL, &sc, &qs);
}

static void forward_rows(const struct sublayer_rows *s, const float *x, float *out)
{
    const struct model_config *c = s->cfg;
    const struct tensor_view *w = s->w;
    struct sparse_ff_scratch sc;
    struct q8_scratch qs;
    rows_layout(c, s->rows, s->scratch, &sc, &qs);
    struct sparse_ff_dims dims = {c->d_model, c->d_ff, c->ff_block, c->ff_rank};
    if (w[W1T].dtype == STF_DTYPE_Q8_0) /* q8 rows, f32 controller: kernels_q8.h */
        kernels_q8_for(s->k)->sparse_ff_rows(out, x, view_f32(&w[CTRL_C1]), view_f32(&w[CTRL_C2]),
                                             view_f32(&w[CTRL_CB]), w[W1T].data, w[W2].data,
                                             view_f32(&w[B2]), s->rows, dims, &sc, &qs);
    else
        s->k->sparse_ff_rows(out, x, view_f32(&w[CTRL_C1]), view_f32(&w[CTRL_C2]),
                             view_f32(&w[CTRL_CB]), view_f32(&w[W1T]), view_f32(&w[W2]),
                             view_f32(&w[B2]), s->rows, dims, &sc);
}

const uint32_t *ff_sparse_chosen(const struct model_config *c, const void *scratch)
{
    struct sparse_ff_scratch sc;
    struct q8_scratch qs;
    scratch_layout(c, (void *)scratch, &sc, &qs);
    return sc.chosen;
}

const struct sublayer_kind ff_sparse = {
    .name = "sparse",
    .tensors = tensors,
    .validate = validate,
    .sizes = sizes,
    .forward = forward,
    .forward_rows = forward_rows,
    .rows_scratch_bytes = rows_scratch_bytes,
};
