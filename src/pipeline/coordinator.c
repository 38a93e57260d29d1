/* coordinator: rank 0 — the session table, cache directives, embedding, its own layers, the
 * head and sampling; keeps every stage busy with a different session (docs/architecture.md).
 *
 * Rank 0 never blocks on a send: frames go out through a small pool of buffers with
 * non-blocking sends while results are polled, so the ring of ranks cannot deadlock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"
#include "pipeline/prompt.h"
#include "pipeline/sessions.h"
#include "pipeline/text.h"
#include "util/mem.h"
#include "util/timer.h"

#define SEND_BUFFERS 4

struct control {
    enum frame_kind kind;
    uint64_t session;
    uint32_t slot;
};

struct coord {
    struct pipe *p;
    struct session_table tab;
    struct dist_text *text;
    bool text_mode;
    uint32_t max_tokens;
    float *logits; /* (V) */
    float *result; /* (max_rows, d) rows returned by the last rank */
    unsigned char *sbuf[SEND_BUFFERS];
    int sreq[SEND_BUFFERS];
    bool busy[SEND_BUFFERS];
    struct control *ctrl; /* FIFO ring of n_sessions + 1 */
    uint32_t c_head, c_len, c_cap;
    double *latency; /* seconds per decode frame */
    uint32_t n_latency, cap_latency;
    uint32_t in_flight;
    double t_start, t_prefill_done;
    uint64_t decode_tokens, generated;
};

/* ---- inputs ---- */

static enum stf_status read_prompts(struct coord *c, uint32_t ***ids, uint32_t **lens, uint32_t *n,
                                    struct stf_error *err)
{
    const struct dist_options *o = c->p->o;
    const struct model_config *cfg = c->p->cfg;
    char **lines = NULL;
    uint32_t n_lines = 0;
    enum stf_status st = STF_OK;
    c->text_mode = o->prompt || o->prompts_file;
    if (o->prompts_file || o->prompts_tokens_file) {
        const char *path = o->prompts_file ? o->prompts_file : o->prompts_tokens_file;
        if ((st = prompt_read_lines(path, &lines, &n_lines, err))) return st;
    } else {
        n_lines = 1;
        if (!(lines = calloc(1, sizeof *lines)) ||
            !(lines[0] = strdup(o->prompt ? o->prompt : o->prompt_tokens))) {
            free(lines);
            return stf_fail(err, STF_ERR_NOMEM, "out of memory");
        }
    }
    if (c->text_mode && (st = dist_text_open(c->p->m, &c->text, err))) goto done;
    *ids = calloc(n_lines, sizeof **ids);
    *lens = calloc(n_lines, sizeof **lens);
    if (!*ids || !*lens) {
        st = stf_fail(err, STF_ERR_NOMEM, "out of memory");
        goto done;
    }
    *n = n_lines;
    for (uint32_t i = 0; i < n_lines; i++) {
        st = c->text_mode
                 ? dist_text_encode(c->text, lines[i], cfg->bos_id, cfg->vocab_size, &(*ids)[i],
                                    &(*lens)[i], err)
                 : prompt_parse_ids(lines[i], cfg->vocab_size, &(*ids)[i], &(*lens)[i], err);
        if (st) {
            stf_wrap(err, "prompt %u", i + 1);
            goto done;
        }
        if ((uint64_t)(*lens)[i] + o->max_tokens > c->p->lim.capacity) {
            st = stf_fail(err, STF_ERR_ARG,
                          "prompt %u: %u tokens + --max-tokens %u exceeds the context of %u "
                          "positions",
                          i + 1, (*lens)[i], o->max_tokens, c->p->lim.capacity);
            goto done;
        }
    }
done:
    prompt_lines_free(lines, n_lines);
    return st;
}

static enum stf_status open_dumps(struct coord *c, struct stf_error *err)
{
    const char *path = c->p->o->dump_logits;
    if (!path) return STF_OK;
    for (uint32_t i = 0; i < c->tab.n; i++) {
        char name[4096];
        /* one session: the file itself (as the single-process runner); several: FILE.<i> */
        if (c->tab.n == 1)
            snprintf(name, sizeof name, "%s", path);
        else
            snprintf(name, sizeof name, "%s.%u", path, i);
        if (!(c->tab.s[i].dump = fopen(name, "wb")))
            return stf_fail(err, STF_ERR_IO, "%s: cannot create: %s", name, strerror(errno));
    }
    return STF_OK;
}

/* ---- sending ---- */

