/*
 * ff_sparse: the Sparse FF sub-layer (SPEC §1), B = F / N blocks of N units, rank r:
 *   u = x·C1;  l = u·C2 + cb;  j_b = argmax_n l[b·N + n]  (first maximum)
 *   out = Σ_b ReLU(x · W1[:, b·N + j_b]) · W2[b·N + j_b, :] + b2
 * W1 is stored transposed, (F, d), so a token reads B rows of it and B rows of W2.
 * No per-sequence state.
 *
 * Tensor parallelism (model/tp.h), T dividing B: rank t owns blocks [t·B/T, (t+1)·B/T) —
 * their rows of W1ᵀ and W2 and their entries of cb (the only rows it maps) and their columns
 * of C2. C1 runs whole on every rank; the logits of the rank's blocks are computed exactly as
 * one rank computes them (dense_range), so every rank picks the units one rank would. Each
 * rank sums h_b · W2 row over its blocks (rank 0 starting from b2), one allgather brings the
 * T partial d-vectors, and every rank adds them in rank order. Only that order differs from
 * T = 1 (a sum over blocks in turn), which keeps T = 1 on the hand-written kernel.
 */
#include <math.h>
#include <string.h>

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
    /* tensor parallelism: a rank owns whole blocks, their rows of W1ᵀ and W2 */
    t[W1T].tp_units = t[W2].tp_units = t[CTRL_CB].tp_units = (uint32_t)B;
    t[CTRL_C2].tp_col_units = (uint32_t)B; /* the logits of its blocks */
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

/* T > 1 adds the rank's partial sum (d) and the gathered partials (T, d). */
static uint64_t scratch_layout(const struct model_config *c, uint32_t tp, void *base,
                               struct sparse_ff_scratch *s, struct q8_scratch *qs, float **partial,
                               float **gathered)
{
    uint64_t F = c->d_ff, d = c->d_model;
    struct carve cv = {base, 0};
    s->chosen = carve_take(&cv, F * sizeof(uint32_t)); /* first: ff_sparse_chosen reads it */
    s->u = carve_take(&cv, c->ff_rank * sizeof(float));
    s->logits = carve_take(&cv, F * sizeof(float));
    s->h = carve_take(&cv, F * sizeof(float));
    *partial = tp > 1 ? carve_take(&cv, d * sizeof(float)) : NULL;
    *gathered = tp > 1 ? carve_take(&cv, (uint64_t)tp * d * sizeof(float)) : NULL;
    kind_q8_scratch(c, &cv, qs, 1, c->d_model);
    return cv.used;
}

static struct sublayer_sizes sizes(const struct model_config *c, uint32_t capacity, uint32_t tp)
{
    (void)capacity;
    struct sparse_ff_scratch sc;
    struct q8_scratch qs;
    float *pa, *ga;
    return (struct sublayer_sizes){.scratch_bytes =
                                       scratch_layout(c, tp, NULL, &sc, &qs, &pa, &ga)};
}

static uint32_t tp_units(const struct model_config *c)
{
    return c->d_ff / c->ff_block; /* B */
}

/* T > 1: the rank's blocks (see the top of this file). */
static void forward_tp(const struct sublayer_step *s, const float *x, float *out)
{
    const struct model_config *c = s->cfg;
    const struct tensor_view *w = s->w;
    const struct kernels *k = s->k;
    const uint32_t T = s->tp->size, t = s->tp->rank;
    const uint32_t d = c->d_model, F = c->d_ff, N = c->ff_block, r = c->ff_rank, B = F / N;
    const uint32_t b0 = t * (B / T), b1 = b0 + B / T;
    struct sparse_ff_scratch sc;
    struct q8_scratch qs;
    float *partial, *gathered;
    scratch_layout(c, T, s->scratch, &sc, &qs, &partial, &gathered);
    const bool q8 = w[W1T].dtype == STF_DTYPE_Q8_0; /* q8 rows of nb blocks: kernels_q8.h */
    const uint64_t row_bytes = stf_dtype_row_bytes(w[W1T].dtype, d); /* W1ᵀ and W2 alike */
    /* SPEC §1 controller: u = x·C1 whole, l = u·C2 + cb for the rank's blocks only (each
     * logit bitwise what one rank computes, so the same units win) */
    k->dense(sc.u, x, view_f32(&w[CTRL_C1]), NULL, d, r);
    const float *cb = view_row(&w[CTRL_CB], (uint64_t)b0 * N, sizeof(float));
    k->dense_range(sc.logits, sc.u, view_f32(&w[CTRL_C2]), cb, r, F, b0 * N, b1 * N);
    if (t == 0)
        memcpy(partial, view_f32(&w[B2]), (size_t)d * sizeof(float));
    else
        memset(partial, 0, (size_t)d * sizeof(float));
    for (uint32_t b = b0; b < b1; b++) {
        uint32_t u = b * N + argmax(sc.logits + (uint64_t)b * N, N);
        sc.chosen[b] = u;
        float h; /* SPEC §1: h_b = ReLU(x · W1[:, u]), W1ᵀ row u */
        const void *row1 = view_row(&w[W1T], u, row_bytes), *row2 = view_row(&w[W2], u, row_bytes);
        if (q8)
            kernels_q8_for(k)->dense(&h, x, row1, NULL, d, 1, &qs);
        else
            k->dense(&h, x, row1, NULL, d, 1);
        if (!(h > 0.0f)) continue;
        if (q8) { /* dequantised as the q8 kernels do: (h · scale) · q */
            const struct q8_block *r2 = row2;
            for (uint32_t i = 0; i < d; i++) {
                const struct q8_block *blk = &r2[i / STF_Q8_BLOCK];
                partial[i] += (h * q8_half_to_float(blk->d)) * (float)blk->q[i % STF_Q8_BLOCK];
            }
        } else {
            const float *r2 = row2;
            for (uint32_t i = 0; i < d; i++)
                partial[i] += h * r2[i];
        }
    }
    s->tp->allgather(s->tp->ctx, partial, (size_t)d * sizeof(float), gathered);
    memcpy(out, gathered, (size_t)d * sizeof(float));
    for (uint32_t q = 1; q < T; q++) /* rank order */
        for (uint32_t i = 0; i < d; i++)
            out[i] += gathered[(uint64_t)q * d + i];
}

static void forward(const struct sublayer_step *s, const float *x, float *out)
{
    if (s->tp && s->tp->size > 1) {
        forward_tp(s, x, out);
        return;
    }
    const struct model_config *c = s->cfg;
    const struct tensor_view *w = s->w;
    struct sparse_ff_scratch sc;
    struct q8_scratch qs;
    float *pa, *ga;
    scratch_layout(c, 1, s->scratch, &sc, &qs, &pa, &ga);
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
    float *pa, *ga;
    scratch_layout(c, 1, (void *)scratch, &sc, &qs, &pa, &ga);
    return sc.chosen;
}

const struct sublayer_kind ff_sparse = {
    .name = "sparse",
    .tensors = tensors,
    .validate = validate,
    .sizes = sizes,
    .tp_units = tp_units,
    .forward = forward,
    .forward_rows = forward_rows,
    .rows_scratch_bytes = rows_scratch_bytes,
};
