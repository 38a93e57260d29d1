#include "model/weights.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/layer_kinds.h"

struct list_builder {
    struct tensor_desc *out;
    int max, n;
};

/* Adds one tensor described by t (relative name) to the list, in group g. */
static void add(struct list_builder *b, const struct tensor_desc *t, enum tensor_group g, int layer,
                struct tensor_view *slot)
{
    if (b->out && b->n < b->max) {
        struct tensor_desc *o = &b->out[b->n];
        *o = *t;
        if (g == GROUP_LAYER) { /* "layers.{i}." + the kind's name (all well under 48) */
            size_t n = (size_t)snprintf(o->name, sizeof o->name, "layers.%d.", layer);
            strncat(o->name, t->name, sizeof o->name - n - 1);
        }
        o->group = g;
        o->layer = layer;
        o->slot = slot;
    }
    b->n++;
}

/* Adds a kind's tensors, binding them to views[0..n). A non-NULL attn_name replaces the
 * leading "attn" of the kind's names (Terraformer: "attn1", "attn2"). */
static void add_kind(struct list_builder *b, const struct model_config *c,
                     const struct sublayer_kind *kind, enum tensor_group g, int layer,
                     struct tensor_view *views, const char *attn_name)
{
    struct tensor_desc t[KIND_MAX_TENSORS];
    int n = kind->tensors(c, t);
    for (int i = 0; i < n; i++) {
        if (attn_name && strncmp(t[i].name, "attn.", 5) == 0) {
            char rest[sizeof t[i].name];
            snprintf(rest, sizeof rest, "%s", t[i].name + 4);
            snprintf(t[i].name, sizeof t[i].name, "%s%s", attn_name, rest);
        }
        add(b, &t[i], g, layer, views ? &views[i] : NULL);
    }
}

static void add_norm(struct list_builder *b, const struct model_config *c, const char *name,
                     enum tensor_group g, int layer, struct tensor_view *gain,
                     struct tensor_view *bias)
{
    char n[40];
    struct tensor_desc t;
    snprintf(n, sizeof n, "%s.g", name);
    add(b, kind_tensor(&t, n, INIT_GAIN, KIND_NORM_SCALE, 1, (uint64_t)c->d_model), g, layer, gain);
    snprintf(n, sizeof n, "%s.b", name);
    add(b, kind_tensor(&t, n, INIT_NORMAL, KIND_NORM_SCALE, 1, (uint64_t)c->d_model), g, layer,
        bias);
}

/* SPEC §3: x += Attn(LN1(x)); x += FF(LN2(x)) [+ the SRU branch]; a Terraformer block:
 * a += Attn1(LN1(b)); b += Attn2(LN2(a)); a += FFB(b) with FFB's norm named ln3. Each
 * attention sub-layer lists the tensors of its kind (LSH keeps its projection's). */
static void add_layer(struct list_builder *b, const struct model_config *c,
                      const struct layer_kinds *k, int i, struct layer_weights *lw)
{
    int tf = c->arch == ARCH_TERRAFORMER;
    uint32_t l0 = (uint32_t)i * model_attn_per_layer(c);
    add_norm(b, c, "ln1", GROUP_LAYER, i, lw ? &lw->ln1_g : NULL, lw ? &lw->ln1_b : NULL);
    add_kind(b, c, layer_kinds_attn(k, c, l0), GROUP_LAYER, i, lw ? lw->attn : NULL,
             tf ? "attn1" : NULL);
    if (tf) {
        add_norm(b, c, "ln2", GROUP_LAYER, i, lw ? &lw->lna2_g : NULL, lw ? &lw->lna2_b : NULL);
        add_kind(b, c, layer_kinds_attn(k, c, l0 + 1), GROUP_LAYER, i, lw ? lw->attn2 : NULL,
                 "attn2");
    }
    add_norm(b, c, tf ? "ln3" : "ln2", GROUP_LAYER, i, lw ? &lw->ln2_g : NULL,
             lw ? &lw->ln2_b : NULL);
    add_kind(b, c, k->ff, GROUP_LAYER, i, lw ? lw->ff : NULL, NULL);
    if (k->sru) add_kind(b, c, k->sru, GROUP_LAYER, i, lw ? lw->sru : NULL, NULL);
}

