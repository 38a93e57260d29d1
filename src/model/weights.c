#include "model/weights.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct list_builder {
    struct tensor_desc *out;
    int max, n;
};

/* Adds one tensor; shape is given as rank dims. */
static void add(struct list_builder *b, const struct model_config *cfg, enum tensor_group g,
                int layer, const char *name, const float **slot, enum tensor_init init, float scale,
                int rank, ...)
{
    (void)cfg;
    if (b->out && b->n < b->max) {
        struct tensor_desc *t = &b->out[b->n];
        memset(t, 0, sizeof *t);
        if (g == GROUP_LAYER)
            snprintf(t->name, sizeof t->name, "layers.%d.%s", layer, name);
        else
            snprintf(t->name, sizeof t->name, "%s", name);
        t->group = g;
        t->layer = layer;
        t->rank = rank;
        va_list ap;
        va_start(ap, rank);
        for (int i = 0; i < rank; i++)
            t->shape[i] = va_arg(ap, uint64_t);
        va_end(ap);
        t->init = init;
        t->scale = scale;
        t->slot = slot;
    }
    b->n++;
}

#define SLOT(w, field) ((w) ? &(w)->field : NULL)
#define U(x)           ((uint64_t)(x))

static float inv_sqrt(double fan_in)
{
    return (float)(1.0 / sqrt(fan_in));
}

/* Initial scales keep activations near unit variance so that the sparse controllers pick
 * varied units; biases and norm parameters are small but non-zero so every term is tested. */
#define BIAS_SCALE 0.02f
#define NORM_SCALE 0.1f

static void add_layer(struct list_builder *b, const struct model_config *c, int i,
                      struct layer_weights *lw)
{
    uint64_t d = c->d_model, F = c->d_ff;
    add(b, c, GROUP_LAYER, i, "ln1.g", SLOT(lw, ln1_g), INIT_GAIN, NORM_SCALE, 1, U(d));
    add(b, c, GROUP_LAYER, i, "ln1.b", SLOT(lw, ln1_b), INIT_NORMAL, NORM_SCALE, 1, U(d));
    if (c->attn == ATTN_DENSE) {
        float s = inv_sqrt((double)d);
        add(b, c, GROUP_LAYER, i, "attn.wq", SLOT(lw, wq), INIT_NORMAL, s, 2, U(d), U(d));
        add(b, c, GROUP_LAYER, i, "attn.bq", SLOT(lw, bq), INIT_NORMAL, BIAS_SCALE, 1, U(d));
        add(b, c, GROUP_LAYER, i, "attn.wk", SLOT(lw, wk), INIT_NORMAL, s, 2, U(d), U(d));
        add(b, c, GROUP_LAYER, i, "attn.bk", SLOT(lw, bk), INIT_NORMAL, BIAS_SCALE, 1, U(d));
        add(b, c, GROUP_LAYER, i, "attn.wv", SLOT(lw, wv), INIT_NORMAL, s, 2, U(d), U(d));
        add(b, c, GROUP_LAYER, i, "attn.bv", SLOT(lw, bv), INIT_NORMAL, BIAS_SCALE, 1, U(d));
        add(b, c, GROUP_LAYER, i, "attn.wo", SLOT(lw, wo), INIT_NORMAL, s, 2, U(d), U(d));
        add(b, c, GROUP_LAYER, i, "attn.bo", SLOT(lw, bo), INIT_NORMAL, BIAS_SCALE, 1, U(d));
    } else {
        uint64_t S = c->qkv_modules, M = d / S;
        add(b, c, GROUP_LAYER, i, "attn.mult.g", SLOT(lw, mult_g), INIT_NORMAL, 1.0f, 2, U(S),
            U(d));
        add(b, c, GROUP_LAYER, i, "attn.mult.p", SLOT(lw, mult_p), INIT_NORMAL, inv_sqrt((double)d),
            2, U(d), U(M));
        add(b, c, GROUP_LAYER, i, "attn.mult.c", SLOT(lw, mult_c), INIT_NORMAL, BIAS_SCALE, 1,
            U(d));
        float s33 = inv_sqrt(9.0 * (double)M), s31 = inv_sqrt(3.0 * (double)M);
        add(b, c, GROUP_LAYER, i, "attn.conv_q.w", SLOT(lw, conv_q_w), INIT_NORMAL, s33, 4, U(3),
            U(3), U(M), U(M));
        add(b, c, GROUP_LAYER, i, "attn.conv_q.b", SLOT(lw, conv_q_b), INIT_NORMAL, BIAS_SCALE, 1,
            U(M));
        add(b, c, GROUP_LAYER, i, "attn.conv_k.w", SLOT(lw, conv_k_w), INIT_NORMAL, s33, 4, U(3),
            U(3), U(M), U(M));
        add(b, c, GROUP_LAYER, i, "attn.conv_k.b", SLOT(lw, conv_k_b), INIT_NORMAL, BIAS_SCALE, 1,
            U(M));
        add(b, c, GROUP_LAYER, i, "attn.conv_v.w", SLOT(lw, conv_v_w), INIT_NORMAL, s31, 4, U(3),
            U(1), U(M), U(M));
        add(b, c, GROUP_LAYER, i, "attn.conv_v.b", SLOT(lw, conv_v_b), INIT_NORMAL, BIAS_SCALE, 1,
            U(M));
    }
    add(b, c, GROUP_LAYER, i, "ln2.g", SLOT(lw, ln2_g), INIT_GAIN, NORM_SCALE, 1, U(d));
    add(b, c, GROUP_LAYER, i, "ln2.b", SLOT(lw, ln2_b), INIT_NORMAL, NORM_SCALE, 1, U(d));
    if (c->ff == FF_DENSE) {
        add(b, c, GROUP_LAYER, i, "ff.w1", SLOT(lw, w1), INIT_NORMAL, inv_sqrt((double)d), 2, U(d),
            U(F));
        add(b, c, GROUP_LAYER, i, "ff.b1", SLOT(lw, b1), INIT_NORMAL, BIAS_SCALE, 1, U(F));
        add(b, c, GROUP_LAYER, i, "ff.w2", SLOT(lw, w2), INIT_NORMAL, inv_sqrt((double)F), 2, U(F),
            U(d));
    } else {
        uint64_t r = c->ff_rank, B = F / c->ff_block;
        add(b, c, GROUP_LAYER, i, "ff.ctrl.c1", SLOT(lw, ctrl_c1), INIT_NORMAL, inv_sqrt((double)d),
            2, U(d), U(r));
        add(b, c, GROUP_LAYER, i, "ff.ctrl.c2", SLOT(lw, ctrl_c2), INIT_NORMAL, inv_sqrt((double)r),
            2, U(r), U(F));
        add(b, c, GROUP_LAYER, i, "ff.ctrl.cb", SLOT(lw, ctrl_cb), INIT_NORMAL, BIAS_SCALE, 1,
            U(F));
        add(b, c, GROUP_LAYER, i, "ff.w1t", SLOT(lw, w1t), INIT_NORMAL, inv_sqrt((double)d), 2,
            U(F), U(d));
        add(b, c, GROUP_LAYER, i, "ff.w2", SLOT(lw, w2), INIT_NORMAL, inv_sqrt((double)B), 2, U(F),
            U(d));
    }
    add(b, c, GROUP_LAYER, i, "ff.b2", SLOT(lw, b2), INIT_NORMAL, BIAS_SCALE, 1, U(d));
    if (c->sru_units) {
        uint64_t n = c->sru_units;
        add(b, c, GROUP_LAYER, i, "sru.ln.g", SLOT(lw, sru_ln_g), INIT_GAIN, NORM_SCALE, 1, U(d));
        add(b, c, GROUP_LAYER, i, "sru.ln.b", SLOT(lw, sru_ln_b), INIT_NORMAL, NORM_SCALE, 1, U(d));
        add(b, c, GROUP_LAYER, i, "sru.wi", SLOT(lw, sru_wi), INIT_NORMAL, inv_sqrt((double)d), 2,
            U(d), U(n));
        add(b, c, GROUP_LAYER, i, "sru.bi", SLOT(lw, sru_bi), INIT_NORMAL, BIAS_SCALE, 1, U(n));
        add(b, c, GROUP_LAYER, i, "sru.w", SLOT(lw, sru_w), INIT_NORMAL, inv_sqrt((double)n), 2,
            U(n), U(3 * n));
        add(b, c, GROUP_LAYER, i, "sru.b", SLOT(lw, sru_b), INIT_NORMAL, BIAS_SCALE, 1, U(3 * n));
        add(b, c, GROUP_LAYER, i, "sru.wo", SLOT(lw, sru_wo), INIT_NORMAL, inv_sqrt((double)n), 2,
            U(n), U(d));
        add(b, c, GROUP_LAYER, i, "sru.bo", SLOT(lw, sru_bo), INIT_NORMAL, BIAS_SCALE, 1, U(d));
    }
}

