#include "model/forward.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

/* One layer's block of sequence state: the attention kind's part, the FF kind's, the SRU
 * branch's (each 64-byte aligned). Returns the block's size. */
static uint64_t layer_state_layout(const struct layer_kinds *k, const struct model_config *c,
                                   uint32_t capacity, uint32_t tp, struct seq_state *s)
{
    const struct sublayer_kind *kinds[3] = {k->attn, k->ff, k->sru};
    struct seq_state_part *parts[3] = {&s->attn, &s->ff, &s->sru};
    struct carve cv = {NULL, 0};
    for (int i = 0; i < 3; i++) {
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
    struct seq_state s;
    if (layer_kinds_pick(c, &k, &err)) return 0;
    return layer_state_layout(&k, c, capacity, tp, &s);
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
    uint64_t need = L * model_layer_state_bytes(cfg, capacity);
    if (need > stf_memory_limit())
        return stf_fail(err, STF_ERR_NOMEM,
                        "a sequence's caches (%u positions x %llu layers x d=%u) need %.3g GB, "
                        "more than the %.3g GB of memory this process may use (use a smaller "
                        "--ctx or more ranks)",
                        capacity, (unsigned long long)L, cfg->d_model, (double)need / 1e9,
                        (double)stf_memory_limit() / 1e9);
    struct seq_state *s = calloc(1, sizeof *s);
    if (!s) return stf_fail(err, STF_ERR_NOMEM, "out of memory for sequence state");
    s->layer_begin = layer_begin;
    s->layer_end = layer_end;
    s->capacity = capacity;
    s->tp = tp ? tp : 1;
    s->layer_bytes = layer_state_layout(&kinds, cfg, capacity, s->tp, s);
    s->data = stf_alloc(L * s->layer_bytes + (L == 0)); /* 1 byte when no layer */
    if (!s->data) {
        uint64_t bytes = L * s->layer_bytes;
        seq_state_free(s);
        return stf_fail(err, STF_ERR_NOMEM,
                        "out of memory for the state of %u positions x %llu layers (%llu bytes)",
                        capacity, (unsigned long long)L, (unsigned long long)bytes);
    }
    *out = s;
    return STF_OK;
}

void seq_state_reset(struct seq_state *s)
{
    const struct seq_state_part *parts[3] = {&s->attn, &s->ff, &s->sru};
    for (uint64_t l = 0; l < s->layer_end - s->layer_begin; l++)
        for (int i = 0; i < 3; i++)
            memset(s->data + l * s->layer_bytes + parts[i]->offset, 0, parts[i]->reset_bytes);
}

void seq_state_free(struct seq_state *s)
{
    if (!s) return;
    stf_free(s->data);
    free(s);
}

/* The largest scratch of the model's kinds: they run one after another. */
static uint64_t scratch_bytes(const struct layer_kinds *k, const struct model_config *c,
                              uint32_t capacity, uint32_t tp)
{
    const struct sublayer_kind *kinds[4] = {k->attn, k->ff, k->sru, k->out};
    uint64_t most = 64;
    for (int i = 0; i < 4; i++) {
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

uint32_t forward_layers(const struct model *m, struct seq_state *s, struct workspace *ws,
                        uint32_t pos, float *x)
{
    const struct model_config *c = &m->cfg;
    const struct layer_kinds *kind = &m->kinds;
    uint32_t d = c->d_model;
    struct sublayer_step step = {.cfg = c,
                                 .k = ws->k,
                                 .scratch = ws->scratch,
                                 .capacity = s->capacity,
                                 .pos = pos,
                                 .tp = s->tp > 1 ? ws->tp : NULL};
    double t = prof_start(ws);
    for (uint32_t l = s->layer_begin; l < s->layer_end; l++) {
        const struct layer_weights *lw = &m->w.layers[l];
        unsigned char *state = s->data + (uint64_t)(l - s->layer_begin) * s->layer_bytes;
        /* x += Attn(LN1(x)) */
        layernorm(ws->xn, x, view_f32(&lw->ln1_g), view_f32(&lw->ln1_b), d);
        t = prof_lap(ws, FWD_NORM, t);
        step.w = lw->attn;
        step.state = state + s->attn.offset;
        kind->attn->forward(&step, ws->xn, ws->sub);
        t = prof_lap(ws, FWD_ATTN, t);
        for (uint32_t i = 0; i < d; i++)
            x[i] += ws->sub[i];
        t = prof_lap(ws, FWD_RESIDUAL, t);
        /* x += FF(LN2(x)) [+ Dense_o(SRU(Dense_i(LN'(x))))] */
        if (kind->sru) {
            step.w = lw->sru;
            step.state = state + s->sru.offset;
            kind->sru->forward(&step, x, ws->sru_out);
            t = prof_lap(ws, FWD_SRU, t);
        }
        layernorm(ws->xn, x, view_f32(&lw->ln2_g), view_f32(&lw->ln2_b), d);
        t = prof_lap(ws, FWD_NORM, t);
        step.w = lw->ff;
        step.state = state + s->ff.offset;
        kind->ff->forward(&step, ws->xn, ws->sub);
        t = prof_lap(ws, FWD_FF, t);
        if (kind->sru) {
            for (uint32_t i = 0; i < d; i++)
                x[i] += ws->sub[i] + ws->sru_out[i];
        } else {
            for (uint32_t i = 0; i < d; i++)
                x[i] += ws->sub[i];
        }
        t = prof_lap(ws, FWD_RESIDUAL, t);
        if (!all_finite(x, d)) return l;
    }
    return FORWARD_FINITE;
}

uint32_t forward_head(const struct model *m, struct workspace *ws, const float *x, float *logits)
{
    const struct model_config *c = &m->cfg;
    struct sublayer_step step = {.cfg = c, .k = ws->k, .w = m->w.out, .scratch = ws->scratch};
    /* logits = Out(LN_f(x)) */
    double t = prof_start(ws);
    layernorm(ws->xn, x, view_f32(&m->w.lnf_g), view_f32(&m->w.lnf_b), c->d_model);
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

/* Points ws->states at each row's part (offset) of layer l. */
static void rows_states(struct seq_state *const *s, struct batch_workspace *ws, uint32_t rows,
                        uint32_t l, uint64_t offset)
{
    for (uint32_t r = 0; r < rows; r++)
        ws->states[r] = s[r]->data + (uint64_t)(l - s[r]->layer_begin) * s[r]->layer_bytes + offset;
}

/* The same sums as forward_layers, row by row for the element-wise parts. */
void forward_layers_rows(const struct model *m, struct seq_state *const *s,
                         struct batch_workspace *ws, const uint32_t *pos, uint32_t rows, float *x)
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
    for (uint32_t l = s[0]->layer_begin; l < s[0]->layer_end; l++) {
        const struct layer_weights *lw = &m->w.layers[l];
        /* x += Attn(LN1(x)) */
        for (uint32_t r = 0; r < rows; r++)
            layernorm(ws->xn + (uint64_t)r * d, x + (uint64_t)r * d, view_f32(&lw->ln1_g),
                      view_f32(&lw->ln1_b), d);
        step.w = lw->attn;
        rows_states(s, ws, rows, l, s[0]->attn.offset);
        kind->attn->forward_rows(&step, ws->xn, ws->sub);
        for (uint64_t i = 0; i < n; i++)
            x[i] += ws->sub[i];
        /* x += FF(LN2(x)) [+ Dense_o(SRU(Dense_i(LN'(x))))] */
        if (kind->sru) {
            step.w = lw->sru;
            rows_states(s, ws, rows, l, s[0]->sru.offset);
            kind->sru->forward_rows(&step, x, ws->sru_out);
        }
        for (uint32_t r = 0; r < rows; r++)
            layernorm(ws->xn + (uint64_t)r * d, x + (uint64_t)r * d, view_f32(&lw->ln2_g),
                      view_f32(&lw->ln2_b), d);
        step.w = lw->ff;
        rows_states(s, ws, rows, l, s[0]->ff.offset);
        kind->ff->forward_rows(&step, ws->xn, ws->sub);
        if (kind->sru) {
            for (uint64_t i = 0; i < n; i++)
                x[i] += ws->sub[i] + ws->sru_out[i];
        } else {
            for (uint64_t i = 0; i < n; i++)
                x[i] += ws->sub[i];
        }
    }
}

void forward_head_rows(const struct model *m, struct batch_workspace *ws, const float *x,
                       uint32_t rows, float *logits)
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
}
