/* engine: rank 0 of a job — sessions (sessions.h), cache directives, embedding, its own
 * layers, the head and sampling; keeps every stage busy with a different session
 * (docs/architecture.md). See engine.h for the contract.
 *
 * Rank 0 never blocks on a send: frames go out through a small pool of buffers with
 * non-blocking sends while results are polled, so the ring of ranks cannot deadlock. */
#include "pipeline/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"
#include "pipeline/sessions.h"
#include "util/mem.h"
#include "util/timer.h"

#define SEND_BUFFERS    4
#define LATENCY_SAMPLES 65536 /* the most recent decode-frame latencies kept for the report */

struct control {
    enum frame_kind kind;
    uint64_t session;
    uint32_t slot;
};

/* What the engine keeps per session besides sessions.h's state. */
struct session_hooks {
    struct engine_callbacks cb;
    void *user;
};

struct engine {
    struct pipe p;
    struct session_table tab;
    float *logits; /* (V) */
    float *result; /* (d) one row returned by the last rank */
    unsigned char *sbuf[SEND_BUFFERS];
    int sreq[SEND_BUFFERS];
    bool busy[SEND_BUFFERS];
    struct control *ctrl; /* FIFO ring of c_cap: closes of ended sessions (<= n_slots) */
    uint32_t c_head, c_len, c_cap;
    double *latency; /* ring of LATENCY_SAMPLES seconds per decode frame */
    double *sorted;  /* (LATENCY_SAMPLES) scratch for the quantiles */
    uint64_t n_latency;
    uint32_t in_flight;
    double idle_since, t_first, t_last;
    double t_sent; /* the last frame sent to the next stage (or mirrored to partners) */
    uint64_t sessions, decode_frames, generated;
    bool finished;
    char end_message[FRAME_ERROR_LEN + 64]; /* why the session in on_end(ERROR) failed */
    struct engine_rank_stats *all;          /* (size) after finish */
    struct engine_report report;
};

/* ---- sending ---- */

/* Tests every busy send buffer; returns a free one, or -1. */
static int free_buffer(struct engine *e, struct stf_error *err, enum stf_status *st)
{
    int free_one = -1;
    for (int i = 0; i < SEND_BUFFERS; i++) {
        if (e->busy[i]) {
            bool done = false;
            if ((*st = transport_test(e->p.t, e->sreq[i], &done, err))) return -1;
            e->busy[i] = !done;
        }
        if (!e->busy[i] && free_one < 0) free_one = i;
    }
    return free_one;
}

static bool sends_pending(const struct engine *e)
{
    for (int i = 0; i < SEND_BUFFERS; i++)
        if (e->busy[i]) return true;
    return false;
}

static enum stf_status send_frame(struct engine *e, int buf, struct frame *f, struct stf_error *err)
{
    size_t len;
    enum stf_status st = pipe_pack(&e->p, f, e->sbuf[buf], e->p.max_frame, &len, err);
    if (!st)
        st = transport_isend(e->p.t, e->p.next, PIPE_TAG, e->sbuf[buf], len, &e->sreq[buf], err);
    if (!st) {
        e->busy[buf] = true;
        e->t_sent = stf_now();
    }
    return st;
}

/* An idle multi-rank job: the stages fail after 2 * timeout + 2 s without a frame (they
 * cannot tell a quiet pipeline from a dead rank 0), so every timeout / 2 s of quiet a reset
 * of slot 0 for session 0 goes round the ring. Harmless: no session holds a slot when the
 * engine is idle, and every admission resets its slot first. */
static enum stf_status keep_alive(struct engine *e, double now, struct stf_error *err)
{
    if (e->p.size == 1 || now - e->t_sent < e->p.rc->timeout / 2) return STF_OK;
    enum stf_status st = STF_OK;
    int buf = e->p.n_stages == 1 ? 0 : free_buffer(e, err, &st);
    if (st || buf < 0) return st;
    struct frame f = {.kind = FRAME_RESET, .session = 0, .cache = {.slot = 0}};
    if ((st = pipe_compute(&e->p, &f, 0, err))) return st; /* also mirrors it to partners */
    if (e->p.n_stages == 1) {
        e->t_sent = now;
        return STF_OK;
    }
    return send_frame(e, buf, &f, err);
}

