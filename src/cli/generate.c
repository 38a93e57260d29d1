/* generate: see generate.h. */
#include "cli/generate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/engine.h"
#include "pipeline/prompt.h"
#include "pipeline/text.h"
#include "model/model_file.h"
#include "util/timer.h"

struct gen;

/* The front end's side of one session. */
struct gen_session {
    struct gen *g;
    uint32_t index; /* input order */
    uint32_t *ids;  /* (n_prompt + max_tokens) prompt then generated ids */
    uint32_t n_ids, n_prompt;
    struct text_stream ts;
    FILE *dump;
    bool line_started; /* something of this session's line went out */
};

struct gen {
    const struct dist_options *o;
    struct dist_text *text;
    bool multi;     /* several sessions: "[i] " prefixes */
    bool ids_line;  /* the generated ids are printed */
    bool text_live; /* the text streams (it is the only output) */
    int cur;        /* the session whose stdout line is open, -1 none */
    uint32_t V;
    struct gen_session *s;
    uint32_t n;
    enum stf_status st; /* the first failure inside a callback */
    struct stf_error err;
};

/* ---- stdout, shared by the sessions ---- */

static void out_put(struct gen *g, struct gen_session *s, const char *bytes, size_t len)
{
    while (len) {
        if (g->cur != (int)s->index) {
            if (g->cur >= 0) putchar('\n');
            if (g->multi) printf("[%u] ", s->index);
            g->cur = (int)s->index;
        }
        const char *nl = memchr(bytes, '\n', len);
        size_t n = nl ? (size_t)(nl - bytes) + 1 : len;
        fwrite(bytes, 1, n, stdout);
        s->line_started = true;
        bytes += n;
        len -= n;
        if (nl) g->cur = -1;
    }
}

/* Ends the session's current line. */
static void out_end_line(struct gen *g, struct gen_session *s)
{
    if (g->cur == (int)s->index || !g->multi) {
        putchar('\n');
        g->cur = -1;
    } else if (!s->line_started) {
        printf("[%u] \n", s->index);
    }
    s->line_started = false;
}

/* ---- engine callbacks ---- */

static int fail_in_callback(struct gen *g, enum stf_status st)
{
    if (!g->st) g->st = st;
    return 1;
}

static int on_logits(void *user, uint64_t session, uint32_t position, const float *logits)
{
    (void)session, (void)position;
    struct gen_session *s = user;
    if (fwrite(logits, sizeof *logits, s->g->V, s->dump) != s->g->V)
        return fail_in_callback(
            s->g, stf_fail(&s->g->err, STF_ERR_IO, "%s: write failed", s->g->o->dump_logits));
    return 0;
}

static int stream_text(struct gen_session *s, bool final)
{
    const char *piece;
    size_t len;
    enum stf_status st =
        dist_text_stream(s->g->text, &s->ts, s->ids, s->n_ids, final, &piece, &len, &s->g->err);
    if (st) return fail_in_callback(s->g, st);
    out_put(s->g, s, piece, len);
    return 0;
}

static int on_token(void *user, uint64_t session, uint32_t token, const float *logits, bool last)
{
    (void)session, (void)logits, (void)last;
    struct gen_session *s = user;
    struct gen *g = s->g;
    s->ids[s->n_ids++] = token;
    int stop = 0;
    if (g->ids_line) {
        char buf[16];
        int n = snprintf(buf, sizeof buf, "%s%u", g->cur == (int)s->index ? " " : "", token);
        out_put(g, s, buf, (size_t)n);
    }
    if (g->text_live) stop = stream_text(s, false);
    fflush(stdout);
    return stop;
}