/* Tests every busy send buffer; returns a free one, or -1. */
static int free_buffer(struct coord *c, struct stf_error *err, enum stf_status *st)
{
    int free_one = -1;
    for (int i = 0; i < SEND_BUFFERS; i++) {
        if (c->busy[i]) {
            bool done = false;
            if ((*st = transport_test(c->p->t, c->sreq[i], &done, err))) return -1;
            c->busy[i] = !done;
        }
        if (!c->busy[i] && free_one < 0) free_one = i;
    }
    return free_one;
}

static bool sends_pending(const struct coord *c)
{
    for (int i = 0; i < SEND_BUFFERS; i++)
        if (c->busy[i]) return true;
    return false;
}

static enum stf_status send_frame(struct coord *c, int buf, struct frame *f, struct stf_error *err)
{
    size_t len;
    enum stf_status st = pipe_pack(c->p, f, c->sbuf[buf], c->p->max_frame, &len, err);
    if (!st) st = transport_isend(c->p->t, 1, PIPE_TAG, c->sbuf[buf], len, &c->sreq[buf], err);
    if (!st) c->busy[buf] = true;
    return st;
}

static void queue_control(struct coord *c, enum frame_kind kind, const struct session *s)
{
    c->ctrl[(c->c_head + c->c_len++) % c->c_cap] =
        (struct control){.kind = kind, .session = s->id, .slot = (uint32_t)s->slot};
}

/* ---- results ---- */

static enum stf_status handle_rows(struct coord *c, struct session *s, bool decode,
                                   uint32_t position, uint32_t rows, const float *data,
                                   struct stf_error *err)
{
    struct pipe *p = c->p;
    const uint32_t d = p->cfg->d_model, V = p->cfg->vocab_size;
    double t0 = stf_now();
    s->fill = position + rows;
    bool last_chunk = s->fill == s->n_tokens;
    for (uint32_t r = 0; r < rows; r++) {
        uint32_t pos = position + r;
        bool dump_row = s->dump && pos == s->dumped;
        if (!dump_row && !(last_chunk && r + 1 == rows)) continue;
        memcpy(c->result, data + (size_t)r * d, d * sizeof(float));
        forward_head(p->m, p->ws, c->result, c->logits);
        if (dump_row) {
            if (fwrite(c->logits, sizeof(float), V, s->dump) != V)
                return stf_fail(err, STF_ERR_IO, "%s: write failed", p->o->dump_logits);
            s->dumped = pos + 1;
        }
    }
    if (!last_chunk) {
        s->phase = SESSION_READY;
        p->stats.compute_s += stf_now() - t0;
        return STF_OK;
    }
    uint32_t n_gen = s->n_tokens - s->n_prompt;
    bool finished = n_gen >= c->max_tokens;
    if (!finished) {
        uint32_t next = sampler_sample(&s->smp, c->logits);
        s->tokens[s->n_tokens++] = next;
        c->generated++;
        finished = next == p->cfg->eos_id || s->n_tokens - s->n_prompt == c->max_tokens;
    }
    double now = stf_now();
    p->stats.compute_s += now - t0;
    if (decode) {
        c->latency[c->n_latency++] = now - s->t_sent;
        c->decode_tokens++;
    } else if (!c->t_prefill_done) {
        c->t_prefill_done = now;
    }
    if (finished) {
        s->phase = SESSION_DONE;
        queue_control(c, FRAME_CLOSE, s);
        sessions_release(&c->tab, s);
    } else {
        s->phase = SESSION_READY;
        s->since_admit++;
        s->last_used = ++c->tab.clock;
    }
    return STF_OK;
}

/* A frame from the last rank: the result rows of a session's frame, or the shutdown echo. */
static enum stf_status handle_result(struct coord *c, const struct frame *f, int from,
                                     bool *shutdown_acked, struct stf_error *err)
{
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
    struct session *s =
        f->session >= 1 && f->session <= c->tab.n ? &c->tab.s[f->session - 1] : NULL;
    if (!s || s->phase != SESSION_IN_FLIGHT || f->position != s->fill ||
        f->rows != s->in_flight_rows || (int)f->cache.slot != s->slot)
        return stf_fail(err, STF_ERR_PROTOCOL,
                        "rank 0: result from rank %d for session %llu (position %u, %u rows, "
                        "slot %u) matches no frame in flight",
                        from, (unsigned long long)f->session, f->position, f->rows, f->cache.slot);
    c->in_flight--;
    return handle_rows(c, s, f->kind == FRAME_DECODE, f->position, f->rows, f->data, err);
}

