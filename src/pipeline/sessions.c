/* sessions: see sessions.h. */
#include "pipeline/sessions.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/lsh.h"

enum stf_status sessions_init(struct session_table *t, uint32_t n_slots, struct stf_error *err)
{
    memset(t, 0, sizeof *t);
    t->n_slots = n_slots;
    t->next_id = 1;
    if (!(t->slot_owner = calloc(n_slots ? n_slots : 1, sizeof *t->slot_owner)))
        return stf_fail(err, STF_ERR_NOMEM, "out of memory for %u cache slots", n_slots);
    return STF_OK;
}

static void session_destroy(struct session *s)
{
    free(s->tokens);
    sampler_destroy(&s->smp);
    free(s);
}

void sessions_free(struct session_table *t)
{
    for (uint32_t i = 0; i < t->n_live; i++)
        session_destroy(t->live[i]);
    free(t->live);
    free(t->slot_owner);
    memset(t, 0, sizeof *t);
}

enum stf_status sessions_add(struct session_table *t, const uint32_t *history, uint32_t n_prompt,
                             uint32_t n_generated, uint32_t max_tokens,
                             const struct sampler_params *sp, uint32_t vocab, struct session **out,
                             struct stf_error *err)
{
    *out = NULL;
    if (t->n_live == t->cap_live) {
        uint32_t cap = t->cap_live ? 2 * t->cap_live : 16;
        struct session **grown = realloc(t->live, cap * sizeof *grown);
        if (!grown) return stf_fail(err, STF_ERR_NOMEM, "out of memory for a session");
        t->live = grown;
        t->cap_live = cap;
    }
    struct session *s = calloc(1, sizeof *s);
    if (!s || !(s->tokens = malloc(((size_t)n_prompt + max_tokens) * sizeof *s->tokens))) {
        free(s);
        return stf_fail(err, STF_ERR_NOMEM, "out of memory for a session of %u + %u tokens",
                        n_prompt, max_tokens);
    }
    enum stf_status st = sampler_create(&s->smp, sp, vocab, err);
    if (st) {
        free(s->tokens);
        free(s);
        return st;
    }
    memcpy(s->tokens, history, ((size_t)n_prompt + n_generated) * sizeof *s->tokens);
    s->id = t->next_id++;
    s->lsh_seed = lsh_sequence_seed(sp->seed); /* LSH rotations follow the sampler's seed */
    s->n_prompt = n_prompt;
    s->n_tokens = n_prompt + n_generated;
    s->max_tokens = max_tokens;
    s->slot = -1;
    s->phase = SESSION_WAITING;
    s->queued = ++t->clock;
    t->live[t->n_live++] = s;
    *out = s;
    return STF_OK;
}

static int free_slot(const struct session_table *t)
{
    for (uint32_t i = 0; i < t->n_slots; i++)
        if (!t->slot_owner[i]) return (int)i;
    return -1;
}

/* The waiting session queued first (FIFO), or NULL. */
static struct session *first_waiting(const struct session_table *t)
{
    struct session *w = NULL;
    for (uint32_t i = 0; i < t->n_live; i++) {
        struct session *s = t->live[i];
        if (s->phase == SESSION_WAITING && !s->cancel && (!w || s->queued < w->queued)) w = s;
    }
    return w;
}

static struct session *eviction_victim(const struct session_table *t)
{
    struct session *v = NULL;
    for (uint32_t i = 0; i < t->n_live; i++) {
        struct session *s = t->live[i];
        if (s->phase == SESSION_READY && !s->cancel && s->since_admit >= SESSIONS_EVICT_AFTER &&
            (!v || s->last_used < v->last_used))
            v = s;
    }
    return v;
}

void sessions_admit(struct session_table *t, FILE *log)
{
    struct session *w;
    while ((w = first_waiting(t))) {
        int slot = free_slot(t);
        if (slot < 0) {
            struct session *v = eviction_victim(t);
            if (!v) return;
            slot = v->slot;
            if (log)
                fprintf(log,
                        "sparsetf-dist: cache slots full: evicting session %llu (slot %d, %u "
                        "positions cached; recomputed when readmitted) for session %llu\n",
                        (unsigned long long)v->id - 1, slot, v->fill,
                        (unsigned long long)w->id - 1);
            t->evictions++;
            v->phase = SESSION_WAITING;
            v->slot = -1;
            v->fill = 0;
            v->queued = ++t->clock;
            t->slot_owner[slot] = NULL;
        }
        w->slot = slot;
        w->fill = 0;
        w->need_reset = true;
        w->since_admit = 0;
        w->last_used = ++t->clock;
        w->phase = SESSION_READY;
        t->slot_owner[slot] = w;
    }
}

struct session *sessions_next_ready(struct session_table *t)
{
    struct session *best = NULL;
    for (uint32_t i = 0; i < t->n_live; i++) {
        struct session *s = t->live[i];
        if (s->phase == SESSION_READY && !s->cancel && (!best || s->last_used < best->last_used))
            best = s;
    }
    return best;
}

struct session *sessions_find(const struct session_table *t, uint64_t id)
{
    for (uint32_t i = 0; i < t->n_live; i++)
        if (t->live[i]->id == id) return t->live[i];
    return NULL;
}

void sessions_end(struct session_table *t, struct session *s)
{
    if (s->slot >= 0 && t->slot_owner[s->slot] == s) t->slot_owner[s->slot] = NULL;
    for (uint32_t i = 0; i < t->n_live; i++)
        if (t->live[i] == s) {
            memmove(&t->live[i], &t->live[i + 1], (t->n_live - i - 1) * sizeof *t->live);
            t->n_live--;
            break;
        }
    session_destroy(s);
}
