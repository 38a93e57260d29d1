#include "model/forward.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

/* Layer l's block of sequence state: its attention sub-layers' parts, the FF kind's, the
 * SRU branch's (each 64-byte aligned). Returns the block's size. */
static uint64_t layer_state_layout(const struct layer_kinds *k, const struct model_config *c,
                                   uint32_t capacity, uint32_t tp, uint32_t l,
                                   struct seq_state_layer *out)
{
    uint32_t na = model_attn_per_layer(c);
    const struct sublayer_kind *kinds[4] = {layer_kinds_attn(k, c, l * na),
                                            na > 1 ? layer_kinds_attn(k, c, l * na + 1) : NULL,
                                            k->ff, k->sru};
    struct seq_state_part *parts[4] = {&out->attn[0], &out->attn[1], &out->ff, &out->sru};
    struct carve cv = {NULL, 0};
    for (int i = 0; i < 4; i++) {
        struct sublayer_sizes z =
            kinds[i] ? kinds[i]->sizes(c, capacity, tp) : (struct sublayer_sizes){0};
        parts[i]->offset = cv.used;
        parts[i]->reset_bytes = z.reset_bytes;
        carve_take(&cv, z.state_bytes);
    }
    return cv.used;
}

uint64_t model_layer_state_bytes_tp(const struct model_config *c, uint32_t capacity, uint32_t tp)
{
    struct layer_kinds k;
    struct stf_error err;
    struct seq_state_layer sl;
    if (layer_kinds_pick(c, &k, &err)) return 0;
    uint64_t most = 0;
    /* the layout repeats with the LSH period: looking at that many layers is enough */
    uint32_t n = c->lsh_period ? c->lsh_period : 1;
    for (uint32_t l = 0; l < n && l < c->n_layers; l++) {
        uint64_t b = layer_state_layout(&k, c, capacity, tp, l, &sl);
        if (b > most) most = b;
    }
    return most;
}

uint64_t model_layer_state_bytes(const struct model_config *c, uint32_t capacity)
{
    return model_layer_state_bytes_tp(c, capacity, 1);
}

enum stf_status seq_state_create(const struct model_config *cfg, uint32_t layer_begin,
                                 uint32_t layer_end, uint32_t capacity, struct seq_state **out,
                                 struct stf_error *err)
{
    return seq_state_create_tp(cfg, layer_begin, layer_end, capacity, 1, out, err);
}

enum stf_status seq_state_create_tp(const struct model_config *cfg, uint32_t layer_begin,
                                    uint32_t layer_end, uint32_t capacity, uint32_t tp,
                                    struct seq_state **out, struct stf_error *err)
{
    *out = NULL;
    struct layer_kinds kinds;
    enum stf_status st = layer_kinds_pick(cfg, &kinds, err);
    if (st) return st;
    uint64_t L = layer_end - layer_begin;
    /* sized before allocating, against the memory this process may use */
    uint64_t need = L * model_layer_state_bytes_tp(cfg, capacity, tp ? tp : 1);
    if (need > stf_memory_limit())
        return stf_fail(err, STF_ERR_NOMEM,
                        "a sequence's caches (%u positions x %llu layers x d=%u) need %.3g GB, "
                        "more than the %.3g GB of memory this process may use (use a smaller "
                        "--ctx or more ranks)",
                        capacity, (unsigned long long)L, cfg->d_model, (double)need / 1e9,
                        (double)stf_memory_limit() / 1e9);
    struct seq_state *s = calloc(1, sizeof *s);
    if (!s || !(s->layers = calloc(L + 1, sizeof *s->layers))) {
        free(s);
        return stf_fail(err, STF_ERR_NOMEM, "out of memory for sequence state");
    }
    s->layer_begin = layer_begin;
    s->layer_end = layer_end;
    s->capacity = capacity;
    s->cfg = cfg;
    s->tp = tp ? tp : 1;
    uint64_t total = 0;
    for (uint64_t i = 0; i < L; i++) {
        s->layers[i].offset = total;
        total += layer_state_layout(&kinds, cfg, capacity, s->tp, layer_begin + (uint32_t)i,
                                    &s->layers[i]);
    }
    s->data = stf_alloc(total + (L == 0)); /* 1 byte when no layer */
    if (!s->data) {
        seq_state_free(s);
        return stf_fail(err, STF_ERR_NOMEM,
                        "out of memory for the state of %u positions x %llu layers (%llu bytes)",
                        capacity, (unsigned long long)L, (unsigned long long)total);
    }
    *out = s;
    return STF_OK;
}