/* Builds the next frame of s in p->rows, runs rank 0's own layers, then sends it (or, on a
 * single rank, handles the result at once). */
static enum stf_status start_frame(struct coord *c, struct session *s, int buf,
                                   struct stf_error *err)
{
    struct pipe *p = c->p;
    const uint32_t d = p->cfg->d_model;
    uint32_t pending = s->n_tokens - s->fill;
    bool prefill = s->fill < s->n_prompt || pending > 1;
    uint32_t rows = prefill ? (pending < p->lim.max_rows ? pending : p->lim.max_rows) : 1;
    s->t_sent = stf_now();
    for (uint32_t r = 0; r < rows; r++)
        forward_embed(p->m, s->tokens[s->fill + r], s->fill + r, p->rows + (size_t)r * d);
    p->stats.compute_s += stf_now() - s->t_sent;
    struct frame f = {.kind = prefill ? FRAME_PREFILL : FRAME_DECODE,
                      .session = s->id,
                      .position = s->fill,
                      .rows = rows,
                      .streams = 1,
                      .width = d,
                      .dtype = FRAME_F32,
                      .cache = {.slot = (uint32_t)s->slot, .fill = s->fill, .reset = s->need_reset},
                      .data = p->rows,
                      .data_len = (size_t)rows * d * sizeof(float)};
    s->need_reset = false;
    enum stf_status st = pipe_compute(p, &f, 0, err);
    if (st) return st;
    s->phase = SESSION_IN_FLIGHT;
    s->in_flight_rows = rows;
    if (p->size == 1) {
        return handle_rows(c, s, !prefill, f.position, rows, p->rows, err);
    }
    c->in_flight++;
    return send_frame(c, buf, &f, err);
}

static enum stf_status start_control(struct coord *c, int buf, struct stf_error *err)
{
    struct control k = c->ctrl[c->c_head];
    c->c_head = (c->c_head + 1) % c->c_cap;
    c->c_len--;
    struct frame f = {.kind = k.kind, .session = k.session, .cache = {.slot = k.slot}};
    enum stf_status st = pipe_compute(c->p, &f, 0, err);
    if (st || c->p->size == 1) return st;
    return send_frame(c, buf, &f, err);
}

/* ---- output ---- */

static enum stf_status print_outputs(struct coord *c, struct stf_error *err)
{
    for (uint32_t i = 0; i < c->tab.n; i++) {
        const struct session *s = &c->tab.s[i];
        const uint32_t *gen = s->tokens + s->n_prompt;
        uint32_t n = s->n_tokens - s->n_prompt;
        if (!c->text_mode || c->p->o->print_tokens) {
            for (uint32_t j = 0; j < n; j++)
                printf("%s%u", j ? " " : "", gen[j]);
            printf("\n");
        }
        if (c->text_mode) {
            /* the prompt and its continuation, decoded together so the join is spaced
             * as SentencePiece spaces it (control pieces such as BOS decode to nothing) */
            const char *text;
            enum stf_status st = dist_text_decode(c->text, s->tokens, s->n_tokens, &text, err);
            if (st) return st;
            printf("%s\n", text);
        }
    }
    fflush(stdout);
    return STF_OK;
}

static void json_rank(FILE *f, const struct pipe_stats *r, uint64_t positions)
{
    fprintf(f,
            "    {\"rank\": %d, \"host\": \"%s\", \"layers\": [%u, %u], \"weight_bytes\": %llu, "
            "\"rss_after_load_bytes\": %llu, \"rss_end_bytes\": %llu, \"peak_rss_bytes\": %llu, "
            "\"load_s\": %.6f, \"compute_s\": %.6f, \"wire_s\": %.6f, \"wait_s\": %.6f, "
            "\"bytes_sent\": %llu, \"frames_sent\": %llu, \"frames_recv\": %llu, "
            "\"positions\": %llu, \"bytes_sent_per_position\": %.1f}",
            r->rank, r->host, r->layer_begin, r->layer_end, (unsigned long long)r->weight_bytes,
            (unsigned long long)r->rss_after_load, (unsigned long long)r->rss_end,
            (unsigned long long)r->peak_rss, r->load_s, r->compute_s, r->wire_s, r->wait_s,
            (unsigned long long)r->bytes_sent, (unsigned long long)r->frames_sent,
            (unsigned long long)r->frames_recv, (unsigned long long)r->positions,
            positions ? (double)r->bytes_sent / (double)positions : 0.0);
}

