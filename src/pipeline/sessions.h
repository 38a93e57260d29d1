/*
 * sessions: the one owner of rank 0's session lifecycle — admission, eviction, recompute
 * and end. Each session holds its token history, its own sampler (seeded from its request,
 * so its output does not depend on the other sessions), its cache slot and how many of its
 * positions that slot holds.
 *
 *   WAITING --admit--> READY --frame sent--> IN_FLIGHT --result--> READY ... --> ended
 *      ^                 |
 *      +----evict--------+   (history prefilled again into a reset slot when readmitted)
 *
 * Slots are the job's cache slots (the same count on every rank). Sessions are admitted in
 * submission order while slots are free; when none is free and sessions wait, the least
 * recently used session that is between frames and has run at least SESSIONS_EVICT_AFTER
 * tokens since its admission is evicted (a message on the log) and queued again: its whole
 * history is prefilled again into a reset slot, which reproduces its caches exactly.
 *
 * Sessions are allocated at add (prompt + max_tokens ids, the sampler) and freed at end;
 * admit, next_ready and find allocate nothing.
 */
#ifndef STF_PIPELINE_SESSIONS_H
#define STF_PIPELINE_SESSIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels/sampler.h"
#include "util/status.h"

#define SESSIONS_EVICT_AFTER 8u

enum session_phase {
    SESSION_WAITING,   /* no slot */
    SESSION_READY,     /* holds a slot; its next frame can be sent */
    SESSION_IN_FLIGHT, /* a frame of it is in the pipeline */
};

struct session {
    uint64_t id;      /* 1, 2, ... in submission order; on the wire */
    uint32_t *tokens; /* (n_prompt + max_tokens) prompt then generated ids */
    uint32_t n_prompt, n_tokens, max_tokens;
    uint32_t fill;     /* positions of tokens[] cached in the slot */
    uint64_t lsh_seed; /* SPEC §2 rotation seed σ = sm(sm(sampler seed)), docs/protocol.md */
    uint32_t lsh_end;  /* entries every LSH cache of the slot holds (rank 0's count) */
    int slot;          /* -1 when waiting */
    bool need_reset;   /* no frame sent since admission: the next one resets the slot */
    bool cancel;       /* end at the next safe point */
    bool all_logits;
    uint32_t logits_sent; /* positions whose logits went to on_logits */
    uint32_t since_admit; /* tokens sampled since admission */
    uint64_t last_used;
    uint64_t queued; /* when it last started waiting (FIFO order of admission) */
    uint32_t in_flight_rows;
    double t_sent;
    enum session_phase phase;
    struct sampler smp;
    void *owner; /* the engine's per-session data (callbacks) */
};

struct session_table {
    struct session **live; /* (n_live) sessions not yet ended, in submission order */
    uint32_t n_live, cap_live;
    uint32_t n_slots;
    struct session **slot_owner; /* (n_slots) or NULL */
    uint64_t next_id, clock;
    uint32_t evictions;
};

enum stf_status sessions_init(struct session_table *t, uint32_t n_slots, struct stf_error *err);
/* Frees every live session too. */
void sessions_free(struct session_table *t);

/* A new WAITING session with a copy of the history: the n_prompt prompt ids, then
 * n_generated ids it generated before (a resumed session; they count toward max_tokens);
 * *out is owned by the table. */
enum stf_status sessions_add(struct session_table *t, const uint32_t *history, uint32_t n_prompt,
                             uint32_t n_generated, uint32_t max_tokens,
                             const struct sampler_params *sp, uint32_t vocab, struct session **out,
                             struct stf_error *err);
/* Admits waiting sessions into free slots, evicting as described above (log may be NULL). */
void sessions_admit(struct session_table *t, FILE *log);
/* The READY session used least recently, or NULL. */
struct session *sessions_next_ready(struct session_table *t);
/* The live session with this id, or NULL. */
struct session *sessions_find(const struct session_table *t, uint64_t id);
/* Ends s: gives its slot back and frees it (s is invalid afterwards). */
void sessions_end(struct session_table *t, struct session *s);

#endif