static void on_end(void *user, uint64_t session, enum engine_end reason)
{
    (void)session;
    struct gen_session *s = user;
    struct gen *g = s->g;
    if (reason == ENGINE_END_ERROR && !g->st)
        g->st =
            stf_fail(&g->err, STF_ERR_PROTOCOL, "session %u ended by an engine failure", s->index);
    if (g->ids_line) out_end_line(g, s);
    if (g->text) {
        if (!g->text_live) s->ts.emitted = 0; /* the whole text, after the ids line */
        stream_text(s, true);
        out_end_line(g, s);
    }
    fflush(stdout);
}

/* ---- the summary ---- */

static void json_rank(FILE *f, const struct engine_rank_stats *r, uint64_t positions)
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

static enum stf_status report(const struct dist_options *o, const struct engine_report *r,
                              uint64_t positions, double wall, struct stf_error *err)
{
    const double med = r->latency_median_s, p90 = r->latency_p90_s;
    const double tps = wall > 0 ? (double)r->generated_tokens / wall : 0.0;
    if (o->stats_json) {
        FILE *f = fopen(o->stats_json, "w");
        if (!f)
            return stf_fail(err, STF_ERR_IO, "%s: cannot create: %s", o->stats_json,
                            strerror(errno));
        fprintf(f,
                "{\n  \"model\": \"%s\", \"ranks\": %d, \"sessions\": %llu, \"slots\": %u, "
                "\"evictions\": %u,\n  \"generated_tokens\": %llu, \"decode_frames\": %llu, "
                "\"wall_s\": %.6f, \"tokens_per_s\": %.3f,\n  \"latency_ms\": {\"median\": "
                "%.4f, \"p90\": %.4f},\n  \"per_rank\": [\n",
                o->run.model_path, r->n_ranks, (unsigned long long)r->sessions, r->slots,
                r->evictions, (unsigned long long)r->generated_tokens,
                (unsigned long long)r->decode_frames, wall, tps, 1e3 * med, 1e3 * p90);
        for (int i = 0; i < r->n_ranks; i++) {
            json_rank(f, &r->ranks[i], positions);
            fprintf(f, "%s\n", i + 1 < r->n_ranks ? "," : "");
        }
        fprintf(f, "  ]\n}\n");
        if (fclose(f) != 0) return stf_fail(err, STF_ERR_IO, "%s: write failed", o->stats_json);
    }
    if (!o->quiet) {
        fprintf(stderr,
                "sparsetf-dist: %s on %d rank%s: %llu session%s, %llu tokens in %.3f s (%.1f "
                "tok/s); decode latency median %.3f ms, p90 %.3f ms\n",
                o->run.model_path, r->n_ranks, r->n_ranks == 1 ? "" : "s",
                (unsigned long long)r->sessions, r->sessions == 1 ? "" : "s",
                (unsigned long long)r->generated_tokens, wall, tps, 1e3 * med, 1e3 * p90);
        for (int i = 0; i < r->n_ranks; i++) {
            const struct engine_rank_stats *s = &r->ranks[i];
            fprintf(stderr,
                    "  rank %d (%s): layers [%u, %u), weights %.1f MB, RSS %.1f MB (peak %.1f), "
                    "compute %.3f s, wire %.3f s, wait %.3f s, sent %.1f KB\n",
                    i, s->host, s->layer_begin, s->layer_end, (double)s->weight_bytes / 1e6,
                    (double)s->rss_end / 1e6, (double)s->peak_rss / 1e6, s->compute_s, s->wire_s,
                    s->wait_s, (double)s->bytes_sent / 1e3);
        }
    }
    return STF_OK;
}

/* ---- the run ---- */

static enum stf_status open_dump(struct gen *g, struct gen_session *s, struct stf_error *err)
{
    char name[4096];
    /* one session: the file itself; several: FILE.<i> */
    if (g->n == 1)
        snprintf(name, sizeof name, "%s", g->o->dump_logits);
    else
        snprintf(name, sizeof name, "%s.%u", g->o->dump_logits, s->index);
    if (!(s->dump = fopen(name, "wb")))
        return stf_fail(err, STF_ERR_IO, "%s: cannot create: %s", name, strerror(errno));
    return STF_OK;
}