void seq_state_reset(struct seq_state *s)
{
    for (uint64_t l = 0; l < s->layer_end - s->layer_begin; l++) {
        const struct seq_state_layer *sl = &s->layers[l];
        const struct seq_state_part *parts[4] = {&sl->attn[0], &sl->attn[1], &sl->ff, &sl->sru};
        for (int i = 0; i < 4; i++)
            memset(s->data + sl->offset + parts[i]->offset, 0, parts[i]->reset_bytes);
    }
}

int seq_state_lsh(const struct seq_state *s, uint32_t i, uint32_t *sublayer, void **state)
{
    const struct model_config *c = s->cfg;
    uint32_t na = model_attn_per_layer(c);
    for (uint32_t l = s->layer_begin; l < s->layer_end; l++)
        for (uint32_t a = 0; a < na; a++)
            if (model_sublayer_is_lsh(c, l * na + a) && i-- == 0) {
                const struct seq_state_layer *sl = &s->layers[l - s->layer_begin];
                *sublayer = l * na + a;
                *state = s->data + sl->offset + sl->attn[a].offset;
                return 1;
            }
    return 0;
}

void seq_state_lsh_prepare(struct seq_state *s, uint64_t sigma)
{
    uint32_t l;
    void *st;
    for (uint32_t i = 0; seq_state_lsh(s, i, &l, &st); i++) {
        struct lsh_cache_info info;
        attn_lsh_info(s->cfg, st, &info);
        if (!info.seeded) attn_lsh_seed(s->cfg, st, sigma, l);
        uint32_t drop = model_lsh_drop_before(s->cfg, info.end);
        if (drop) attn_lsh_drop(s->cfg, st, drop);
    }
}

void seq_state_free(struct seq_state *s)
{
    if (!s) return;
    stf_free(s->data);
    free(s->layers);
    free(s);
}

/* The largest scratch of the model's kinds: they run one after another. */
static uint64_t scratch_bytes(const struct layer_kinds *k, const struct model_config *c,
                              uint32_t capacity, uint32_t tp)
{
    const struct sublayer_kind *kinds[5] = {k->attn, k->ff, k->sru, k->out, k->attn_lsh};
    uint64_t most = 64;
    for (int i = 0; i < 5; i++) {
        uint64_t b = kinds[i] ? kinds[i]->sizes(c, capacity, tp).scratch_bytes : 0;
        if (b > most) most = b;
    }
    return most;
}

uint64_t workspace_bytes(const struct model_config *c, uint32_t capacity)
{
    struct layer_kinds k;
    struct stf_error err;
    if (layer_kinds_pick(c, &k, &err)) return 0;
    return 3 * (uint64_t)c->d_model * sizeof(float) + scratch_bytes(&k, c, capacity, 1);
}

enum stf_status workspace_create(const struct model_config *c, uint32_t capacity,
                                 const struct kernels *k, struct workspace **out,
                                 struct stf_error *err)
{
    return workspace_create_tp(c, capacity, k, NULL, out, err);
}