/* ---- session ends ---- */

/* Ends s: a close frame frees its slot on every rank (unless no frame of it went out since
 * its admission: then no rank knows it), then on_end, then s is freed. A session that
 * failed (a non-finite value) gets a reset instead: the ranks after the one that failed
 * never saw its last frame, so they may not know it holds the slot. */
static void end_session(struct engine *e, struct session *s, enum engine_end reason)
{
    const enum frame_kind kind = e->end_message[0] ? FRAME_RESET : FRAME_CLOSE;
    if (s->slot >= 0 && !s->need_reset && e->c_len < e->c_cap)
        e->ctrl[(e->c_head + e->c_len++) % e->c_cap] =
            (struct control){.kind = kind, .session = s->id, .slot = (uint32_t)s->slot};
    struct session_hooks *h = s->owner;
    uint64_t id = s->id;
    sessions_end(&e->tab, s);
    if (h->cb.on_end) h->cb.on_end(h->user, id, reason);
    free(h);
    e->end_message[0] = 0;
}

/* A non-finite value in s's computation (err names where, from rank `rank`): s alone ends,
 * with ENGINE_END_ERROR and the message (engine_end_message); the job goes on. */
static void fail_session(struct engine *e, struct session *s, int rank, const char *msg)
{
    fprintf(stderr, "sparsetf-dist: session %llu stopped: rank %d: %s\n",
            (unsigned long long)s->id - 1, rank, msg);
    /* the message is at most a frame's error text (a stage's) or an stf_error (rank 0's) */
    snprintf(e->end_message, sizeof e->end_message, "rank %d: %.*s", rank,
             (int)sizeof e->end_message - 24, msg);
    s->phase = SESSION_READY;
    end_session(e, s, ENGINE_END_ERROR);
}

/* Sessions cancelled while not in flight end now. */
static void end_cancelled(struct engine *e)
{
    for (uint32_t i = 0; i < e->tab.n_live;) {
        struct session *s = e->tab.live[i];
        if (s->cancel && s->phase != SESSION_IN_FLIGHT)
            end_session(e, s, ENGINE_END_CANCELLED); /* removes live[i] */
        else
            i++;
    }
}

/* ---- results ---- */

