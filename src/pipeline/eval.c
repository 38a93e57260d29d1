#include "pipeline/eval.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/prompt.h"
#include "pipeline/text.h"
#include "model/forward.h"
#include "util/mem.h"
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

enum stf_status dist_eval(const struct dist_options *o, struct stf_error *err)
{
    struct model *m = NULL;
    struct seq_state *s = NULL;
    struct workspace *ws = NULL;
    struct dist_text *text = NULL;
    float *x = NULL, *logits = NULL;
    char **lines = NULL;
    uint32_t n_lines = 0;
    enum stf_status st;

    if ((st = model_open(o->model_path, NULL, o->verify ? MODEL_OPEN_VERIFY : 0, &m, err)))
        goto done;
    const struct model_config *c = &m->cfg;
    uint32_t T = o->ctx ? o->ctx : c->max_seq_len;
    if (T > c->max_seq_len || T < 2) {
        st = stf_fail(err, STF_ERR_ARG, "--ctx %u must be in 2..%u (the model's max_seq_len)", T,
                      c->max_seq_len);
        goto done;
    }
    if ((st = dist_text_open(m, &text, err))) goto done;
    if ((st = prompt_read_lines(o->eval_file, &lines, &n_lines, err))) goto done;
    kernels_set_threads(o->threads);
    if ((st = seq_state_create(c, 0, c->n_layers, T, &s, err)) ||
        (st = workspace_create(c, T, kernels_by_name(o->kernels), &ws, err)))
        goto done;
    x = stf_alloc(c->d_model * sizeof *x);
    logits = stf_alloc(c->vocab_size * sizeof *logits);
    if (!x || !logits) {
        st = stf_fail(err, STF_ERR_NOMEM, "out of memory");
        goto done;
    }
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
        /* windows of T tokens overlapping by one: each token after BOS is predicted once */
        for (uint32_t w = 0; w + 1 < n; w += T - 1) {
            uint32_t len = n - w < T ? n - w : T;
            seq_state_reset(s);
            for (uint32_t p = 0; p + 1 < len; p++) {
                forward_embed(m, doc[w + p], p, x);
                forward_layers(m, s, ws, p, x);
                forward_head(m, ws, x, logits);
                nats += neg_log_prob(logits, c->vocab_size, doc[w + p + 1]);
                tokens++;
            }
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
    stf_free(x);
    stf_free(logits);
    dist_text_close(text);
    workspace_free(ws);
    seq_state_free(s);
    model_close(m);
    return st;
}