enum stf_status workspace_create_tp(const struct model_config *c, uint32_t capacity,
                                    const struct kernels *k, const struct tp_comm *tp,
                                    struct workspace **out, struct stf_error *err)
{
    *out = NULL;
    struct layer_kinds kinds;
    enum stf_status st = layer_kinds_pick(c, &kinds, err);
    if (st) return st;
    struct workspace *ws = calloc(1, sizeof *ws);
    if (!ws) return stf_fail(err, STF_ERR_NOMEM, "out of memory for the workspace");
    size_t d = c->d_model;
    ws->k = k;
    ws->tp = tp && tp->size > 1 ? tp : NULL;
    ws->xn = stf_alloc(d * sizeof(float));
    ws->sub = stf_alloc(d * sizeof(float));
    ws->sru_out = stf_alloc(d * sizeof(float));
    ws->scratch = stf_alloc(scratch_bytes(&kinds, c, capacity, ws->tp ? ws->tp->size : 1));
    if (!ws->xn || !ws->sub || !ws->sru_out || !ws->scratch) {
        workspace_free(ws);
        return stf_fail(err, STF_ERR_NOMEM, "out of memory for the workspace");
    }
    *out = ws;
    return STF_OK;
}

void workspace_free(struct workspace *ws)
{
    if (!ws) return;
    stf_free(ws->xn);
    stf_free(ws->sub);
    stf_free(ws->sru_out);
    stf_free(ws->scratch);
    free(ws);
}

/* True when every x[i] is finite. A NaN or an Inf has an exponent of all ones; testing the
 * bits (integer operations the compiler vectorises) costs n compares, against the n x d or
 * more multiply-adds of the step that produced x. */