static enum stf_status handle_rows(struct engine *e, struct session *s, bool decode,
                                   uint32_t position, uint32_t rows, const float *data,
                                   struct stf_error *err)
{
    struct pipe *p = &e->p;
    const struct model_config *cfg = p->cfg;
    struct session_hooks *h = s->owner;
    double t0 = stf_now();
    s->fill = position + rows;
    const bool last_chunk = s->fill == s->n_tokens;
    const uint32_t n_gen = s->n_tokens - s->n_prompt;
    const bool sample = last_chunk && n_gen < s->max_tokens && !s->cancel;
    for (uint32_t r = 0; r < rows; r++) {
        uint32_t pos = position + r;
        /* each row's logits go out once (a recomputed session computes rows again) */
        bool all = s->all_logits && pos == s->logits_sent && !s->cancel;
        if (!all && !(sample && r + 1 == rows)) continue;
        const size_t row = (size_t)p->lim.streams * cfg->d_model; /* floats per position */
        memcpy(e->result, data + r * row, row * sizeof(float));
        uint32_t bad = forward_head(p->m, p->ws, e->result, e->logits);
        if (bad != FORWARD_FINITE) {
            forward_fail_nonfinite(p->m, bad, pos, err);
            p->stats.compute_s += stf_now() - t0;
            fail_session(e, s, 0, err->msg);
            return STF_OK;
        }
        if (all) {
            s->logits_sent = pos + 1;
            if (h->cb.on_logits && h->cb.on_logits(h->user, s->id, pos, e->logits))
                s->cancel = true;
        }
    }
    double now = stf_now();
    if (!last_chunk || s->cancel || !sample) {
        p->stats.compute_s += now - t0;
        s->phase = SESSION_READY;
        if (s->cancel)
            end_session(e, s, ENGINE_END_CANCELLED);
        else if (last_chunk)
            end_session(e, s, ENGINE_END_LENGTH); /* max_tokens reached (or 0) */
        return STF_OK;
    }
    uint32_t next = sampler_sample_history(&s->smp, e->logits, s->tokens, s->n_tokens);
    s->tokens[s->n_tokens++] = next;
    e->generated++;
    const bool eos = next == cfg->eos_id;
    const bool last = eos || s->n_tokens - s->n_prompt == s->max_tokens;
    now = stf_now();
    p->stats.compute_s += now - t0;
    e->t_last = now;
    if (decode) {
        e->latency[e->n_latency++ % LATENCY_SAMPLES] = now - s->t_sent;
        e->decode_frames++;
    }
    s->phase = SESSION_READY;
    s->since_admit++;
    s->last_used = ++e->tab.clock;
    int stop = h->cb.on_token ? h->cb.on_token(h->user, s->id, next, e->logits, last) : 0;
    if (last)
        end_session(e, s, eos ? ENGINE_END_EOS : ENGINE_END_LENGTH);
    else if (stop)
        end_session(e, s, ENGINE_END_CANCELLED);
    return STF_OK;
}

/* A frame from the last rank: the result rows of a session's frame, or the shutdown echo. */
static enum stf_status handle_result(struct engine *e, const struct frame *f, int from,
                                     bool *shutdown_acked, struct stf_error *err)
{
    struct session *s =
        f->kind == FRAME_ERROR && f->session ? sessions_find(&e->tab, f->session) : NULL;
    if (s && s->phase == SESSION_IN_FLIGHT) { /* one session's fault (stage.c) */
        e->in_flight--;
        fail_session(e, s, f->origin_rank, f->error);
        return STF_OK;
    }
    if (f->kind == FRAME_ERROR)
        return stf_fail(err, STF_ERR_PROTOCOL, "rank %d reported a failure: %s", f->origin_rank,
                        f->error);
    if (f->kind == FRAME_SHUTDOWN) {
        *shutdown_acked = true;
        return STF_OK;
    }
    if (!frame_kind_has_rows(f->kind))
        return stf_fail(err, STF_ERR_PROTOCOL,
                        "rank 0: unexpected %s frame from rank %d (only results return)",
                        frame_kind_name(f->kind), from);
    s = sessions_find(&e->tab, f->session);
    if (!s || s->phase != SESSION_IN_FLIGHT || f->position != s->fill ||
        f->rows != s->in_flight_rows || (int)f->cache.slot != s->slot)
        return stf_fail(err, STF_ERR_PROTOCOL,
                        "rank 0: result from rank %d for session %llu (position %u, %u rows, "
                        "slot %u) matches no frame in flight",
                        from, (unsigned long long)f->session, f->position, f->rows, f->cache.slot);
    e->in_flight--;
    return handle_rows(e, s, f->kind == FRAME_DECODE, f->position, f->rows, f->data, err);
}

/* Builds the next frame of s in p->rows, runs rank 0's own layers, then sends it (or, on a
 * single rank, handles the result at once). */