/* Prompts to ids and sessions to the engine. */
static enum stf_status submit_all(struct gen *g, struct engine *e, char *const *lines,
                                  bool text_mode, struct stf_error *err)
{
    const struct dist_options *o = g->o;
    const struct model_config *cfg = &engine_model(e)->cfg;
    static const struct engine_callbacks cb = {
        .on_logits = on_logits, .on_token = on_token, .on_end = on_end};
    for (uint32_t i = 0; i < g->n; i++) {
        struct gen_session *s = &g->s[i];
        uint32_t *prompt = NULL, n_prompt = 0;
        s->g = g;
        s->index = i;
        enum stf_status st =
            text_mode ? dist_text_encode(g->text, lines[i], cfg->bos_id, cfg->vocab_size, &prompt,
                                         &n_prompt, err)
                      : prompt_parse_ids(lines[i], cfg->vocab_size, &prompt, &n_prompt, err);
        if (!st && !(s->ids = malloc(((size_t)n_prompt + o->max_tokens) * sizeof *s->ids)))
            st = stf_fail(err, STF_ERR_NOMEM, "out of memory");
        if (!st) {
            memcpy(s->ids, prompt, n_prompt * sizeof *s->ids);
            s->n_ids = s->n_prompt = n_prompt;
        }
        if (!st && o->dump_logits) st = open_dump(g, s, err);
        if (!st) {
            struct engine_request req = {.prompt = prompt,
                                         .n_prompt = n_prompt,
                                         .max_tokens = o->max_tokens,
                                         .sampling = o->sampling,
                                         .all_logits = o->dump_logits != NULL};
            req.sampling.seed = o->sampling.seed + i; /* documented: session i, seed S + i */
            st = engine_submit(e, &req, &cb, s, NULL, err);
        }
        free(prompt);
        if (st) return stf_wrap(err, "prompt %u", i + 1);
    }
    return STF_OK;
}

enum stf_status generate_run(const struct dist_options *o, const struct run_config *rc,
                             struct transport *t, char *const *lines, uint32_t n,
                             struct stf_error *err)
{
    const bool text_mode = o->prompt || o->prompt_file || o->prompts_file;
    struct gen g = {.o = o,
                    .multi = n > 1,
                    .ids_line = !text_mode || o->print_tokens,
                    .text_live = text_mode && !o->print_tokens,
                    .cur = -1,
                    .V = rc->model.vocab_size,
                    .n = n};
    struct engine *e = NULL;
    const struct engine_report *r = NULL;
    enum stf_status st = engine_open(rc, t, &e, err);
    if (!st && text_mode) st = dist_text_open(engine_model(e), &g.text, err);
    if (!st && !(g.s = calloc(n, sizeof *g.s))) st = stf_fail(err, STF_ERR_NOMEM, "out of memory");
    if (!st) st = submit_all(&g, e, lines, text_mode, err);
    double t0 = stf_now();
    if (!st) st = engine_run_until_idle(e, err);
    double wall = stf_now() - t0;
    if (!st) st = engine_finish(e, &r, err);
    if (!st && g.st) {
        st = g.st;
        *err = g.err;
    }
    uint64_t positions = 0;
    for (uint32_t i = 0; g.s && i < n; i++)
        positions += g.s[i].n_ids;
    if (!st) st = report(o, r, positions, wall, err);
    /* the stages of a multi-rank job wait for rank 0: a failure here ends the job */
    if (st && transport_size(t) > 1) engine_abort(t, err);
    engine_close(e); /* before the sessions' data: it may still call on_end */
    for (uint32_t i = 0; g.s && i < n; i++) {
        if (g.s[i].dump && fclose(g.s[i].dump) != 0 && !st)
            st = stf_fail(err, STF_ERR_IO, "%s: write failed", o->dump_logits);
        free(g.s[i].ids);
    }
    dist_text_close(g.text);
    free(g.s);
    return st;
}
