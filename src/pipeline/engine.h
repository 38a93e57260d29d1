/*
 * engine: the one token loop of sparsetf, under every front end (sparsetf-dist generation,
 * --local, --eval, the HTTP server). It runs on rank 0 of a job; the other ranks run
 * engine_run_stage. A front end:
 *
 *   struct run_config rc;            run_config_resolve(&settings, n_ranks, n, &rc, &err);
 *   struct engine *e;                engine_open(&rc, transport, &e, &err);
 *   for each request:                engine_submit(e, &req, &callbacks, user, &id, &err);
 *   while (!engine_idle(e))          engine_step(e, 0.01, &err);  (+ its own work)
 *                                    engine_finish(e, &report, &err);  engine_close(e);
 *
 * Sessions. A request (prompt ids, max_tokens, sampler params with their own seed) becomes
 * a session with a new id (1, 2, ...). Sessions may be submitted at any time, also from a
 * callback; they are admitted to the job's cache slots in submission order, and when slots
 * are short the least recently used session that has run a few tokens is evicted and later
 * recomputed (sessions.h). A session's tokens and logits do not depend on the other sessions,
 * the rank count, the slot count or the prefill chunk: its sampler is seeded from its own
 * seed, and every row goes through the same kernels in the same order.
 *
 * Callbacks run inside engine_step (or engine_run_until_idle), on the caller's thread:
 *   on_logits  (optional, only with req.all_logits) every logits row the session computes,
 *              in position order, each once — prompt positions and generated ones;
 *   on_token   each sampled token as soon as it is sampled, with the logits row it was
 *              sampled from and whether it ends the session;
 *   on_end     once per session, last, with the reason.
 * A callback returning non-zero cancels its session (on_end follows with
 * ENGINE_END_CANCELLED, unless the token was the last anyway). Borrowed pointers (logits)
 * are valid only during the call. Callbacks may call engine_submit and engine_cancel.
 *
 * Memory: buffers are allocated at open and per session at submit; steps allocate nothing.
 * Errors: engine_step fails only when the job is broken (a peer stuck, gone or breaking the
 * protocol); on a multi-rank job the front end then ends it with engine_abort, which names
 * rank 0 and does not return.
 */
#ifndef STF_PIPELINE_ENGINE_H
#define STF_PIPELINE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/sampler.h"
#include "pipeline/run_config.h"
#include "transport/transport.h"
#include "util/status.h"

struct engine;
struct model;

struct engine_request {
    const uint32_t *prompt; /* (n_prompt) token ids, each < vocab; copied at submit */
    uint32_t n_prompt;      /* >= 1; n_prompt + max_tokens <= the job's ctx */
    uint32_t max_tokens;    /* tokens to generate; 0 = only the prompt's logits */
    struct sampler_params sampling;
    bool all_logits; /* on_logits for every row the session computes */
    /* A session resumed from a journal: the last n_generated prompt ids are tokens it had
     * already generated (they count toward max_tokens, and its history is recomputed like an
     * evicted session's), and rng, when not NULL, is its sampler's generator state after
     * them (engine_session_rng). 0 and NULL for a new session. */
    uint32_t n_generated;
    const struct rng *rng;
};

enum engine_end {
    ENGINE_END_LENGTH,    /* max_tokens generated (or 0 asked) */
    ENGINE_END_EOS,       /* the model's end-of-text token was sampled (and delivered) */
    ENGINE_END_CANCELLED, /* engine_cancel, or a callback returned non-zero */
    ENGINE_END_ERROR,     /* the engine closed or failed before the session ended, or the
                             session alone failed: a non-finite value in its computation
                             (engine_end_message says where; the other sessions go on) */
};

struct engine_callbacks {
    int (*on_logits)(void *user, uint64_t session, uint32_t position, const float *logits);
    int (*on_token)(void *user, uint64_t session, uint32_t token, const float *logits, bool last);
    void (*on_end)(void *user, uint64_t session, enum engine_end reason);
};

/* One rank's measurements (plain data, the same layout on every rank of a job). */
struct engine_rank_stats {
    int32_t rank;
    uint32_t layer_begin, layer_end;
    char host[64];
    double compute_s; /* embed, layers, head, sampling */
    double wire_s;    /* packing, decoding, checksums */
    double wait_s;    /* waiting for peers (probe/send loops and rank 0's idle polling) */
    double send_s;    /* handing frames to the transport (isend) */
    double coll_s;    /* collectives (start-up broadcasts, this report's gather excluded) */
    double load_s;
    uint64_t bytes_sent, frames_sent, frames_recv;
    uint64_t positions;    /* activation rows processed */
    uint64_t weight_bytes; /* mapped tensors (the rank's share of the model) */
    uint64_t rss_after_load, rss_end, peak_rss;
    /* tensor parallelism (T > 1): the rank's place in the grid and its collectives inside
     * the layers (part of compute_s: a collective waits for the stage's slowest rank) */
    uint32_t stage, tp_rank;
    double collective_s;
    uint64_t collectives, collective_bytes;
};