static enum stf_status start_frame(struct engine *e, struct session *s, int buf,
                                   struct stf_error *err)
{
    struct pipe *p = &e->p;
    const struct model_config *cfg = p->cfg;
    const uint32_t d = cfg->d_model;
    const size_t row = (size_t)p->lim.streams * d; /* floats per position */
    uint32_t pending = s->n_tokens - s->fill;
    bool prefill = s->fill < s->n_prompt || pending > 1;
    uint32_t rows = prefill ? (pending < p->lim.max_rows ? pending : p->lim.max_rows) : 1;
    struct frame f = {.kind = prefill ? FRAME_PREFILL : FRAME_DECODE,
                      .session = s->id,
                      .position = s->fill,
                      .streams = p->lim.streams,
                      .width = d,
                      .dtype = FRAME_F32,
                      .cache = {.slot = (uint32_t)s->slot, .fill = s->fill, .reset = s->need_reset},
                      .data = p->rows};
    if (cfg->lsh_period) {
        /* SPEC §2: rank 0 decides the drops (every LSH sub-layer at once) and a frame's rows
         * never pass one: a prefill chunk ends where the caches fill up */
        if (s->need_reset) s->lsh_end = 0;
        uint32_t drop = model_lsh_drop_before(cfg, s->lsh_end);
        f.cache.rotation_seed = s->lsh_seed;
        for (uint32_t l = 0; drop && l < cfg->n_layers * model_attn_per_layer(cfg); l++)
            if (model_sublayer_is_lsh(cfg, l))
                f.cache.drops[f.cache.n_drops++] =
                    (struct frame_lsh_drop){.layer = l, .count = drop};
        s->lsh_end -= drop;
        if (rows > cfg->lsh_cache_len - s->lsh_end) rows = cfg->lsh_cache_len - s->lsh_end;
        s->lsh_end += rows;
    }
    f.rows = rows;
    f.data_len = rows * row * sizeof(float);
    s->t_sent = stf_now();
    for (uint32_t r = 0; r < rows; r++) {
        uint32_t bad = forward_embed(p->m, s->tokens[s->fill + r], s->fill + r, p->rows + r * row);
        if (bad != FORWARD_FINITE) {
            forward_fail_nonfinite(p->m, bad, s->fill + r, err);
            fail_session(e, s, 0, err->msg);
            return STF_OK;
        }
    }
    p->stats.compute_s += stf_now() - s->t_sent;
    s->need_reset = false;
    enum stf_status st = pipe_compute(p, &f, 0, err);
    if (st && p->nonfinite) {
        fail_session(e, s, 0, err->msg);
        return STF_OK;
    }
    if (st) return st;
    s->phase = SESSION_IN_FLIGHT;
    s->in_flight_rows = rows;
    if (p->n_stages == 1) {
        e->t_sent = s->t_sent; /* partners saw a frame: no keep-alive needed */
        return handle_rows(e, s, !prefill, f.position, rows, p->rows, err);
    }
    e->in_flight++;
    return send_frame(e, buf, &f, err);
}

static enum stf_status start_control(struct engine *e, int buf, struct stf_error *err)
{
    struct control k = e->ctrl[e->c_head];
    e->c_head = (e->c_head + 1) % e->c_cap;
    e->c_len--;
    struct frame f = {.kind = k.kind, .session = k.session, .cache = {.slot = k.slot}};
    enum stf_status st = pipe_compute(&e->p, &f, 0, err);
    if (st || e->p.n_stages == 1) return st;
    return send_frame(e, buf, &f, err);
}

/* ---- the loop ---- */

/* Sends what can go (at most SEND_BUFFERS frames, so a step returns promptly) and receives
 * every result that has arrived; *progress when anything happened. */
