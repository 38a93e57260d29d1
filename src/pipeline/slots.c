/* slots: see slots.h. */
#include "pipeline/slots.h"

#include <stdlib.h>

#include "model/layer_kinds.h"

enum stf_status slots_create(const struct model_config *cfg, int rank, uint32_t layer_begin,
                             uint32_t layer_end, uint32_t n, uint32_t capacity, uint32_t tp,
                             struct slot_table **out, struct stf_error *err)
{
    *out = NULL;
    struct slot_table *t = calloc(1, sizeof *t);
    if (!t || !(t->slots = calloc(n, sizeof *t->slots))) {
        free(t);
        return stf_fail(err, STF_ERR_NOMEM, "rank %d: out of memory for %u cache slots", rank, n);
    }
    t->cfg = cfg;
    t->rank = rank;
    t->n = n;
    t->capacity = capacity;
    if (layer_end > layer_begin)
        for (uint32_t i = 0; i < n; i++) {
            enum stf_status st = seq_state_create_tp(cfg, layer_begin, layer_end, capacity, tp,
                                                     &t->slots[i].state, err);
            if (st) {
                slots_free(t);
                return stf_wrap(err, "rank %d: cache slot %u", rank, i);
            }
        }
    *out = t;
    return STF_OK;
}

void slots_free(struct slot_table *t)
{
    if (!t) return;
    for (uint32_t i = 0; t->slots && i < t->n; i++)
        seq_state_free(t->slots[i].state);
    free(t->slots);
    free(t);
}

static void slot_reset(struct slot *s, uint64_t session)
{
    if (s->state) seq_state_reset(s->state);
    s->owned = true;
    s->session = session;
    s->fill = 0;
}

static const struct frame_lsh_drop *find_drop(const struct frame_cache *c, uint32_t l)
{
    for (uint32_t i = 0; i < c->n_drops; i++)
        if (c->drops[i].layer == l) return &c->drops[i];
    return NULL;
}

/* SPEC §2: the LSH part of rank 0's directive against this rank's LSH caches of slot s,
 * then applied (seed, drops). Nothing changes unless every check passes. */
static enum stf_status lsh_apply(const struct slot_table *t, struct slot *s, const struct frame *f,
                                 int from, struct stf_error *err)
{
    const struct model_config *c = t->cfg;
    const struct frame_cache *fc = &f->cache;
    const char *kn = frame_kind_name(f->kind);
    unsigned long long sess = (unsigned long long)f->session;
    if (!c->lsh_period) {
        if (fc->n_drops || fc->rotation_seed)
            return stf_fail(err, STF_ERR_PROTOCOL,
                            "rank %d: %s frame from rank %d for session %llu carries LSH cache "
                            "events, but the model has no LSH attention",
                            t->rank, kn, from, sess);
        return STF_OK;
    }
    uint32_t n_sub = c->n_layers * model_attn_per_layer(c);
    for (uint32_t i = 0; i < fc->n_drops; i++) {
        const struct frame_lsh_drop *e = &fc->drops[i];
        if (e->layer >= n_sub || !model_sublayer_is_lsh(c, e->layer) ||
            (i && e->layer <= fc->drops[i - 1].layer) || e->count != c->lsh_drop_len)
            return stf_fail(err, STF_ERR_PROTOCOL,
                            "rank %d: %s frame from rank %d for session %llu: LSH drop event %u "
                            "(sub-layer %u, %u entries) is not a drop of D = %u in an LSH "
                            "sub-layer, in increasing sub-layer order",
                            t->rank, kn, from, sess, i, e->layer, e->count, c->lsh_drop_len);
    }
    /* drops fall at the same positions in every LSH sub-layer: all of them or none */
    if (fc->n_drops && fc->n_drops != model_lsh_sublayers(c))
        return stf_fail(err, STF_ERR_PROTOCOL,
                        "rank %d: LSH directive disagrees: %s frame from rank %d for session %llu "
                        "at position %u orders drops in %u LSH sub-layers, but the model has %u "
                        "(a drop is for all of them or none)",
                        t->rank, kn, from, sess, f->position, fc->n_drops, model_lsh_sublayers(c));
    if (!s->state) return STF_OK;
    uint32_t l;
    void *st;
    for (uint32_t i = 0; seq_state_lsh(s->state, i, &l, &st); i++) {
        struct lsh_cache_info info;
        attn_lsh_info(c, st, &info);
        if (info.seeded && info.sigma != fc->rotation_seed)
            return stf_fail(err, STF_ERR_PROTOCOL,
                            "rank %d: LSH directive disagrees: %s frame from rank %d says session "
                            "%llu has rotation seed 0x%016llx, but LSH sub-layer %u here holds "
                            "seed 0x%016llx for it",
                            t->rank, kn, from, sess, (unsigned long long)fc->rotation_seed, l,
                            (unsigned long long)info.sigma);
        int want = model_lsh_drop_before(c, info.end) != 0, got = find_drop(fc, l) != NULL;
        if (want != got)
            return stf_fail(err, STF_ERR_PROTOCOL,
                            "rank %d: LSH directive disagrees: %s frame from rank %d for session "
                            "%llu at position %u %s a drop in LSH sub-layer %u, whose cache here "
                            "holds %u of P = %u entries",
                            t->rank, kn, from, sess, f->position, got ? "orders" : "lacks", l,
                            info.end, c->lsh_cache_len);
        uint32_t end = info.end - (got ? c->lsh_drop_len : 0);
        if ((uint64_t)end + f->rows > c->lsh_cache_len)
            return stf_fail(err, STF_ERR_PROTOCOL,
                            "rank %d: %s frame from rank %d for session %llu: %u rows do not fit "
                            "in LSH sub-layer %u's cache (%u of P = %u entries held after drops)",
                            t->rank, kn, from, sess, f->rows, l, end, c->lsh_cache_len);
    }
    for (uint32_t i = 0; seq_state_lsh(s->state, i, &l, &st); i++) {
        struct lsh_cache_info info;
        attn_lsh_info(c, st, &info);
        if (!info.seeded) attn_lsh_seed(c, st, fc->rotation_seed, l);
        if (find_drop(fc, l)) attn_lsh_drop(c, st, c->lsh_drop_len);
    }
    return STF_OK;
}