static enum stf_status report(struct coord *c, const struct pipe_stats *all, double wall,
                              struct stf_error *err)
{
    const struct pipe *p = c->p;
    double med = 0, p90 = 0;
    if (c->n_latency) {
        med = stf_quantile(c->latency, (int)c->n_latency, 0.5);
        p90 = stf_quantile(c->latency, (int)c->n_latency, 0.9);
    }
    uint64_t positions = 0;
    for (uint32_t i = 0; i < c->tab.n; i++)
        positions += c->tab.s[i].n_tokens;
    if (p->o->stats_json) {
        FILE *f = fopen(p->o->stats_json, "w");
        if (!f)
            return stf_fail(err, STF_ERR_IO, "%s: cannot create: %s", p->o->stats_json,
                            strerror(errno));
        fprintf(f,
                "{\n  \"model\": \"%s\", \"ranks\": %d, \"sessions\": %u, \"slots\": %u, "
                "\"evictions\": %u,\n  \"generated_tokens\": %llu, \"decode_frames\": %llu, "
                "\"wall_s\": %.6f, \"tokens_per_s\": %.3f,\n  \"latency_ms\": {\"median\": "
                "%.4f, \"p90\": %.4f},\n  \"per_rank\": [\n",
                p->o->model_path, p->size, c->tab.n, c->tab.n_slots, c->tab.evictions,
                (unsigned long long)c->generated, (unsigned long long)c->decode_tokens, wall,
                wall > 0 ? (double)c->generated / wall : 0.0, 1e3 * med, 1e3 * p90);
        for (int r = 0; r < p->size; r++) {
            json_rank(f, &all[r], positions);
            fprintf(f, "%s\n", r + 1 < p->size ? "," : "");
        }
        fprintf(f, "  ]\n}\n");
        if (fclose(f) != 0) return stf_fail(err, STF_ERR_IO, "%s: write failed", p->o->stats_json);
    }
    if (!p->o->quiet) {
        fprintf(stderr,
                "sparsetf-dist: %s on %d rank%s: %u session%s, %llu tokens in %.3f s (%.1f "
                "tok/s); decode latency median %.3f ms, p90 %.3f ms\n",
                p->o->model_path, p->size, p->size == 1 ? "" : "s", c->tab.n,
                c->tab.n == 1 ? "" : "s", (unsigned long long)c->generated, wall,
                wall > 0 ? (double)c->generated / wall : 0.0, 1e3 * med, 1e3 * p90);
        for (int r = 0; r < p->size; r++) {
            const struct pipe_stats *s = &all[r];
            fprintf(stderr,
                    "  rank %d (%s): layers [%u, %u), weights %.1f MB, RSS %.1f MB (peak %.1f), "
                    "compute %.3f s, wire %.3f s, wait %.3f s, sent %.1f KB\n",
                    r, s->host, s->layer_begin, s->layer_end, (double)s->weight_bytes / 1e6,
                    (double)s->rss_end / 1e6, (double)s->peak_rss / 1e6, s->compute_s, s->wire_s,
                    s->wait_s, (double)s->bytes_sent / 1e3);
        }
    }
    return STF_OK;
}

/* ---- the loop ---- */

