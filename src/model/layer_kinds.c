/* layer_kinds: the tables from the config's kind enums to the kinds' ops (layer_kinds.h). */
#include "model/layer_kinds.h"

#include <stdarg.h>
#include <string.h>

/* Indexed by the config's enums; a NULL entry is a kind the format names but this build
 * does not run yet. */
static const struct sublayer_kind *const attn_kinds[] = {
    [ATTN_DENSE] = &attn_dense,
    [ATTN_SPARSE_QKV] = &attn_sparse_qkv,
    [ATTN_LSH] = NULL, /* LSH runs on dense or sparse QKV projections: lsh_period selects it */
};
static const struct sublayer_kind *const ff_kinds[] = {
    [FF_DENSE] = &ff_dense,
    [FF_SPARSE] = &ff_sparse,
};
static const struct sublayer_kind *const out_kinds[] = {
    [OUT_DENSE] = &out_dense,
    [OUT_MULT] = &out_mult,
};

#define N_OF(a) (sizeof(a) / sizeof(a)[0])

static enum stf_status pick(const struct sublayer_kind *const *table, size_t n, uint32_t value,
                            const char *field, const struct sublayer_kind **out,
                            struct stf_error *err)
{
    *out = value < n ? table[value] : NULL;
    if (*out) return STF_OK;
    const char *name = model_config_choice_name(field, value);
    if (name)
        return stf_fail(err, STF_ERR_FORMAT, "config: %s `%s` is not supported yet", field, name);
    return stf_fail(err, STF_ERR_FORMAT, "config: %s kind %u unknown", field, value);
}

enum stf_status layer_kinds_pick(const struct model_config *c, struct layer_kinds *out,
                                 struct stf_error *err)
{
    memset(out, 0, sizeof *out);
    enum stf_status st;
    if (c->attn == ATTN_LSH)
        return stf_fail(err, STF_ERR_FORMAT,
                        "config: attn `lsh` names no projection weights: set attn to dense or "
                        "sparse_qkv and choose the LSH sub-layers with lsh_period and lsh_phase");
    if ((st = pick(attn_kinds, N_OF(attn_kinds), (uint32_t)c->attn, "attn", &out->attn, err)) ||
        (st = pick(ff_kinds, N_OF(ff_kinds), (uint32_t)c->ff, "ff", &out->ff, err)) ||
        (st = pick(out_kinds, N_OF(out_kinds), (uint32_t)c->out, "out", &out->out, err)))
        return st;
    out->sru = c->sru_units ? &sru_branch : NULL;
    if (c->lsh_period)
        out->attn_lsh = c->attn == ATTN_SPARSE_QKV ? &attn_lsh_sparse_qkv : &attn_lsh_dense;
    const struct sublayer_kind *all[] = {out->attn, out->ff, out->sru, out->out, out->attn_lsh};
    for (size_t i = 0; i < N_OF(all); i++)
        if (all[i] && all[i]->validate && (st = all[i]->validate(c, err))) return st;
    return STF_OK;
}

struct tensor_desc *kind_q8(const struct model_config *c, struct tensor_desc *t, bool transposed)
{
    if (c->weights != WEIGHTS_Q8) return t;
    t->dtype = STF_DTYPE_Q8_0;
    if (transposed) {
        bool all_rows = t->rows_read == t->shape[0];
        uint64_t out = t->shape[t->rank - 1], in = 1;
        for (int i = 0; i < t->rank - 1; i++)
            in *= t->shape[i];
        memset(t->shape, 0, sizeof t->shape);
        t->shape[0] = out;
        t->shape[1] = in;
        t->rank = 2;
        t->transposed = true;
        if (all_rows) t->rows_read = out;
    }
    return t;
}

struct tensor_desc *kind_tensor(struct tensor_desc *t, const char *name, enum tensor_init init,
                                float scale, int rank, ...)
{
    memset(t, 0, sizeof *t);
    strncpy(t->name, name, sizeof t->name - 1);
    t->rank = rank;
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++)
        t->shape[i] = va_arg(ap, uint64_t);
    va_end(ap);
    t->dtype = STF_DTYPE_F32;
    t->init = init;
    t->scale = scale;
    t->rows_read = t->shape[0];
    t->uses = rank >= 2 ? 1 : 0; /* vectors (biases, gains) are element-wise */
    return t;
}