enum stf_status slots_apply(struct slot_table *t, const struct frame *f, int from,
                            struct slot **slot, struct stf_error *err)
{
    *slot = NULL;
    const struct frame_cache *c = &f->cache;
    const char *kn = frame_kind_name(f->kind);
    if (c->slot >= t->n)
        return stf_fail(err, STF_ERR_PROTOCOL, "rank %d: %s frame from rank %d names slot %u of %u",
                        t->rank, kn, from, c->slot, t->n);
    struct slot *s = &t->slots[c->slot];
    switch (f->kind) {
    case FRAME_RESET:
        slot_reset(s, f->session);
        return STF_OK;
    case FRAME_CLOSE:
        if (!s->owned || s->session != f->session) goto disagree;
        s->owned = false;
        s->fill = 0;
        return STF_OK;
    case FRAME_PREFILL:
    case FRAME_DECODE:
        if (c->reset) slot_reset(s, f->session);
        if (!s->owned || s->session != f->session || s->fill != c->fill || f->position != s->fill)
            goto disagree;
        if ((uint64_t)s->fill + f->rows > t->capacity)
            return stf_fail(err, STF_ERR_PROTOCOL,
                            "rank %d: %s frame from rank %d: slot %u holds %u of %u positions, "
                            "no room for %u more",
                            t->rank, kn, from, c->slot, s->fill, t->capacity, f->rows);
        enum stf_status st = lsh_apply(t, s, f, from, err);
        if (st) return st;
        *slot = s;
        return STF_OK;
    default:
        return stf_fail(err, STF_ERR_PROTOCOL,
                        "rank %d: %s frame from rank %d carries no cache directive", t->rank, kn,
                        from);
    }
disagree:
    if (s->owned)
        return stf_fail(err, STF_ERR_PROTOCOL,
                        "rank %d: cache directive disagrees: %s frame from rank %d says session "
                        "%llu at position %u with slot %u filled to %u, but slot %u here holds "
                        "session %llu filled to %u",
                        t->rank, kn, from, (unsigned long long)f->session, f->position, c->slot,
                        c->fill, c->slot, (unsigned long long)s->session, s->fill);
    return stf_fail(err, STF_ERR_PROTOCOL,
                    "rank %d: cache directive disagrees: %s frame from rank %d is for session "
                    "%llu in slot %u (filled to %u), but slot %u here is free (no reset was sent)",
                    t->rank, kn, from, (unsigned long long)f->session, c->slot, c->fill, c->slot);
}

void slots_advance(struct slot *s, uint32_t rows)
{
    s->fill += rows;
}