static enum stf_status round_of_work(struct engine *e, bool *shutdown_acked, bool *progress,
                                     struct stf_error *err)
{
    struct pipe *p = &e->p;
    enum stf_status st = STF_OK;
    end_cancelled(e);
    sessions_admit(&e->tab, stderr);
    for (int started = 0; started < SEND_BUFFERS; started++) {
        int buf = p->n_stages == 1 ? 0 : free_buffer(e, err, &st);
        if (st) return st;
        if (buf < 0) break;
        if (e->c_len) {
            if ((st = start_control(e, buf, err))) return st;
        } else {
            sessions_admit(&e->tab, stderr);
            struct session *s = sessions_next_ready(&e->tab);
            if (!s) break;
            if ((st = start_frame(e, s, buf, err))) return st;
        }
        *progress = true;
    }
    while (p->n_stages > 1) {
        bool found = false;
        struct transport_msg msg;
        if ((st = transport_iprobe(p->t, TRANSPORT_ANY_SOURCE, &found, &msg, err))) return st;
        if (!found) break;
        struct frame f;
        if ((st = transport_recv(p->t, &msg, p->rbuf, p->max_frame, err)) ||
            (st = pipe_decode(p, msg.len, msg.source, p->prev, &f, err)) ||
            (st = handle_result(e, &f, msg.source, shutdown_acked, err)))
            return st;
        *progress = true;
    }
    return STF_OK;
}

/* Fails when frames have been outstanding longer than the deadline without any progress. */
static enum stf_status check_deadline(struct engine *e, bool shutdown_sent, bool shutdown_acked,
                                      double now, struct stf_error *err)
{
    const double deadline = e->p.rc->timeout; /* only rank 0 knows what is in flight */
    const int last = e->p.prev;               /* the last stage's leader */
    if (!(e->in_flight || (shutdown_sent && !shutdown_acked) || sends_pending(e)) ||
        now - e->idle_since <= deadline)
        return STF_OK;
    if (e->in_flight)
        return stf_fail(err, STF_ERR_TRANSPORT,
                        "rank 0: timed out after %.0f s waiting for rank %d to return %u frame%s "
                        "in flight (frames pass ranks 1..%d in turn: one of them is stuck or gone)",
                        deadline, last, e->in_flight, e->in_flight == 1 ? "" : "s", last);
    return stf_fail(
        err, STF_ERR_TRANSPORT, "rank 0: timed out after %.0f s waiting for rank %d (%s)", deadline,
        shutdown_sent && !shutdown_acked ? last : 1,
        shutdown_sent && !shutdown_acked ? "shutdown acknowledgement" : "to receive a frame");
}

enum stf_status engine_step(struct engine *e, double timeout, struct stf_error *err)
{
    const double t_end = stf_now() + timeout;
    bool acked = false;
    for (;;) {
        bool progress = false;
        enum stf_status st = round_of_work(e, &acked, &progress, err);
        if (st) return st;
        if (acked)
            return stf_fail(err, STF_ERR_PROTOCOL, "rank 0: shutdown acknowledged before sent");
        double now = stf_now();
        if (progress || engine_idle(e)) {
            e->idle_since = now;
            return progress ? STF_OK : keep_alive(e, now, err);
        }
        if ((st = check_deadline(e, false, false, now, err))) return st;
        if (now >= t_end) return STF_OK;
        double t0 = now;
        transport_pause(now - e->idle_since);
        e->p.stats.wait_s += stf_now() - t0;
    }
}

bool engine_idle(const struct engine *e)
{
    return e->tab.n_live == 0 && e->c_len == 0 && e->in_flight == 0;
}

enum stf_status engine_run_until_idle(struct engine *e, struct stf_error *err)
{
    while (!engine_idle(e)) {
        enum stf_status st = engine_step(e, e->p.rc->timeout, err);
        if (st) return st;
    }
    return STF_OK;
}

/* ---- open, submit, finish ---- */

