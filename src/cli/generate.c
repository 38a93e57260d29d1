/* generate: see generate.h. */
#include "cli/generate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pipeline/engine.h"
#include "pipeline/journal.h"
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
    uint32_t journaled;     /* generated tokens the journal holds */
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
    struct engine *e;
    struct journal *j;  /* --journal, or NULL */
    uint32_t failed;    /* sessions stopped by a non-finite value (the others go on) */
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

/* A generated token to s's output (sampled now, or replayed from the journal); non-zero when
 * a stop string ends the session. */
static int emit_token(struct gen_session *s, uint32_t token)
{
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

static int on_token(void *user, uint64_t session, uint32_t token, const float *logits, bool last)
{
    (void)logits, (void)last;
    struct gen_session *s = user;
    struct gen *g = s->g;
    const uint32_t n_gen = s->n_ids - s->n_prompt + 1;
    if (g->j && n_gen > s->journaled) {
        struct rng state;
        enum stf_status st =
            engine_session_rng(g->e, session, &state)
                ? journal_token(g->j, s->index, token, &state, &g->err)
                : stf_fail(&g->err, STF_ERR_PROTOCOL, "session %u is gone", s->index);
        if (st) return fail_in_callback(g, st);
        s->journaled = n_gen;
    }
    return emit_token(s, token);
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

/* s's end to its output (now, or replayed from the journal). */
static void emit_end(struct gen_session *s, enum engine_end reason)
{
    struct gen *g = s->g;
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

/* Closes s's logits file; *bytes its size. */
static enum stf_status close_dump(struct gen_session *s, uint64_t *bytes, struct stf_error *err)
{
    *bytes = 0;
    if (!s->dump) return STF_OK;
    long size = fflush(s->dump) == 0 ? ftell(s->dump) : -1;
    int closed = fclose(s->dump);
    s->dump = NULL;
    if (size < 0 || closed != 0)
        return stf_fail(err, STF_ERR_IO, "%s: write failed", s->g->o->dump_logits);
    *bytes = (uint64_t)size;
    return STF_OK;
}

static void on_end(void *user, uint64_t session, enum engine_end reason)
{
    (void)session;
    struct gen_session *s = user;
    struct gen *g = s->g;
    if (reason == ENGINE_END_ERROR && engine_end_message(g->e)[0])
        g->failed++; /* it alone: the engine printed why */
    else if (reason == ENGINE_END_ERROR && !g->st)
        g->st =
            stf_fail(&g->err, STF_ERR_PROTOCOL, "session %u ended by an engine failure", s->index);
    /* the logits file is complete before the journal says the session is */
    uint64_t dump_bytes = 0;
    struct stf_error e;
    enum stf_status st = close_dump(s, &dump_bytes, &e);
    if (st && !g->st) {
        g->st = st;
        g->err = e;
    }
    const enum journal_end je = reason == ENGINE_END_LENGTH ? JOURNAL_END_LENGTH
                                : reason == ENGINE_END_EOS  ? JOURNAL_END_EOS
                                : s->stopped                ? JOURNAL_END_STOP
                                                            : 0;
    if (!st && g->j && je && reason != ENGINE_END_ERROR &&
        (st = journal_end(g->j, s->index, je, dump_bytes, &e)) && !g->st) {
        g->st = st;
        g->err = e;
    }
    emit_end(s, reason);
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

/* Prompts to ids: s->ids holds the prompt (room for max_tokens more). */
static enum stf_status encode_all(struct gen *g, struct engine *e, char *const *lines,
                                  bool text_mode, struct stf_error *err)
{
    const struct dist_options *o = g->o;
    const struct model_config *cfg = &engine_model(e)->cfg;
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
        free(prompt);
        if (st) return stf_wrap(err, "prompt %u", i + 1);
    }
    return STF_OK;
}

/* A string as a header value: one line (backslash and newline escaped). */
static void header_string(char *buf, size_t cap, size_t *len, const char *s)
{
    for (; *s && *len + 3 < cap; s++) {
        if (*s == '\\' || *s == '\n') buf[(*len)++] = '\\';
        buf[(*len)++] = *s == '\n' ? 'n' : *s;
    }
    buf[*len] = 0;
}

/* What a restart must match (journal.h): the model, every option that changes a session's
 * tokens, logits or printed output, and the session count. Not the layout (ranks, threads,
 * slots, prefill chunk): a job may resume on another layout, its output does not depend on
 * it. */
static enum stf_status journal_header(const struct gen *g, const struct model *m, bool text_mode,
                                      char *buf, size_t cap, struct stf_error *err)
{
    const struct dist_options *o = g->o;
    const struct sampler_params *sp = &o->sampling;
    int n = snprintf(buf, cap,
                     "journal=1\nmodel=%llu bytes, manifest crc32c 0x%08x\nkernels=%s\n"
                     "sessions=%u\ninput=%s\nmax-tokens=%u\ntemperature=%.9g\ntop-k=%u\n"
                     "top-p=%.9g\nseed=%llu\nrepeat-penalty=%.9g\nrepeat-last-n=%u\n"
                     "output=%s%s\ndump-logits=%s\n",
                     (unsigned long long)m->file_size, m->manifest_crc32c, o->run.kernels, g->n,
                     text_mode ? "text" : "ids", o->max_tokens, (double)sp->temperature, sp->top_k,
                     (double)sp->top_p, (unsigned long long)sp->seed, (double)sp->repeat_penalty,
                     sp->repeat_last_n,
                     o->output_json    ? "json"
                     : o->print_tokens ? "tokens"
                                       : "default",
                     g->multi ? ", sessions prefixed" : "", o->dump_logits ? "yes" : "no");
    size_t len = n > 0 && (size_t)n < cap ? (size_t)n : cap;
    for (uint32_t i = 0; i < o->n_stops && len + 16 < cap; i++) {
        len += (size_t)snprintf(buf + len, cap - len, "stop.%u=", i);
        header_string(buf, cap - 2, &len, o->stops[i]);
        buf[len++] = '\n';
        buf[len] = 0;
    }
    if (len + 8 >= cap)
        return stf_fail(err, STF_ERR_ARG, "--journal: the options (--stop strings) are too long");
    return STF_OK;
}

static const enum engine_end replay_ends[] = {[JOURNAL_END_LENGTH] = ENGINE_END_LENGTH,
                                              [JOURNAL_END_EOS] = ENGINE_END_EOS,
                                              [JOURNAL_END_STOP] = ENGINE_END_CANCELLED};

/* Session s against the journal: finished sessions are replayed (their output printed
 * again, nothing recomputed); an unfinished one has its journaled tokens printed and is
 * resumed after them (*r of them, with the generator state after the last). A session the
 * journal ends, or ends without saying so, needs no engine: *done. */
static enum stf_status resume_session(struct gen *g, struct gen_session *s, uint64_t seed,
                                      uint32_t *r, bool *done, struct stf_error *err)
{
    const struct dist_options *o = g->o;
    struct journal_session *js = &g->j->s[s->index];
    *r = 0;
    *done = false;
    if (!js->started) return journal_session(g->j, s->index, seed, s->ids, s->n_prompt, err);
    if (js->n_prompt != s->n_prompt || memcmp(js->prompt, s->ids, s->n_prompt * sizeof *s->ids) ||
        js->seed != seed)
        return stf_fail(err, STF_ERR_ARG,
                        "prompt %u is not the one %s holds for session %u (the prompts changed "
                        "since the job started: give a new --journal directory)",
                        s->index + 1, g->j->path, s->index);
    uint32_t k = js->n_tokens;
    if (k > o->max_tokens)
        return stf_fail(err, STF_ERR_FORMAT, "%s: session %u has %u tokens, max-tokens is %u",
                        g->j->path, s->index, k, o->max_tokens);
    bool ended = js->ended;
    struct stat sb;
    char name[4096];
    if (ended && o->dump_logits) {
        /* its logits file must still be the one the journal saw complete, else recompute */
        if (g->n == 1)
            snprintf(name, sizeof name, "%s", o->dump_logits);
        else
            snprintf(name, sizeof name, "%s.%u", o->dump_logits, s->index);
        ended = stat(name, &sb) == 0 && (uint64_t)sb.st_size == js->dump_bytes;
    }
    /* without its end record, a session's logits file may be incomplete: its last token is
     * computed again (the same one, from the generator state before it), which rewrites the
     * whole file */
    const uint32_t replay = ended || !o->dump_logits || k == 0 ? k : k - 1;
    bool stop = false;
    for (uint32_t i = 0; i < replay && !stop; i++)
        stop = emit_token(s, js->tokens[i]) != 0;
    if (g->st) {
        *err = g->err;
        return g->st;
    }
    s->journaled = k;
    const uint32_t eos = engine_model(g->e)->cfg.eos_id;
    const bool eos_last = replay > 0 && js->tokens[replay - 1] == eos;
    if (ended || stop || eos_last || (replay > 0 && replay == o->max_tokens)) {
        /* finished: also when the crash came between its last token and its end record */
        enum engine_end reason = ended      ? replay_ends[js->end]
                                 : stop     ? ENGINE_END_CANCELLED
                                 : eos_last ? ENGINE_END_EOS
                                            : ENGINE_END_LENGTH;
        enum stf_status st = STF_OK;
        if (!ended)
            st = journal_end(g->j, s->index,
                             stop       ? JOURNAL_END_STOP
                             : eos_last ? JOURNAL_END_EOS
                                        : JOURNAL_END_LENGTH,
                             0, err);
        if (st) return st;
        emit_end(s, reason);
        *done = true;
        return STF_OK;
    }
    *r = replay;
    return STF_OK;
}

/* Sessions to the engine (resumed from the journal when there is one). */
static enum stf_status submit_all(struct gen *g, struct engine *e, struct stf_error *err)
{
    const struct dist_options *o = g->o;
    static const struct engine_callbacks cb = {
        .on_logits = on_logits, .on_token = on_token, .on_end = on_end};
    uint32_t finished = 0, resumed = 0, replayed = 0;
    for (uint32_t i = 0; i < g->n; i++) {
        struct gen_session *s = &g->s[i];
        const uint64_t seed = o->sampling.seed + i; /* documented: session i, seed S + i */
        uint32_t r = 0;
        bool done = false;
        s->t_submit = stf_now();
        enum stf_status st = g->j ? resume_session(g, s, seed, &r, &done, err) : STF_OK;
        if (!st && !done && o->dump_logits) st = open_dump(g, s, err);
        if (!st && !done) {
            struct engine_request req = {.prompt = s->ids,
                                         .n_prompt = s->n_ids,
                                         .max_tokens = o->max_tokens,
                                         .sampling = o->sampling,
                                         .all_logits = o->dump_logits != NULL,
                                         .n_generated = r,
                                         .rng = r ? &g->j->s[i].rng[r - 1] : NULL};
            req.sampling.seed = seed;
            st = engine_submit(e, &req, &cb, s, NULL, err);
        }
        if (st) return stf_wrap(err, "prompt %u", i + 1);
        finished += done;
        resumed += !done && r > 0;
        replayed += r;
    }
    if (g->j && g->j->resumed && !o->quiet)
        fprintf(stderr,
                "sparsetf-dist: %s: resuming the job: %u of %u sessions finished (replayed), %u "
                "resumed after %u journaled tokens, %u started again\n",
                g->j->path, finished, g->n, resumed, replayed, g->n - finished - resumed);
    return STF_OK;
}

/* --journal: opens it for this job (after the prompts are encoded). */
static enum stf_status open_journal(struct gen *g, bool text_mode, struct stf_error *err)
{
    char header[8192];
    enum stf_status st =
        journal_header(g, engine_model(g->e), text_mode, header, sizeof header, err);
    uint32_t max_prompt = 0;
    for (uint32_t i = 0; i < g->n; i++)
        if (g->s[i].n_prompt > max_prompt) max_prompt = g->s[i].n_prompt;
    if (!st) st = journal_open(g->o->journal, header, g->n, max_prompt, &g->j, err);
    if (!st && g->j->dropped_bytes)
        fprintf(stderr,
                "sparsetf-dist: %s: dropped a torn record at its end (%llu bytes from byte "
                "%llu, cut short by the crash): its work is done again\n",
                g->j->path, (unsigned long long)g->j->dropped_bytes,
                (unsigned long long)g->j->dropped_at);
    return st;
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
    g.e = e;
    if (!st) st = encode_all(&g, e, lines, text_mode, err);
    if (!st && o->journal) st = open_journal(&g, text_mode, err);
    if (!st) st = submit_all(&g, e, err);
    double t0 = stf_now();
    if (!st) st = engine_run_until_idle(e, err);
    double wall = stf_now() - t0;
    if (!st) st = engine_finish(e, &r, err);
    if (!st && g.st) {
        st = g.st;
        *err = g.err;
    }
    if (!st && g.failed)
        st = stf_fail(err, STF_ERR_FORMAT,
                      "%u of %u session%s stopped by a non-finite value (see above); the others "
                      "completed",
                      g.failed, n, n == 1 ? "" : "s");
    uint64_t positions = 0;
    for (uint32_t i = 0; g.s && i < n; i++)
        positions += g.s[i].n_ids;
    if (!st) st = report(o, r, positions, wall, err);
    /* the stages of a multi-rank job wait for rank 0 until engine_finish: a failure before
     * ends the job */
    if (st && !r && transport_size(t) > 1) engine_abort(t, err);
    engine_close(e); /* before the sessions' data: it may still call on_end */
    for (uint32_t i = 0; g.s && i < n; i++) {
        if (g.s[i].dump && fclose(g.s[i].dump) != 0 && !st)
            st = stf_fail(err, STF_ERR_IO, "%s: write failed", o->dump_logits);
        free(g.s[i].ids);
    }
    dist_text_close(g.text);
    journal_close(g.j);
    free(g.s);
    return st;
}