int model_tensor_list(const struct model_config *c, struct model_weights *w,
                      struct tensor_desc *out, int max)
{
    struct list_builder b = {out, max, 0};
    uint64_t d = c->d_model, V = c->vocab_size;
    add(&b, c, GROUP_EMBED, -1, "embed", SLOT(w, embed), INIT_NORMAL, 1.0f, 2, U(V), U(d));
    add(&b, c, GROUP_EMBED, -1, "pos", SLOT(w, pos), INIT_SINCOS, 1.0f, 2, U(c->max_seq_len), U(d));
    for (uint32_t i = 0; i < c->n_layers; i++)
        add_layer(&b, c, (int)i, w ? &w->layers[i] : NULL);
    add(&b, c, GROUP_HEAD, -1, "ln_f.g", SLOT(w, lnf_g), INIT_GAIN, NORM_SCALE, 1, U(d));
    add(&b, c, GROUP_HEAD, -1, "ln_f.b", SLOT(w, lnf_b), INIT_NORMAL, NORM_SCALE, 1, U(d));
    if (c->out == OUT_DENSE) {
        add(&b, c, GROUP_HEAD, -1, "out.w", SLOT(w, out_w), INIT_NORMAL, inv_sqrt((double)d), 2,
            U(d), U(V));
        add(&b, c, GROUP_HEAD, -1, "out.b", SLOT(w, out_b), INIT_NORMAL, BIAS_SCALE, 1, U(V));
    } else {
        uint64_t S = c->out_modules;
        add(&b, c, GROUP_HEAD, -1, "out.g", SLOT(w, out_g), INIT_NORMAL, 1.0f, 2, U(S), U(d));
        add(&b, c, GROUP_HEAD, -1, "out.p", SLOT(w, out_p), INIT_NORMAL, inv_sqrt((double)d), 2,
            U(d), U(V / S));
        add(&b, c, GROUP_HEAD, -1, "out.c", SLOT(w, out_c), INIT_NORMAL, BIAS_SCALE, 1, U(V));
    }
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