enum stf_status engine_open(const struct run_config *rc, struct transport *t, struct engine **out,
                            struct stf_error *err)
{
    *out = NULL;
    struct engine *e = calloc(1, sizeof *e);
    if (!e) return stf_fail(err, STF_ERR_NOMEM, "rank 0: out of memory");
    if (transport_rank(t) != 0) {
        free(e);
        return stf_fail(err, STF_ERR_ARG, "the engine runs on rank 0, not rank %d",
                        transport_rank(t));
    }
    enum stf_status st = pipe_open(&e->p, rc, t, err);
    if (!st) st = sessions_init(&e->tab, rc->n_slots, err);
    if (st) {
        engine_close(e);
        return st;
    }
    const struct model_config *cfg = e->p.cfg;
    e->logits = stf_alloc((size_t)cfg->vocab_size * sizeof(float));
    e->result = stf_alloc((size_t)model_streams(cfg) * cfg->d_model * sizeof(float));
    e->c_cap = rc->n_slots + 1;
    e->ctrl = calloc(e->c_cap, sizeof *e->ctrl);
    e->latency = calloc(LATENCY_SAMPLES, sizeof *e->latency);
    e->sorted = calloc(LATENCY_SAMPLES, sizeof *e->sorted);
    bool bufs = true;
    for (int i = 0; i < SEND_BUFFERS; i++)
        bufs = (e->sbuf[i] = stf_alloc(e->p.max_frame)) && bufs;
    if (!e->logits || !e->result || !e->ctrl || !e->latency || !e->sorted || !bufs) {
        engine_close(e);
        return stf_fail(err, STF_ERR_NOMEM, "rank 0: out of memory");
    }
    e->idle_since = e->t_sent = stf_now();
    *out = e;
    return STF_OK;
}

enum stf_status engine_submit(struct engine *e, const struct engine_request *req,
                              const struct engine_callbacks *cb, void *user, uint64_t *session,
                              struct stf_error *err)
{
    const struct model_config *cfg = e->p.cfg;
    const uint32_t ctx = e->p.rc->ctx;
    if (e->finished) return stf_fail(err, STF_ERR_ARG, "the engine has finished");
    if (req->n_prompt == 0) return stf_fail(err, STF_ERR_ARG, "the prompt is empty");
    for (uint32_t i = 0; i < req->n_prompt; i++)
        if (req->prompt[i] >= cfg->vocab_size)
            return stf_fail(err, STF_ERR_ARG,
                            "prompt token %u: id %u is out of range for a vocabulary of %u", i,
                            req->prompt[i], cfg->vocab_size);
    if (req->n_generated >= req->n_prompt || req->n_generated > req->max_tokens)
        return stf_fail(err, STF_ERR_ARG,
                        "a resumed session of %u ids cannot have generated %u of max_tokens %u",
                        req->n_prompt, req->n_generated, req->max_tokens);
    const uint32_t n_prompt = req->n_prompt - req->n_generated;
    if ((uint64_t)n_prompt + req->max_tokens > ctx)
        return stf_fail(err, STF_ERR_ARG,
                        "%u prompt tokens + max_tokens %u exceeds the context of %u positions",
                        n_prompt, req->max_tokens, ctx);
    enum stf_status st = sampler_params_check(&req->sampling, err);
    if (st) return st;
    struct session_hooks *h = calloc(1, sizeof *h);
    if (!h) return stf_fail(err, STF_ERR_NOMEM, "out of memory for a session");
    if (cb) h->cb = *cb;
    h->user = user;
    struct session *s;
    if ((st = sessions_add(&e->tab, req->prompt, n_prompt, req->n_generated, req->max_tokens,
                           &req->sampling, cfg->vocab_size, &s, err))) {
        free(h);
        return st;
    }
    s->owner = h;
    s->all_logits = req->all_logits;
    if (req->rng) s->smp.rng = *req->rng;
    if (!e->sessions++) e->t_first = stf_now();
    if (session) *session = s->id;
    return STF_OK;
}

bool engine_session_rng(const struct engine *e, uint64_t session, struct rng *out)
{
    const struct session *s = sessions_find(&e->tab, session);
    if (s) *out = s->smp.rng;
    return s != NULL;
}

void engine_cancel(struct engine *e, uint64_t session)
{
    struct session *s = sessions_find(&e->tab, session);
    if (s) s->cancel = true;
}