/* The final norm and the output layer. */
static void add_head(struct list_builder *b, const struct model_config *c,
                     const struct layer_kinds *k, struct model_weights *w)
{
    add_norm(b, c, "ln_f", GROUP_HEAD, -1, w ? &w->lnf_g : NULL, w ? &w->lnf_b : NULL);
    add_kind(b, c, k->out, GROUP_HEAD, -1, w ? w->out : NULL, NULL);
}

int model_tensor_list(const struct model_config *c, struct model_weights *w,
                      struct tensor_desc *out, int max)
{
    struct layer_kinds kinds;
    struct stf_error err;
    if (layer_kinds_pick(c, &kinds, &err)) return -1;
    struct list_builder b = {out, max, 0};
    uint64_t d = c->d_model, V = c->vocab_size;
    struct tensor_desc t;
    add(&b, kind_q8(c, kind_tensor(&t, "embed", INIT_NORMAL, 1.0f, 2, V, d), false), GROUP_EMBED,
        -1, w ? &w->embed : NULL);
    add(&b, kind_tensor(&t, "pos", INIT_SINCOS, 1.0f, 2, (uint64_t)c->max_seq_len, d), GROUP_EMBED,
        -1, w ? &w->pos : NULL);
    for (uint32_t i = 0; i < c->n_layers; i++)
        add_layer(&b, c, &kinds, (int)i, w ? &w->layers[i] : NULL);
    add_head(&b, c, &kinds, w);
    if (out && b.n > max) return -1;
    return b.n;
}

uint64_t tensor_desc_elements(const struct tensor_desc *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->shape[i];
    return n;
}

/* Elements of one row (everything after the row axis). */
static uint64_t row_elements(const struct tensor_desc *t)
{
    uint64_t n = 1;
    for (int i = 1; i < t->rank; i++)
        n *= t->shape[i];
    return n;
}

uint64_t tensor_desc_bytes(const struct tensor_desc *t)
{
    return t->shape[0] * stf_dtype_row_bytes(t->dtype, row_elements(t));
}

uint64_t tensor_desc_read_bytes(const struct tensor_desc *t)
{
    return t->rows_read * stf_dtype_row_bytes(t->dtype, row_elements(t));
}

uint64_t tensor_desc_macs(const struct tensor_desc *t)
{
    return t->rows_read * row_elements(t) * t->uses;
}

/* Sums over layer 0 (every layer has the same tensors) or over the head. */
enum cost { COST_READ, COST_MACS, COST_STORED };

static uint64_t sum_cost(const struct model_config *c, bool head, enum cost what)
{
    struct layer_kinds kinds;
    struct stf_error err;
    if (layer_kinds_pick(c, &kinds, &err)) return 0;
    struct tensor_desc t[5 * KIND_MAX_TENSORS + 8];
    struct list_builder b = {t, (int)(sizeof t / sizeof t[0]), 0};
    if (head)
        add_head(&b, c, &kinds, NULL);
    else
        add_layer(&b, c, &kinds, 0, NULL);
    uint64_t sum = 0;
    for (int i = 0; i < b.n && i < b.max; i++)
        sum += what == COST_READ   ? tensor_desc_read_bytes(&t[i])
               : what == COST_MACS ? tensor_desc_macs(&t[i])
                                   : tensor_desc_bytes(&t[i]);
    return sum;
}

uint64_t model_layer_read_bytes(const struct model_config *c)
{
    return sum_cost(c, false, COST_READ);
}

uint64_t model_layer_macs(const struct model_config *c)
{
    return sum_cost(c, false, COST_MACS);
}

uint64_t model_layer_bytes(const struct model_config *c)
{
    return sum_cost(c, false, COST_STORED);
}

uint64_t model_head_read_bytes(const struct model_config *c)
{
    return sum_cost(c, true, COST_READ);
}

uint64_t model_head_macs(const struct model_config *c)
{
    return sum_cost(c, true, COST_MACS);
}

const struct tensor_view *model_weights_find(const struct model_config *c, struct model_weights *w,
                                             const char *name)
{
    int n = model_tensor_list(c, NULL, NULL, 0);
    struct tensor_desc *t = n > 0 ? calloc((size_t)n, sizeof *t) : NULL;
    if (!t) return NULL;
    model_tensor_list(c, w, t, n);
    const struct tensor_view *v = NULL;
    for (int i = 0; i < n && !v; i++)
        if (strcmp(t[i].name, name) == 0) v = t[i].slot;
    free(t);
    return v;
}