static enum stf_status run_loop(struct coord *c, struct stf_error *err)
{
    struct pipe *p = c->p;
    const int last = p->size - 1;
    bool shutdown_sent = false, shutdown_acked = p->size == 1;
    double idle_since = stf_now();
    const double deadline = p->o->timeout; /* only rank 0 knows what is in flight */
    enum stf_status st = STF_OK;
    for (;;) {
        bool progress = false;
        sessions_admit(&c->tab, stderr);
        for (;;) {
            int buf = p->size == 1 ? 0 : free_buffer(c, err, &st);
            if (st) return st;
            if (buf < 0) break;
            if (c->c_len) {
                if ((st = start_control(c, buf, err))) return st;
            } else {
                sessions_admit(&c->tab, stderr);
                struct session *s = sessions_next_ready(&c->tab);
                if (!s) break;
                if ((st = start_frame(c, s, buf, err))) return st;
            }
            progress = true;
        }
        for (;;) {
            bool found = false;
            struct transport_msg msg;
            if (p->size == 1 ||
                (st = transport_iprobe(p->t, TRANSPORT_ANY_SOURCE, &found, &msg, err)))
                break;
            if (!found) break;
            struct frame f;
            if ((st = transport_recv(p->t, &msg, p->rbuf, p->max_frame, err)) ||
                (st = pipe_decode(p, msg.len, msg.source, last, &f, err)) ||
                (st = handle_result(c, &f, msg.source, &shutdown_acked, err)))
                return st;
            progress = true;
        }
        if (st) return st;
        bool done = sessions_all_done(&c->tab) && !c->c_len;
        if (done && !shutdown_sent) {
            if (p->size > 1) {
                int buf = free_buffer(c, err, &st);
                if (st) return st;
                if (buf >= 0) {
                    struct frame f = {.kind = FRAME_SHUTDOWN};
                    if ((st = send_frame(c, buf, &f, err))) return st;
                    shutdown_sent = true;
                    progress = true;
                }
            } else {
                shutdown_sent = true;
            }
        }
        if (shutdown_sent && shutdown_acked) {
            if (p->size > 1) free_buffer(c, err, &st); /* tests every outstanding send */
            if (st || !sends_pending(c)) return st;
        }
        double now = stf_now();
        if (progress) {
            idle_since = now;
            continue;
        }
        if (c->in_flight || shutdown_sent || sends_pending(c)) {
            if (now - idle_since > deadline) {
                if (c->in_flight)
                    return stf_fail(err, STF_ERR_TRANSPORT,
                                    "rank 0: timed out after %.0f s waiting for rank %d to return "
                                    "%u frame%s in flight (frames pass ranks 1..%d in turn: "
                                    "one of them is stuck or gone)",
                                    deadline, last, c->in_flight, c->in_flight == 1 ? "" : "s",
                                    last);
                return stf_fail(err, STF_ERR_TRANSPORT,
                                "rank 0: timed out after %.0f s waiting for rank %d (%s)", deadline,
                                shutdown_sent && !shutdown_acked ? last : 1,
                                shutdown_sent && !shutdown_acked ? "shutdown acknowledgement"
                                                                 : "to receive a frame");
            }
        }
        double t0 = stf_now();
        transport_pause(now - idle_since);
        p->stats.wait_s += stf_now() - t0;
    }
}

enum stf_status coordinator_run(struct pipe *p, struct stf_error *err)
{
    struct coord c = {.p = p, .max_tokens = p->o->max_tokens};
    uint32_t **ids = NULL, *lens = NULL, n = 0;
    enum stf_status st;
    const uint32_t d = p->cfg->d_model;
    if ((st = read_prompts(&c, &ids, &lens, &n, err))) goto done;
    if ((st = sessions_create(&c.tab, n, ids, lens, c.max_tokens, &p->o->sampling,
                              p->cfg->vocab_size, p->lim.n_slots, err)))
        goto done;
    if ((st = open_dumps(&c, err))) goto done;
    c.logits = stf_alloc((size_t)p->cfg->vocab_size * sizeof(float));
    c.result = stf_alloc((size_t)d * sizeof(float));
    c.c_cap = n + 1;
    c.ctrl = calloc(c.c_cap, sizeof *c.ctrl);
    c.cap_latency = n * (c.max_tokens + 1);
    c.latency = calloc(c.cap_latency ? c.cap_latency : 1, sizeof *c.latency);
    for (int i = 0; i < SEND_BUFFERS; i++)
        if (!(c.sbuf[i] = stf_alloc(p->max_frame))) c.logits = NULL;
    if (!c.logits || !c.result || !c.ctrl || !c.latency) {
        st = stf_fail(err, STF_ERR_NOMEM, "rank 0: out of memory");
        goto done;
    }
    c.t_start = stf_now();
    if ((st = run_loop(&c, err))) goto done;
    double wall = stf_now() - c.t_start;
    if ((st = print_outputs(&c, err))) goto done;
    struct pipe_stats *all = calloc((size_t)p->size, sizeof *all);
    if (!all) {
        st = stf_fail(err, STF_ERR_NOMEM, "rank 0: out of memory");
        goto done;
    }
    if (!(st = pipe_gather_stats(p, all, err))) st = report(&c, all, wall, err);
    free(all);
done:
    for (uint32_t i = 0; i < c.tab.n; i++)
        if (c.tab.s[i].dump && fclose(c.tab.s[i].dump) != 0 && !st)
            st = stf_fail(err, STF_ERR_IO, "%s: write failed", p->o->dump_logits);
    for (uint32_t i = 0; ids && i < n; i++)
        free(ids[i]); /* NULL once sessions_create took them */
    free(ids);
    free(lens);
    sessions_free(&c.tab);
    dist_text_close(c.text);
    stf_free(c.logits);
    stf_free(c.result);
    for (int i = 0; i < SEND_BUFFERS; i++)
        stf_free(c.sbuf[i]);
    free(c.ctrl);
    free(c.latency);
    return st;
}
