/*
 * journal: rank 0's append-only record of a generation job (`sparsetf-dist --journal DIR`),
 * so that a job restarted after a crash resumes every unfinished session and replays the
 * finished ones (docs/reliability.md). The file is DIR/journal; one job uses it at a time
 * (an exclusive lock while open).
 *
 * Records, each written with one write(2) as it happens (a killed process loses none of
 * them; the header and every session end are also flushed to the disk):
 *
 *   u32 length L | u32 CRC-32C of the L bytes | L bytes: u8 kind, then the body
 *
 *   JOURNAL_HEADER   the job's identity: "key=value\n" lines (model, sampling options,
 *                    output options, session count) that a restart must match exactly
 *   JOURNAL_SESSION  u32 index, u64 sampler seed, u32 n_prompt, n_prompt u32 ids
 *   JOURNAL_TOKEN    u32 index, u32 token, the sampler's generator state after it
 *                    (4 u64, u32 has_spare, f32 spare)
 *   JOURNAL_END      u32 index, u32 end (enum journal_end), u64 bytes of its logits file
 *
 * all little-endian. Reading stops at the first record that is cut short or fails its
 * checksum (a write torn by a crash): that record and everything after it are dropped (the
 * file is truncated there) and their work is recomputed, never misread — the output of a
 * resumed session does not depend on where its journal ends.
 *
 * Ownership: the journal owns its sessions' recovered arrays (valid until journal_close).
 * Records are built in a buffer allocated at open; appending allocates nothing.
 */
#ifndef STF_PIPELINE_JOURNAL_H
#define STF_PIPELINE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/rng.h"
#include "util/status.h"

enum journal_end {
    JOURNAL_END_LENGTH = 1, /* max_tokens generated */
    JOURNAL_END_EOS = 2,    /* the end-of-text token */
    JOURNAL_END_STOP = 3,   /* a stop string */
};

/* What the journal holds of one session (index 0..n_sessions-1). */
struct journal_session {
    bool started;     /* a JOURNAL_SESSION record */
    uint64_t seed;    /* the sampler seed it was started with */
    uint32_t *prompt; /* (n_prompt) */
    uint32_t n_prompt;
    uint32_t *tokens; /* (n_tokens) generated ids, in order */
    struct rng *rng;  /* (n_tokens) generator state after each token */
    uint32_t n_tokens, cap;
    bool ended; /* a JOURNAL_END record */
    enum journal_end end;
    uint64_t dump_bytes; /* size of its logits file at the end (0 without one) */
};

struct journal {
    char *path; /* DIR/journal */
    int fd;
    uint32_t n_sessions;
    struct journal_session *s; /* (n_sessions) */
    bool resumed;              /* the file held a job (a header) when opened */
    uint64_t dropped_bytes;    /* bytes of a torn tail dropped at open */
    uint64_t dropped_at;       /* where they started */
    unsigned char *buf;        /* record scratch: header and prompt records are bigger */
    size_t cap;
};

/* Opens DIR/journal (creating DIR and the file when missing) for a job described by
 * header ("key=value\n" lines) with n_sessions sessions. An empty file (or one whose first
 * record is torn) starts a new journal: header is written. Otherwise the stored header must
 * equal it: else an error naming the first key that differs, with both values. max_prompt
 * sizes the record buffer (the longest prompt in ids). */
enum stf_status journal_open(const char *dir, const char *header, uint32_t n_sessions,
                             uint32_t max_prompt, struct journal **out, struct stf_error *err);
/* NULL is fine. */
void journal_close(struct journal *j);

enum stf_status journal_session(struct journal *j, uint32_t index, uint64_t seed,
                                const uint32_t *prompt, uint32_t n_prompt, struct stf_error *err);
enum stf_status journal_token(struct journal *j, uint32_t index, uint32_t token,
                              const struct rng *state, struct stf_error *err);
enum stf_status journal_end(struct journal *j, uint32_t index, enum journal_end end,
                            uint64_t dump_bytes, struct stf_error *err);

#endif
