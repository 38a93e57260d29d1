/*
 * sessions: rank 0's session table — each prompt is a session with its token history, its
 * own sampler (seeded with --seed + the session's index, so its output does not depend on
 * the other sessions), its cache slot and how many of its positions that slot holds.
 *
 * Slots are the job's cache slots (the same count on every rank). Sessions are admitted in
 * input order while slots are free; when none is free and sessions wait, the least recently
 * used session that is between frames and has run at least SESSIONS_EVICT_AFTER tokens since
 * its admission is evicted (a message on stderr) and queued again: when readmitted, its
 * whole history is prefilled again into a reset slot, which reproduces its caches exactly.
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
    SESSION_DONE,
};

struct session {
    uint32_t index;   /* input order */
    uint64_t id;      /* on the wire: index + 1 */
    uint32_t *tokens; /* prompt then generated ids; capacity n_prompt + max_tokens */
    uint32_t n_prompt, n_tokens;
    uint32_t fill;   /* positions of tokens[] cached in the slot */
    int slot;        /* -1 when waiting or done */
    bool need_reset; /* the next frame resets the slot */
    uint32_t dumped; /* positions whose logits were written to the dump */
    uint32_t since_admit;
    uint64_t last_used;
    uint32_t in_flight_rows;
    double t_sent;
    enum session_phase phase;
    struct sampler smp;
    FILE *dump;
};

struct session_table {
    struct session *s;
    uint32_t n;
    uint32_t n_slots;
    int *slot_owner; /* (n_slots) session index or -1 */
    uint32_t *queue; /* waiting sessions, FIFO ring of n entries */
    uint32_t q_head, q_len;
    uint64_t clock;
    uint32_t evictions;
};

/* Takes ownership of the malloc'd prompts[i] it stores, setting each to NULL; on failure the
 * caller still frees the entries that are not NULL. */
enum stf_status sessions_create(struct session_table *t, uint32_t n, uint32_t **prompts,
                                const uint32_t *prompt_len, uint32_t max_tokens,
                                const struct sampler_params *sp, uint32_t vocab, uint32_t n_slots,
                                struct stf_error *err);
void sessions_free(struct session_table *t);

/* Admits waiting sessions into free slots, evicting as described above. */
void sessions_admit(struct session_table *t, FILE *log);
/* The session gave its slot back (it ended). */
void sessions_release(struct session_table *t, struct session *s);
/* The READY session used least recently, or NULL. */
struct session *sessions_next_ready(struct session_table *t);
bool sessions_all_done(const struct session_table *t);

#endif
