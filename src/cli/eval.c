#include "cli/eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/engine.h"
#include "pipeline/prompt.h"
#include "pipeline/text.h"
#include "model/model_file.h"
#include "util/timer.h"

/* Unicode code points of a UTF-8 string (bytes that do not start a sequence are counted
 * as they come: continuation bytes are skipped). */
static uint64_t count_code_points(const char *s)
{
    uint64_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* -log softmax(logits)[target], in double. */
static double neg_log_prob(const float *logits, uint32_t V, uint32_t target)
{
    double mx = logits[0];
    for (uint32_t i = 1; i < V; i++)
        if (logits[i] > mx) mx = logits[i];
    double z = 0.0;
    for (uint32_t i = 0; i < V; i++)
        z += exp((double)logits[i] - mx);
    return log(z) + mx - (double)logits[target];
}

/* The nats of one window: the logits row of position p predicts token p + 1. */
struct window {
    const uint32_t *doc; /* the window's tokens */
    uint32_t len;
    uint32_t V;
    double nats;
    uint64_t tokens;
};

static int on_logits(void *user, uint64_t session, uint32_t position, const float *logits)
{
    (void)session;
    struct window *w = user;
    if (position + 1 < w->len) {
        w->nats += neg_log_prob(logits, w->V, w->doc[position + 1]);
        w->tokens++;
    }
    return 0;
}

enum stf_status dist_eval(const struct dist_options *o, const struct run_config *rc,
                          struct stf_error *err)
{
    struct transport *t = NULL;
    struct engine *e = NULL;
    struct dist_text *text = NULL;
    char **lines = NULL;
    uint32_t n_lines = 0;
    enum stf_status st;
    const struct model_config *c = &rc->model;
    const uint32_t T = rc->ctx;
    if (T < 2)
        return stf_fail(err, STF_ERR_ARG, "--ctx %u must be in 2..%u (the model's max_seq_len)", T,
                        c->max_seq_len);
    if ((st = transport_loopback_create(1, &t, err))) return st;
    if ((st = engine_open(rc, t, &e, err))) goto done;
    if ((st = dist_text_open(engine_model(e), &text, err))) goto done;
    if ((st = prompt_read_lines(o->eval_file, &lines, &n_lines, err))) goto done;
    const struct engine_callbacks cb = {.on_logits = on_logits};
    double nats = 0.0, t0 = stf_now();
    uint64_t tokens = 0, chars = 0, docs = 0, windows = 0;
    for (uint32_t li = 0; li < n_lines; li++) {
        if (!lines[li][0]) continue;
        uint32_t *ids = NULL, n = 0;
        if ((st = dist_text_encode(text, lines[li], c->bos_id, c->vocab_size, &ids, &n, err))) {
            stf_wrap(err, "%s: document %u", o->eval_file, li + 1);
            goto done;
        }
        /* dist_text_encode gives [BOS] ids; the document ends with EOS */
        uint32_t *doc = realloc(ids, ((size_t)n + 1) * sizeof *doc);
        if (!doc) {
            free(ids);
            st = stf_fail(err, STF_ERR_NOMEM, "out of memory");
            goto done;
        }
        doc[n++] = c->eos_id;
        /* windows of T tokens overlapping by one: each token after BOS is predicted once;
         * a window is a session of its first len - 1 tokens that generates nothing */
        for (uint32_t w = 0; w + 1 < n; w += T - 1) {
            struct window win = {.doc = doc + w, .len = n - w < T ? n - w : T, .V = c->vocab_size};
            struct engine_request req = {.prompt = win.doc,
                                         .n_prompt = win.len - 1,
                                         .max_tokens = 0,
                                         .sampling = o->sampling,
                                         .all_logits = true};
            if ((st = engine_submit(e, &req, &cb, &win, NULL, err)) ||
                (st = engine_run_until_idle(e, err))) {
                free(doc);
                goto done;
            }
            nats += win.nats;
            tokens += win.tokens;
            windows++;
        }
        free(doc);
        chars += count_code_points(lines[li]);
        docs++;
    }
    if (tokens == 0) {
        st = stf_fail(err, STF_ERR_ARG, "%s: no non-empty line to evaluate", o->eval_file);
        goto done;
    }
    printf("{\"file\": \"%s\", \"documents\": %llu, \"windows\": %llu, \"tokens\": %llu, "
           "\"chars\": %llu, \"nats_per_token\": %.6f, \"bits_per_char\": %.6f, "
           "\"seconds\": %.3f}\n",
           o->eval_file, (unsigned long long)docs, (unsigned long long)windows,
           (unsigned long long)tokens, (unsigned long long)chars, nats / (double)tokens,
           nats / log(2.0) / (double)chars, stf_now() - t0);
    fflush(stdout);
    st = STF_OK;
done:
    if (lines) prompt_lines_free(lines, n_lines);
    dist_text_close(text);
    engine_close(e);
    transport_close(t);
    return st;
}