static bool all_finite(const float *x, uint32_t n)
{
    uint32_t bad = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], sizeof b);
        bad |= (b & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

enum stf_status forward_fail_nonfinite(const struct model *m, uint32_t where, uint32_t pos,
                                       struct stf_error *err)
{
    char part[48];
    if (where == FORWARD_AT_EMBED)
        snprintf(part, sizeof part, "the embedding");
    else if (where == FORWARD_AT_HEAD)
        snprintf(part, sizeof part, "the output layer");
    else
        snprintf(part, sizeof part, "layer %u", where);
    return stf_fail(err, STF_ERR_FORMAT,
                    "%s: %s produced a non-finite value (NaN or Inf) at position %u: the model's "
                    "weights are damaged or out of range (--verify checks them against their "
                    "checksums)",
                    m->path ? m->path : "model", part, pos);
}

uint32_t forward_embed(const struct model *m, uint32_t token, uint32_t pos, float *x)
{
    uint32_t d = m->cfg.d_model;
    const float *p = view_f32(&m->w.pos) + (uint64_t)pos * d;
    if (m->w.embed.dtype == STF_DTYPE_Q8_0) /* a q8 row, dequantised */
        q8_dequantize_row(
            x, (const struct q8_block *)m->w.embed.data + (uint64_t)token * q8_row_blocks(d), d);
    else
        memcpy(x, view_f32(&m->w.embed) + (uint64_t)token * d, d * sizeof(float));
    for (uint32_t i = 0; i < d; i++)
        x[i] += p[i]; /* SPEC §1: E[tok] + PE[p], no scaling */
    if (model_streams(&m->cfg) == 2) memcpy(x + d, x, d * sizeof(float)); /* b = a (SPEC §3) */
    return all_finite(x, d) ? FORWARD_FINITE : FORWARD_AT_EMBED;
}

/* Profile laps: with ws->prof set, the time since t is added to part and the new time
 * returned; without, one branch. */
static inline double prof_start(const struct workspace *ws)
{
    return ws->prof ? ws->prof->now() : 0.0;
}

static inline double prof_lap(const struct workspace *ws, enum forward_part part, double t)
{
    if (!ws->prof) return 0.0;
    double now = ws->prof->now();
    ws->prof->seconds[part] += now - t;
    return now;
}

/* target += sublayer(LN(in)) for attention sub-layer `a` of layer l (its state part). */
static void attention_into(const struct model *m, struct seq_state *s, struct workspace *ws,
                           struct sublayer_step *step, uint32_t l, uint32_t a, const float *in,
                           float *target)
{
    const struct model_config *c = &m->cfg;
    const struct layer_weights *lw = &m->w.layers[l];
    const struct seq_state_layer *sl = &s->layers[l - s->layer_begin];
    uint32_t d = c->d_model;
    double t = prof_start(ws);
    layernorm(ws->xn, in, view_f32(a ? &lw->lna2_g : &lw->ln1_g),
              view_f32(a ? &lw->lna2_b : &lw->ln1_b), d);
    t = prof_lap(ws, FWD_NORM, t);
    step->w = a ? lw->attn2 : lw->attn;
    step->state = s->data + sl->offset + sl->attn[a].offset;
    layer_kinds_attn(&m->kinds, c, l * model_attn_per_layer(c) + a)->forward(step, ws->xn, ws->sub);
    t = prof_lap(ws, FWD_ATTN, t);
    for (uint32_t i = 0; i < d; i++)
        target[i] += ws->sub[i];
    prof_lap(ws, FWD_RESIDUAL, t);
}

/* target += FF(LN2(in)) [+ Dense_o(SRU(Dense_i(LN'(in))))] (SPEC §3 FFB). */
static void ffb_into(const struct model *m, struct seq_state *s, struct workspace *ws,
                     struct sublayer_step *step, uint32_t l, const float *in, float *target)
{
    const struct model_config *c = &m->cfg;
    const struct layer_kinds *kind = &m->kinds;
    const struct layer_weights *lw = &m->w.layers[l];
    const struct seq_state_layer *sl = &s->layers[l - s->layer_begin];
    unsigned char *state = s->data + sl->offset;
    uint32_t d = c->d_model;
    double t = prof_start(ws);
    if (kind->sru) {
        step->w = lw->sru;
        step->state = state + sl->sru.offset;
        kind->sru->forward(step, in, ws->sru_out);
        t = prof_lap(ws, FWD_SRU, t);
    }
    layernorm(ws->xn, in, view_f32(&lw->ln2_g), view_f32(&lw->ln2_b), d);
    t = prof_lap(ws, FWD_NORM, t);
    step->w = lw->ff;
    step->state = state + sl->ff.offset;
    kind->ff->forward(step, ws->xn, ws->sub);
    t = prof_lap(ws, FWD_FF, t);
    if (kind->sru) {
        for (uint32_t i = 0; i < d; i++)
            target[i] += ws->sub[i] + ws->sru_out[i];
    } else {
        for (uint32_t i = 0; i < d; i++)
            target[i] += ws->sub[i];
    }
    prof_lap(ws, FWD_RESIDUAL, t);
}

uint32_t forward_layers(const struct model *m, struct seq_state *s, struct workspace *ws,
                        uint32_t pos, float *x)
{
    const struct model_config *c = &m->cfg;
    uint32_t d = c->d_model;
    struct sublayer_step step = {.cfg = c,
                                 .k = ws->k,
                                 .scratch = ws->scratch,
                                 .capacity = s->capacity,
                                 .pos = pos,
                                 .tp = s->tp > 1 ? ws->tp : NULL};
    float *a = x, *b = x + d;
    for (uint32_t l = s->layer_begin; l < s->layer_end; l++) {
        if (c->arch == ARCH_TERRAFORMER) {
            /* SPEC §3: a += Attn1(LN1(b)); b += Attn2(LN2(a)); a += FFB(b); (a, b) = (b, a) */
            attention_into(m, s, ws, &step, l, 0, b, a);
            attention_into(m, s, ws, &step, l, 1, a, b);
            ffb_into(m, s, ws, &step, l, b, a);
            float *t = a;
            a = b, b = t;
            if (!all_finite(x, 2 * d)) return l;
        } else {
            /* x += Attn(LN1(x)); x += FF(LN2(x)) [+ the SRU branch] */
            attention_into(m, s, ws, &step, l, 0, x, x);
            ffb_into(m, s, ws, &step, l, x, x);
            if (!all_finite(x, d)) return l;
        }
    }
    /* the swaps are pointer swaps: after an odd number of blocks, a and b sit exchanged */
    if (c->arch == ARCH_TERRAFORMER && a != x)
        for (uint32_t i = 0; i < d; i++) {
            float t = x[i];
            x[i] = x[d + i];
            x[d + i] = t;
        }
    return FORWARD_FINITE;
}

uint32_t forward_head(const struct model *m, struct workspace *ws, const float *x, float *logits)
{
    const struct model_config *c = &m->cfg;
    uint32_t d = c->d_model;
    struct sublayer_step step = {.cfg = c, .k = ws->k, .w = m->w.out, .scratch = ws->scratch};
    double t = prof_start(ws);
    const float *in = x;
    if (c->arch == ARCH_TERRAFORMER) { /* LN_f((a + b)/2) */
        for (uint32_t i = 0; i < d; i++)
            ws->sub[i] = (x[i] + x[d + i]) * 0.5f;
        in = ws->sub;
    }
    /* logits = Out(LN_f(x)) */
    layernorm(ws->xn, in, view_f32(&m->w.lnf_g), view_f32(&m->w.lnf_b), d);
    t = prof_lap(ws, FWD_NORM, t);
    m->kinds.out->forward(&step, ws->xn, logits);
    prof_lap(ws, FWD_HEAD, t);
    return all_finite(logits, c->vocab_size) ? FORWARD_FINITE : FORWARD_AT_HEAD;
}

/* The largest rows scratch of the model's kinds at max_rows rows. */
static uint64_t rows_scratch_bytes(const struct layer_kinds *k, const struct model_config *c,
                                   uint32_t capacity, uint32_t rows)
{
    const struct sublayer_kind *kinds[4] = {k->attn, k->ff, k->sru, k->out};
    uint64_t most = 64;
    for (int i = 0; i < 4; i++) {
        uint64_t b = kinds[i] ? kinds[i]->rows_scratch_bytes(c, capacity, rows) : 0;
        if (b > most) most = b;
    }
    return most;
}

enum stf_status batch_workspace_create(const struct model_config *c, uint32_t capacity,
                                       uint32_t max_rows, const struct kernels *k,
                                       struct batch_workspace **out, struct stf_error *err)
{
    *out = NULL;
    struct layer_kinds kinds;
    enum stf_status st = layer_kinds_pick(c, &kinds, err);
    if (st) return st;
    if (max_rows == 0) return stf_fail(err, STF_ERR_ARG, "a batch needs at least one row");
    if (c->arch != ARCH_SCALING || c->lsh_period)
        return stf_fail(err, STF_ERR_ARG,
                        "batched steps run the Scaling Transformer without LSH sub-layers; this "
                        "model (arch %s, lsh_period %u) steps one sequence at a time",
                        model_config_choice_name("arch", c->arch), c->lsh_period);
    struct batch_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) return stf_fail(err, STF_ERR_NOMEM, "out of memory for the batch workspace");
    size_t rd = (size_t)max_rows * c->d_model * sizeof(float);
    ws->k = k;
    ws->max_rows = max_rows;
    ws->capacity = capacity;
    ws->xn = stf_alloc(rd);
    ws->sub = stf_alloc(rd);
    ws->sru_out = stf_alloc(rd);
    ws->states = stf_alloc(max_rows * sizeof *ws->states);
    ws->scratch = stf_alloc(rows_scratch_bytes(&kinds, c, capacity, max_rows));
    if (!ws->xn || !ws->sub || !ws->sru_out || !ws->states || !ws->scratch) {
        batch_workspace_free(ws);
        return stf_fail(err, STF_ERR_NOMEM, "out of memory for a batch workspace of %u rows",
                        max_rows);
    }
    *out = ws;
    return STF_OK;
}

