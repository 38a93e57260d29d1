/* slots: see slots.h. */
#include "pipeline/slots.h"

#include <stdlib.h>

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
