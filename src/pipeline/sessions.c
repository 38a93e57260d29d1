/* sessions: see sessions.h. */
#include "pipeline/sessions.h"

#include <stdlib.h>
#include <string.h>

enum stf_status sessions_create(struct session_table *t, uint32_t n, uint32_t **prompts,
                                const uint32_t *prompt_len, uint32_t max_tokens,
                                const struct sampler_params *sp, uint32_t vocab, uint32_t n_slots,
                                struct stf_error *err)
{
    memset(t, 0, sizeof *t);
    enum stf_status st = STF_OK;
    t->s = calloc(n, sizeof *t->s);
    t->slot_owner = malloc(n_slots * sizeof *t->slot_owner);
    t->queue = calloc(n, sizeof *t->queue);
    if (!t->s || !t->slot_owner || !t->queue) {
        st = stf_fail(err, STF_ERR_NOMEM, "out of memory for %u sessions", n);
        goto fail;
    }
    t->n = n;
    t->n_slots = n_slots;
    for (uint32_t i = 0; i < n_slots; i++)
        t->slot_owner[i] = -1;
    for (uint32_t i = 0; i < n; i++) {
        struct session *s = &t->s[i];
        s->index = i;
        s->id = (uint64_t)i + 1;
        s->slot = -1;
        s->n_prompt = s->n_tokens = prompt_len[i];
        s->tokens = realloc(prompts[i], ((size_t)prompt_len[i] + max_tokens) * sizeof *s->tokens);
        if (!s->tokens) {
            s->tokens = prompts[i];
            prompts[i] = NULL;
            st = stf_fail(err, STF_ERR_NOMEM, "out of memory for session %u", i);
            t->n = i + 1;
            goto fail;
        }
        prompts[i] = NULL;
        struct sampler_params p = *sp;
        p.seed = sp->seed + i; /* documented: session i samples with seed + i */
        if ((st = sampler_create(&s->smp, &p, vocab, err))) {
            t->n = i + 1;
            goto fail;
        }
        t->queue[i] = i;
    }
    t->q_len = n;
    return STF_OK;
fail:
    sessions_free(t);
    return st;
}

void sessions_free(struct session_table *t)
{
    for (uint32_t i = 0; t->s && i < t->n; i++) {
        free(t->s[i].tokens);
        sampler_destroy(&t->s[i].smp);
    }
    free(t->s);
    free(t->slot_owner);
    free(t->queue);
    memset(t, 0, sizeof *t);
}

static void queue_push(struct session_table *t, uint32_t i)
{
    t->queue[(t->q_head + t->q_len++) % t->n] = i;
}

static uint32_t queue_pop(struct session_table *t)
{
    uint32_t i = t->queue[t->q_head];
    t->q_head = (t->q_head + 1) % t->n;
    t->q_len--;
    return i;
}

static int free_slot(const struct session_table *t)
{
    for (uint32_t i = 0; i < t->n_slots; i++)
        if (t->slot_owner[i] < 0) return (int)i;
    return -1;
}

static struct session *eviction_victim(struct session_table *t)
{
    struct session *v = NULL;
    for (uint32_t i = 0; i < t->n; i++) {
        struct session *s = &t->s[i];
        if (s->phase == SESSION_READY && s->since_admit >= SESSIONS_EVICT_AFTER &&
            (!v || s->last_used < v->last_used))
            v = s;
    }
    return v;
}

void sessions_admit(struct session_table *t, FILE *log)
{
    while (t->q_len) {
        int slot = free_slot(t);
        if (slot < 0) {
            struct session *v = eviction_victim(t);
            if (!v) return;
            slot = v->slot;
            if (log)
                fprintf(log,
                        "sparsetf-dist: cache slots full: evicting session %u (slot %d, %u "
                        "positions cached; recomputed when readmitted) for session %u\n",
                        v->index, slot, v->fill, t->queue[t->q_head]);
            t->evictions++;
            v->phase = SESSION_WAITING;
            v->slot = -1;
            v->fill = 0;
            t->slot_owner[slot] = -1;
            queue_push(t, v->index);
        }
        struct session *s = &t->s[queue_pop(t)];
        s->slot = slot;
        s->fill = 0;
        s->need_reset = true;
        s->since_admit = 0;
        s->last_used = ++t->clock;
        s->phase = SESSION_READY;
        t->slot_owner[slot] = (int)s->index;
    }
}

void sessions_release(struct session_table *t, struct session *s)
{
    if (s->slot >= 0) t->slot_owner[s->slot] = -1;
    s->slot = -1;
}

struct session *sessions_next_ready(struct session_table *t)
{
    struct session *best = NULL;
    for (uint32_t i = 0; i < t->n; i++) {
        struct session *s = &t->s[i];
        if (s->phase == SESSION_READY && (!best || s->last_used < best->last_used)) best = s;
    }
    return best;
}

bool sessions_all_done(const struct session_table *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        if (t->s[i].phase != SESSION_DONE) return false;
    return true;
}