void batch_workspace_free(struct batch_workspace *ws)
{
    if (!ws) return;
    stf_free(ws->xn);
    stf_free(ws->sub);
    stf_free(ws->sru_out);
    stf_free(ws->states);
    stf_free(ws->scratch);
    free(ws);
}

/* The part of layer l of a sequence state. */
enum state_part { PART_ATTN, PART_FF, PART_SRU };

/* Points ws->states at each row's part of layer l. */
static void rows_states(struct seq_state *const *s, struct batch_workspace *ws, uint32_t rows,
                        uint32_t l, enum state_part part)
{
    for (uint32_t r = 0; r < rows; r++) {
        const struct seq_state_layer *sl = &s[r]->layers[l - s[r]->layer_begin];
        const struct seq_state_part *p = part == PART_ATTN ? &sl->attn[0]
                                         : part == PART_FF ? &sl->ff
                                                           : &sl->sru;
        ws->states[r] = s[r]->data + sl->offset + p->offset;
    }
}

/* The same sums as forward_layers, row by row for the element-wise parts. */
uint32_t forward_layers_rows(const struct model *m, struct seq_state *const *s,
                             struct batch_workspace *ws, const uint32_t *pos, uint32_t rows,
                             float *x, uint32_t *where)
{
    const struct model_config *c = &m->cfg;
    const struct layer_kinds *kind = &m->kinds;
    uint32_t d = c->d_model;
    uint64_t n = (uint64_t)rows * d;
    struct sublayer_rows step = {.cfg = c,
                                 .k = ws->k,
                                 .states = ws->states,
                                 .pos = pos,
                                 .rows = rows,
                                 .capacity = ws->capacity,
                                 .scratch = ws->scratch};
    uint32_t bad = 0;
    for (uint32_t r = 0; r < rows; r++)
        where[r] = FORWARD_FINITE;
    for (uint32_t l = s[0]->layer_begin; l < s[0]->layer_end; l++) {
        const struct layer_weights *lw = &m->w.layers[l];
        /* x += Attn(LN1(x)) */
        for (uint32_t r = 0; r < rows; r++)
            layernorm(ws->xn + (uint64_t)r * d, x + (uint64_t)r * d, view_f32(&lw->ln1_g),
                      view_f32(&lw->ln1_b), d);
        step.w = lw->attn;
        rows_states(s, ws, rows, l, PART_ATTN);
        kind->attn->forward_rows(&step, ws->xn, ws->sub);
        for (uint64_t i = 0; i < n; i++)
            x[i] += ws->sub[i];
        /* x += FF(LN2(x)) [+ Dense_o(SRU(Dense_i(LN'(x))))] */
        if (kind->sru) {
            step.w = lw->sru;
            rows_states(s, ws, rows, l, PART_SRU);
            kind->sru->forward_rows(&step, x, ws->sru_out);
        }
        for (uint32_t r = 0; r < rows; r++)
            layernorm(ws->xn + (uint64_t)r * d, x + (uint64_t)r * d, view_f32(&lw->ln2_g),
                      view_f32(&lw->ln2_b), d);
        step.w = lw->ff;
        rows_states(s, ws, rows, l, PART_FF);
        kind->ff->forward_rows(&step, ws->xn, ws->sub);
        if (kind->sru) {
            for (uint64_t i = 0; i < n; i++)
                x[i] += ws->sub[i] + ws->sru_out[i];
        } else {
            for (uint64_t i = 0; i < n; i++)
                x[i] += ws->sub[i];
        }
        /* the check of forward_layers, per row: the first layer a row went bad at */
        for (uint32_t r = 0; r < rows; r++)
            if (where[r] == FORWARD_FINITE && !all_finite(x + (uint64_t)r * d, d)) {
                where[r] = l;
                bad++;
            }
    }
    return bad;
}

uint32_t forward_head_rows(const struct model *m, struct batch_workspace *ws, const float *x,
                           uint32_t rows, float *logits, uint32_t *where)
{
    const struct model_config *c = &m->cfg;
    uint32_t d = c->d_model;
    struct sublayer_rows step = {
        .cfg = c, .k = ws->k, .w = m->w.out, .rows = rows, .scratch = ws->scratch};
    /* logits = Out(LN_f(x)) */
    for (uint32_t r = 0; r < rows; r++)
        layernorm(ws->xn + (uint64_t)r * d, x + (uint64_t)r * d, view_f32(&m->w.lnf_g),
                  view_f32(&m->w.lnf_b), d);
    m->kinds.out->forward_rows(&step, ws->xn, logits);
    uint32_t bad = 0, V = c->vocab_size;
    for (uint32_t r = 0; r < rows; r++) {
        where[r] = all_finite(logits + (uint64_t)r * V, V) ? FORWARD_FINITE : FORWARD_AT_HEAD;
        bad += where[r] != FORWARD_FINITE;
    }
    return bad;
}
