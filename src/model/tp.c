/* tp: how T ranks of a stage share each layer kind (see tp.h). */
#include "model/tp.h"

#include <stdio.h>
#include <stdlib.h>

#include "model/forward.h"
#include "model/layer_kinds.h"
#include "model/weights.h"

static uint32_t gcd_u32(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The count every T must divide: gcd of what the model's kinds split (0: nothing splits). */
static uint32_t tp_units(const struct model_config *c)
{
    struct layer_kinds k;
    struct stf_error err;
    if (layer_kinds_pick(c, &k, &err)) return 0;
    const struct sublayer_kind *kinds[4] = {k.attn, k.ff, k.sru, k.out};
    uint32_t u = 0;
    for (int i = 0; i < 4; i++)
        if (kinds[i] && kinds[i]->tp_units) u = gcd_u32(u, kinds[i]->tp_units(c));
    return u;
}

const char *model_tp_describe(const struct model_config *c)
{
    static char buf[256];
    int n = 0;
    buf[0] = 0;
    if (c->attn == ATTN_SPARSE_QKV)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "sparse QKV splits %u modules and %u heads",
                      c->qkv_modules, c->n_heads);
    if (c->ff == FF_SPARSE)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%ssparse FF splits %u blocks",
                      n ? ", " : "", c->d_ff / c->ff_block);
    if (!n)
        snprintf(buf, sizeof buf,
                 "no layer kind of this model splits yet: each rank of a stage computes its "
                 "layers whole");
    return buf;
}

enum stf_status model_tp_check(const struct model_config *c, uint32_t T, struct stf_error *err)
{
    if (T < 1) return stf_fail(err, STF_ERR_ARG, "--tp must be at least 1");
    if (T == 1) return STF_OK;
    uint32_t u = tp_units(c);
    /* nothing splits (dense kinds only, for now): every rank of a stage computes its layers
     * whole — correct, not faster; the plan says so */
    if (u == 0 || u % T == 0) return STF_OK;
    char valid[160];
    int n = 0;
    for (uint32_t t = 1; t <= u && n < (int)sizeof valid - 12; t++)
        if (u % t == 0)
            n += snprintf(valid + n, sizeof valid - (size_t)n, "%s%u", n ? ", " : "", t);
    return stf_fail(err, STF_ERR_ARG,
                    "--tp %u does not divide what this model splits (%s); valid --tp: %s", T,
                    model_tp_describe(c), valid);
}

void model_tp_rows(const struct tensor_desc *t, uint32_t T, uint32_t rank, uint64_t *first,
                   uint64_t *count)
{
    uint64_t U = t->tp_units;
    if (T <= 1 || U == 0 || U % T != 0) {
        *first = 0, *count = t->shape[0];
        return;
    }
    uint64_t per = t->shape[0] / U, u0 = (uint64_t)rank * (U / T), u1 = u0 + U / T;
    u0 = u0 > t->tp_halo ? u0 - t->tp_halo : 0;
    u1 = u1 + t->tp_halo < U ? u1 + t->tp_halo : U;
    *first = u0 * per, *count = (u1 - u0) * per;
}

/* The most rows any of T ranks holds of t (an inner rank: both halos). */
static uint64_t rows_most(const struct tensor_desc *t, uint32_t T)
{
    uint64_t most = 0, first, count;
    for (uint32_t r = 0; r < (T > 1 ? T : 1); r++) {
        model_tp_rows(t, T, r, &first, &count);
        if (count > most) most = count;
    }
    return most;
}

enum tp_figure { TP_BYTES, TP_READ_BYTES };

/* Sums a figure over layer 0's tensors, each at the share of its rows one of T ranks holds. */
static uint64_t layer_sum(const struct model_config *c, uint32_t T, enum tp_figure f)
{
    int n = model_tensor_list(c, NULL, NULL, 0);
    struct tensor_desc *t = n > 0 ? calloc((size_t)n, sizeof *t) : NULL;
    if (!t) return 0;
    model_tensor_list(c, NULL, t, n);
    uint64_t b = 0;
    for (int i = 0; i < n; i++) {
        if (t[i].group != GROUP_LAYER || t[i].layer != 0) continue;
        uint64_t rows = t[i].shape[0], own = rows_most(&t[i], T);
        uint64_t whole = f == TP_BYTES ? tensor_desc_bytes(&t[i]) : tensor_desc_read_bytes(&t[i]);
        uint64_t part = rows ? whole / rows * own : 0; /* every row the same size */
        if (f == TP_READ_BYTES && T > 1 && t[i].tp_col_units && t[i].tp_col_units % T == 0)
            part /= T; /* mapped whole, 1/T of its columns read */
        b += part;
    }
    free(t);
    return b;
}

/* Modules one rank computes y for: its S/T plus a neighbour on each side (at most S). */
static uint64_t halo_modules(const struct model_config *c, uint32_t T)
{
    uint64_t S = c->qkv_modules, m = S / T + 2;
    return m < S ? m : S;
}

/* Sparse QKV sub-layers of layer 0 that T ranks split: a Terraformer block has two attention
 * sub-layers, and an LSH one is computed whole by every rank (attn_lsh.c). */
static uint32_t split_attn(const struct model_config *c)
{
    uint32_t na = model_attn_per_layer(c), n = 0;
    if (c->attn != ATTN_SPARSE_QKV) return 0;
    for (uint32_t a = 0; a < na; a++)
        n += !model_sublayer_is_lsh(c, a);
    return n;
}

static uint64_t less_share(uint64_t whole, uint32_t T)
{
    return whole - whole / T; /* what one of T ranks does not hold of a split tensor */
}

uint64_t model_tp_layer_bytes(const struct model_config *c, uint32_t T)
{
    return layer_sum(c, T, TP_BYTES);
}

uint64_t model_tp_layer_read_bytes(const struct model_config *c, uint32_t T)
{
    return layer_sum(c, T, TP_READ_BYTES);
}

uint64_t model_tp_layer_macs(const struct model_config *c, uint32_t T)
{
    uint64_t m = model_layer_macs(c), d = c->d_model;
    if (T <= 1) return m;
    if (split_attn(c)) {
        uint64_t S = c->qkv_modules, M = d / S, saved = S - halo_modules(c, T);
        /* mult_dense and the three convolutions */
        m -= split_attn(c) * saved * (d * M + 21 * M * M);
    }
    if (c->ff == FF_SPARSE) /* W1ᵀ and W2 rows of its blocks, the controller's C2 columns */
        m -= 2 * less_share((uint64_t)(c->d_ff / c->ff_block) * d, T) +
             less_share((uint64_t)c->ff_rank * c->d_ff, T);
    return m;
}

uint64_t model_tp_layer_state_bytes(const struct model_config *c, uint32_t capacity, uint32_t T)
{
    return model_layer_state_bytes_tp(c, capacity, T); /* each kind sizes its shard */
}

uint32_t model_tp_layer_collectives(const struct model_config *c, uint32_t T, uint64_t *bytes)
{
    uint32_t n = 0;
    uint64_t d = c->d_model;
    *bytes = 0;
    if (T <= 1) return 0;
    n += split_attn(c), *bytes += split_attn(c) * 4 * d;        /* T slices of d/T */
    if (c->ff == FF_SPARSE) n++, *bytes += 4 * (uint64_t)T * d; /* T partial d-vectors */
    return n;
}
