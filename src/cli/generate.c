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
    bool line_started;      /* something of this session's line went out */
    size_t prompt_text_len; /* bytes of the decoded prompt (text: the continuation follows) */
    bool stopped;           /* a --stop string ended it */
    double t_submit, t_first, t_last; /* stf_now() at submit, first and last token */
};

struct gen {
    const struct dist_options *o;
    struct dist_text *text;
    bool multi;     /* several sessions: "[i] " prefixes */
    bool ids_line;  /* the generated ids are printed */
    bool text_live; /* the text streams (it is the only output) */
    bool json;      /* --output-json: one object per session, at its end */
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

/* Whether the generated text now contains a --stop string (then the session ends). The text
 * is decoded whole each time: stop strings are for short interactive outputs. */
static int check_stops(struct gen_session *s)
{
    const char *text;
    enum stf_status st = dist_text_decode(s->g->text, s->ids, s->n_ids, &text, &s->g->err);
    if (st) return fail_in_callback(s->g, st);
    size_t len = strlen(text);
    const char *gen = text + (s->prompt_text_len < len ? s->prompt_text_len : len);
    for (uint32_t i = 0; i < s->g->o->n_stops; i++)
        if (strstr(gen, s->g->o->stops[i])) {
            s->stopped = true;
            return 1;
        }
    return 0;
}

static int on_token(void *user, uint64_t session, uint32_t token, const float *logits, bool last)
{
    (void)session, (void)logits, (void)last;
    struct gen_session *s = user;
    struct gen *g = s->g;
    s->ids[s->n_ids++] = token;
    s->t_last = stf_now();
    if (s->n_ids == s->n_prompt + 1) s->t_first = s->t_last;
    int stop = 0;
    if (g->ids_line) {
        char buf[16];
        int n = snprintf(buf, sizeof buf, "%s%u", g->cur == (int)s->index ? " " : "", token);
        out_put(g, s, buf, (size_t)n);
    }
    if (g->text_live) stop = stream_text(s, false);
    if (!stop && g->o->n_stops) stop = check_stops(s);
    fflush(stdout);
    return stop;
}

/* A JSON string (UTF-8 passes through; quotes, backslashes and controls escaped). */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void print_json(struct gen_session *s, enum engine_end reason)
{
    struct gen *g = s->g;
    static const char *const ends[] = {[ENGINE_END_LENGTH] = "length",
                                       [ENGINE_END_EOS] = "eos",
                                       [ENGINE_END_CANCELLED] = "cancelled",
                                       [ENGINE_END_ERROR] = "error"};
    const uint32_t n_gen = s->n_ids - s->n_prompt;
    printf("{\"session\": %u, \"text\": ", s->index);
    const char *text = NULL;
    if (g->text && dist_text_decode(g->text, s->ids, s->n_ids, &text, &g->err) == STF_OK) {
        size_t len = strlen(text);
        json_string(stdout, text + (s->prompt_text_len < len ? s->prompt_text_len : len));
    } else {
        fputs("null", stdout);
    }
    printf(", \"ids\": [");
    for (uint32_t i = 0; i < n_gen; i++)
        printf("%s%u", i ? ", " : "", s->ids[s->n_prompt + i]);
    printf("], \"prompt_tokens\": %u, \"end\": \"%s\", \"first_token_ms\": %.3f, "
           "\"ms_per_token\": %.4f}\n",
           s->n_prompt, s->stopped ? "stop" : ends[reason],
           n_gen ? 1e3 * (s->t_first - s->t_submit) : 0.0,
           n_gen > 1 ? 1e3 * (s->t_last - s->t_first) / (n_gen - 1) : 0.0);
    fflush(stdout);
}

static void on_end(void *user, uint64_t session, enum engine_end reason)
{
    (void)session;
    struct gen_session *s = user;
    struct gen *g = s->g;
    if (reason == ENGINE_END_ERROR && !g->st)
        g->st =
            stf_fail(&g->err, STF_ERR_PROTOCOL, "session %u ended by an engine failure", s->index);
    if (g->json) {
        print_json(s, reason);
        return;
    }
    if (g->ids_line) out_end_line(g, s);
    if (g->text) {
        if (!g->text_live) s->ts.emitted = 0; /* the whole text, after the ids line */
        stream_text(s, true);
        out_end_line(g, s);
    }
    fflush(stdout);
}

/* ---- the summary ---- */

static void json_rank(FILE *f, const struct engine_rank_stats *r, uint64_t positions,
                      uint64_t tokens)
{
    /* the per-token split a user on a real cluster compares (issue: where does a token's
     * time go on each rank): seconds over the job's generated tokens, in ms */
    const double k = tokens ? 1e3 / (double)tokens : 0.0;
    fprintf(f,
            "    {\"rank\": %d, \"host\": \"%s\", \"layers\": [%u, %u], \"weight_bytes\": %llu, "
            "\"rss_after_load_bytes\": %llu, \"rss_end_bytes\": %llu, \"peak_rss_bytes\": %llu, "
            "\"load_s\": %.6f, \"compute_s\": %.6f, \"wire_s\": %.6f, \"wait_s\": %.6f, "
            "\"bytes_sent\": %llu, \"frames_sent\": %llu, \"frames_recv\": %llu, "
            "\"positions\": %llu, \"bytes_sent_per_position\": %.1f, \"send_s\": %.6f, "
            "\"collective_s\": %.6f, \"stage\": %u, \"tp_rank\": %u, \"tp_collectives\": %llu, "
            "\"tp_collective_bytes\": %llu, \"tp_collective_s\": %.6f,\n     \"per_token_ms\": "
            "{\"compute\": %.4f, \"pack_unpack\": %.4f, \"send\": %.4f, \"wait\": %.4f, "
            "\"collectives\": %.4f, \"tp_collectives\": %.4f}}",
            r->rank, r->host, r->layer_begin, r->layer_end, (unsigned long long)r->weight_bytes,
            (unsigned long long)r->rss_after_load, (unsigned long long)r->rss_end,
            (unsigned long long)r->peak_rss, r->load_s, r->compute_s, r->wire_s, r->wait_s,
            (unsigned long long)r->bytes_sent, (unsigned long long)r->frames_sent,
            (unsigned long long)r->frames_recv, (unsigned long long)r->positions,
            positions ? (double)r->bytes_sent / (double)positions : 0.0, r->send_s, r->coll_s,
            r->stage, r->tp_rank, (unsigned long long)r->collectives,
            (unsigned long long)r->collective_bytes, r->collective_s, k * r->compute_s,
            k * r->wire_s, k * r->send_s, k * r->wait_s, k * r->coll_s, k * r->collective_s);
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
            json_rank(f, &r->ranks[i], positions, r->generated_tokens);
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
                    "compute %.3f s (collectives %.3f s), wire %.3f s, wait %.3f s, sent %.1f KB\n",
                    i, s->host, s->layer_begin, s->layer_end, (double)s->weight_bytes / 1e6,
                    (double)s->rss_end / 1e6, (double)s->peak_rss / 1e6, s->compute_s,
                    s->collective_s, s->wire_s, s->wait_s, (double)s->bytes_sent / 1e3);
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
        const char *ptext;
        if (!st && g->text && !(st = dist_text_decode(g->text, prompt, n_prompt, &ptext, err)))
            s->prompt_text_len = strlen(ptext);
        s->t_submit = stf_now();
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
                    .json = o->output_json,
                    .ids_line = !o->output_json && (!text_mode || o->print_tokens),
                    .text_live = !o->output_json && text_mode && !o->print_tokens,
                    .cur = -1,
                    .V = rc->model.vocab_size,
                    .n = n};
    struct engine *e = NULL;
    const struct engine_report *r = NULL;
    enum stf_status st = engine_open(rc, t, &e, err);
    if (!st && text_mode) st = dist_text_open(engine_model(e), &g.text, err);
    /* with token prompts, JSON output and stop strings still use the tokenizer if there is
     * one; stop strings need it */
    if (!st && !text_mode && (o->output_json || o->n_stops)) {
        struct stf_error none;
        if (dist_text_open(engine_model(e), &g.text, o->n_stops ? err : &none) != STF_OK) {
            g.text = NULL;
            if (o->n_stops) st = stf_wrap(err, "--stop");
        }
    }
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