/* Sends the shutdown frame and waits for it to come back round the ring. */
static enum stf_status shutdown_stages(struct engine *e, struct stf_error *err)
{
    struct pipe *p = &e->p;
    if (p->size == 1) return STF_OK;
    struct frame down = {.kind = FRAME_SHUTDOWN};
    if (p->n_stages == 1) /* rank 0's partners are the whole rest of the job */
        return pipe_mirror(p, &down, err);
    bool sent = false, acked = false;
    enum stf_status st = STF_OK;
    e->idle_since = stf_now();
    for (;;) {
        bool progress = false;
        if ((st = round_of_work(e, &acked, &progress, err))) return st;
        if (!sent && engine_idle(e)) {
            int buf = free_buffer(e, err, &st);
            if (st) return st;
            if (buf >= 0) {
                struct frame f = {.kind = FRAME_SHUTDOWN};
                if ((st = pipe_mirror(p, &f, err)) || (st = send_frame(e, buf, &f, err))) return st;
                sent = progress = true;
            }
        }
        if (sent && acked) {
            free_buffer(e, err, &st); /* tests every outstanding send */
            if (st || !sends_pending(e)) return st;
        }
        double now = stf_now();
        if (progress) {
            e->idle_since = now;
            continue;
        }
        if ((st = check_deadline(e, sent, acked, now, err))) return st;
        double t0 = stf_now();
        transport_pause(now - e->idle_since);
        p->stats.wait_s += stf_now() - t0;
    }
}

enum stf_status engine_finish(struct engine *e, const struct engine_report **report,
                              struct stf_error *err)
{
    if (e->finished) {
        if (report) *report = &e->report;
        return STF_OK;
    }
    enum stf_status st = engine_run_until_idle(e, err);
    if (!st) st = shutdown_stages(e, err);
    e->finished = true;
    if (st) return st;
    struct pipe *p = &e->p;
    if (!(e->all = calloc((size_t)p->size, sizeof *e->all)))
        return stf_fail(err, STF_ERR_NOMEM, "rank 0: out of memory");
    if ((st = pipe_gather_stats(p, e->all, err))) return st;
    engine_progress(e);
    e->report.n_ranks = p->size;
    e->report.ranks = e->all;
    if (report) *report = &e->report;
    return STF_OK;
}

const struct engine_report *engine_progress(struct engine *e)
{
    struct engine_report *r = &e->report;
    r->sessions = e->sessions;
    r->generated_tokens = e->generated;
    r->decode_frames = e->decode_frames;
    r->positions = e->p.stats.positions;
    r->slots = e->tab.n_slots;
    r->evictions = e->tab.evictions;
    r->wall_s = e->t_last > e->t_first ? e->t_last - e->t_first : 0.0;
    int n = (int)(e->n_latency < LATENCY_SAMPLES ? e->n_latency : LATENCY_SAMPLES);
    memcpy(e->sorted, e->latency, (size_t)n * sizeof *e->sorted);
    r->latency_median_s = n ? stf_quantile(e->sorted, n, 0.5) : 0.0;
    r->latency_p90_s = n ? stf_quantile(e->sorted, n, 0.9) : 0.0;
    return r;
}

const char *engine_end_message(const struct engine *e)
{
    return e->end_message;
}

const struct model *engine_model(const struct engine *e)
{
    return e->p.m;
}

void engine_close(struct engine *e)
{
    if (!e) return;
    while (e->tab.n_live)
        end_session(e, e->tab.live[0], ENGINE_END_ERROR);
    sessions_free(&e->tab);
    stf_free(e->logits);
    stf_free(e->result);
    for (int i = 0; i < SEND_BUFFERS; i++)
        stf_free(e->sbuf[i]);
    free(e->ctrl);
    free(e->latency);
    free(e->sorted);
    free(e->all);
    pipe_close(&e->p);
    free(e);
}

_Noreturn void engine_abort(struct transport *t, const struct stf_error *err)
{
    fprintf(stderr, "sparsetf-dist: error on rank %d (%s): %s\n", t ? transport_rank(t) : 0,
            transport_host(), err->msg);
    fflush(stderr);
    transport_abort(t, 3);
}
