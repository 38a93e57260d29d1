#include "model/init.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void model_init_begin(struct model_init *ini, uint64_t seed)
{
    memset(ini, 0, sizeof *ini);
    ini->seed = seed;
}

enum stf_status model_init_fill(void *ctx, const struct tensor_desc *t, float *buf, uint64_t start,
                                uint64_t count, struct stf_error *err)
{
    struct model_init *ini = ctx;
    if (t->init == INIT_SINCOS) {
        /* the usual table: pos[p, 2i] = sin(p / 10000^(2i/d)), pos[p, 2i+1] = cos(same) */
        uint64_t d = t->shape[1];
        for (uint64_t e = 0; e < count; e++) {
            uint64_t idx = start + e, p = idx / d, i = idx % d;
            double freq = pow(10000.0, -(double)(i & ~1ull) / (double)d);
            buf[e] = (float)((i & 1) ? cos((double)p * freq) : sin((double)p * freq));
        }
        return STF_OK;
    }
    if (ini->current != t || start != ini->next) {
        if (start != 0)
            return stf_fail(err, STF_ERR_ARG, "random init must fill tensor %s in order", t->name);
        rng_seed(&ini->rng, rng_hash_string(ini->seed, t->name));
        ini->current = t;
    }
    float offset = t->init == INIT_GAIN ? 1.0f : 0.0f;
    for (uint64_t e = 0; e < count; e++)
        buf[e] = offset + t->scale * rng_normal(&ini->rng);
    ini->next = start + count;
    return STF_OK;
}

/* Uniform on [-a, a] with a = scale * sqrt(3) (same variance as the normal init). */
static void fill_fast_from(const struct tensor_desc *t, float *buf, uint64_t n, uint64_t *state)
{
    uint64_t x = *state;
    float a = t->scale * 1.7320508f, offset = t->init == INIT_GAIN ? 1.0f : 0.0f;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13; /* xorshift64 */
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = offset + a * ((float)(x >> 40) * (2.0f / 16777216.0f) - 1.0f);
    }
    *state = x;
}

static void fill_fast(const struct tensor_desc *t, float *buf, uint64_t n, uint64_t seed)
{
    uint64_t x = rng_hash_string(seed, t->name) | 1;
    fill_fast_from(t, buf, n, &x);
}

/* A q8 tensor of random values: rows are drawn in stored order (a random model has no
 * f32 original to match) and quantised one at a time. */
static enum stf_status fill_q8(const struct tensor_desc *t, unsigned char *out, unsigned flags,
                               struct model_init *ini, uint64_t seed, struct stf_error *err)
{
    uint64_t n = 1, rows = t->shape[0];
    for (int i = 1; i < t->rank; i++)
        n *= t->shape[i];
    uint64_t row_bytes = stf_dtype_row_bytes(STF_DTYPE_Q8_0, n);
    struct tensor_desc f = *t;
    f.dtype = STF_DTYPE_F32;
    float *row = malloc(n * sizeof *row);
    if (!row) return stf_fail(err, STF_ERR_NOMEM, "out of memory for a row of tensor %s", t->name);
    uint64_t x = rng_hash_string(seed, t->name) | 1;
    enum stf_status st = STF_OK;
    for (uint64_t r = 0; r < rows && !st; r++) {
        if (flags & MODEL_RANDOM_FAST)
            fill_fast_from(t, row, n, &x);
        else
            st = model_init_fill(ini, &f, row, r * n, n, err);
        q8_quantize_row((struct q8_block *)(out + r * row_bytes), row, (uint32_t)n);
    }
    free(row);
    return st;
}

static bool selected(const struct tensor_desc *t, const struct model_select *sel)
{
    if (t->group == GROUP_EMBED) return sel->embed;
    if (t->group == GROUP_HEAD) return sel->head;
    return (uint32_t)t->layer >= sel->layer_begin && (uint32_t)t->layer < sel->layer_end;
}

enum stf_status model_create_random(const struct model_config *cfg, uint64_t seed,
                                    const struct model_select *sel, unsigned flags,
                                    struct model **out, struct stf_error *err)
{
    *out = NULL;
    enum stf_status st = model_config_validate(cfg, err);
    if (st) return st;
    struct model *m = calloc(1, sizeof *m);
    if (!m) return stf_fail(err, STF_ERR_NOMEM, "out of memory");
    m->fd = -1;
    m->cfg = *cfg;
    m->sel = *sel;
    layer_kinds_pick(cfg, &m->kinds, err); /* validated above: cannot fail */
    m->w.layers = calloc(cfg->n_layers, sizeof *m->w.layers);
    int n = model_tensor_list(cfg, NULL, NULL, 0);
    struct tensor_desc *descs = calloc((size_t)n, sizeof *descs);
    /* each tensor is one anonymous "map" so model_close frees it like a file mapping */
    m->maps = calloc((size_t)n, sizeof *m->maps);
    if (!m->w.layers || !descs || !m->maps) {
        st = stf_fail(err, STF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    model_tensor_list(cfg, &m->w, descs, n);
    struct model_init ini;
    model_init_begin(&ini, seed);
    for (int i = 0; i < n; i++) {
        if (!selected(&descs[i], sel)) continue;
        uint64_t elems = tensor_desc_elements(&descs[i]), bytes = tensor_desc_bytes(&descs[i]);
        st = file_map_anon(&m->maps[m->n_maps], bytes, err);
        if (st) goto fail;
        float *buf = (float *)m->maps[m->n_maps].data;
        m->n_maps++;
        if (descs[i].dtype == STF_DTYPE_Q8_0) {
            if ((st = fill_q8(&descs[i], (unsigned char *)buf, flags, &ini, seed, err))) goto fail;
        } else if ((flags & MODEL_RANDOM_FAST) && descs[i].init != INIT_SINCOS)
            fill_fast(&descs[i], buf, elems, seed);
        else if ((st = model_init_fill(&ini, &descs[i], buf, 0, elems, err)))
            goto fail;
        *descs[i].slot =
            (struct tensor_view){.data = buf, .dtype = descs[i].dtype, .nbytes = bytes};
        m->mapped_bytes += bytes;
    }
    free(descs);
    *out = m;
    return STF_OK;
fail:
    free(descs);
    model_close(m);
    return st;
}