/* What engine_finish reports; borrowed until engine_close. */
struct engine_report {
    int n_ranks;
    const struct engine_rank_stats *ranks; /* n_ranks entries */
    uint64_t sessions, generated_tokens, decode_frames, positions;
    uint32_t slots, evictions;
    double wall_s;                          /* from the first submit to the last result */
    double latency_median_s, latency_p90_s; /* per decode frame (send to sampled token) */
};

/* Rank 0 of the job on transport t (a 1-endpoint loopback runs the whole model in this
 * process): maps rank 0's share of the model, allocates every buffer. rc and t must outlive
 * the engine. On a multi-rank job the stages are already waiting: after a failure the caller
 * ends the job with engine_abort. */
enum stf_status engine_open(const struct run_config *rc, struct transport *t, struct engine **out,
                            struct stf_error *err);
/* Releases everything; sessions still live end with ENGINE_END_ERROR. On a multi-rank job
 * call engine_finish first (or end the job with engine_abort): the stages wait for the
 * shutdown frame. NULL is fine. */
void engine_close(struct engine *e);

/* Queues a session; *session receives its id. Fails (nothing queued) on an empty prompt, an
 * id >= vocab, bad sampler params, n_generated > max_tokens or n_prompt - n_generated +
 * max_tokens longer than the ctx. */
enum stf_status engine_submit(struct engine *e, const struct engine_request *req,
                              const struct engine_callbacks *cb, void *user, uint64_t *session,
                              struct stf_error *err);
/* The generator state of a live session's sampler (as on_token sees it: after the token
 * just sampled); false for an unknown or ended id. */
bool engine_session_rng(const struct engine *e, uint64_t session, struct rng *out);

/* Cancels a session at the next safe point (a frame in flight comes back first); its slot
 * is freed and on_end(ENGINE_END_CANCELLED) follows in a later step. Unknown or ended ids
 * are ignored. */
void engine_cancel(struct engine *e, uint64_t session);

/* One round of work: admit and evict, send every frame that can go, receive results, sample,
 * call back. Waits at most timeout seconds for a result when nothing else can be done (0 =
 * never waits). Returns STF_OK also when there was nothing to do. A front end that keeps a
 * multi-rank job open while idle (a server) calls it at least every run_config.timeout / 2
 * seconds: an idle engine then sends a keep-alive round the ring, else the stages give up
 * after 2 * timeout + 2 s without a frame. */
enum stf_status engine_step(struct engine *e, double timeout, struct stf_error *err);
/* No session is waiting, running or in flight. */
bool engine_idle(const struct engine *e);
/* Steps until engine_idle. */
enum stf_status engine_run_until_idle(struct engine *e, struct stf_error *err);

/* Runs until idle, stops the stages (shutdown frame), gathers every rank's stats; the
 * engine accepts no more sessions. *report is borrowed until engine_close. */
enum stf_status engine_finish(struct engine *e, const struct engine_report **report,
                              struct stf_error *err);

/* The counters so far (sessions, tokens, evictions, latency; no per-rank stats: ranks is
 * NULL before engine_finish); borrowed until the next call on e. */
const struct engine_report *engine_progress(struct engine *e);

/* During on_end(ENGINE_END_ERROR) for a session that failed alone: why ("rank R: M: layer 3
 * produced a non-finite value ... at position P ..."); "" otherwise. Borrowed. */
const char *engine_end_message(const struct engine *e);

/* The model as mapped on rank 0 (embedding, head and the embedded tokenizer); borrowed. */
const struct model *engine_model(const struct engine *e);

/* Every rank but 0: receives frames, runs its layers, passes them on until the shutdown
 * frame, then sends its stats to rank 0. A failure ends the whole job (message naming the
 * rank); it returns only on success. */
enum stf_status engine_run_stage(const struct run_config *rc, struct transport *t,
                                 struct stf_error *err);

/* Prints "sparsetf-dist: error on rank R (host): <err>" and ends the job. */
_Noreturn void engine_abort(struct transport *t, const struct stf_error *err);

#endif
