#include "pipeline/local.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/prompt.h"
#include "pipeline/text.h"
#include "model/forward.h"
#include "util/mem.h"
#include "util/timer.h"

enum stf_status dist_run_local(const struct dist_options *o, struct stf_error *err)
{
    struct model *m = NULL;
    struct seq_state *s = NULL;
    struct workspace *ws = NULL;
    struct sampler smp = {0};
    struct dist_text *text = NULL;
    uint32_t *prompt = NULL, *generated = NULL, n_prompt = 0, n_gen = 0;
    float *x = NULL, *logits = NULL;
    double *tok_times = NULL;
    FILE *dump = NULL;
    enum stf_status st;

    double t_load = stf_now();
    st = model_open(o->model_path, NULL, o->verify ? MODEL_OPEN_VERIFY : 0, &m, err);
    if (st) goto done;
    t_load = stf_now() - t_load;
    const struct model_config *c = &m->cfg;
    uint32_t cap = o->ctx ? o->ctx : c->max_seq_len;
    if (cap > c->max_seq_len) {
        st = stf_fail(err, STF_ERR_ARG, "--ctx %u exceeds the model's max_seq_len %u", cap,
                      c->max_seq_len);
        goto done;
    }
    if (o->prompt_tokens) {
        st = prompt_parse_ids(o->prompt_tokens, c->vocab_size, &prompt, &n_prompt, err);
    } else if (o->prompt) {
        st = dist_text_open(m, &text, err);
        if (!st)
            st = dist_text_encode(text, o->prompt, c->bos_id, c->vocab_size, &prompt, &n_prompt,
                                  err);
    } else {
        st = stf_fail(err, STF_ERR_UNSUPPORTED, "--prompts is handled by the pipeline runner");
    }
    if (st) goto done;
    if ((uint64_t)n_prompt + o->max_tokens > cap) {
        st = stf_fail(err, STF_ERR_ARG,
                      "prompt of %u tokens + --max-tokens %u exceeds the context of %u positions",
                      n_prompt, o->max_tokens, cap);
        goto done;
    }
    const struct kernels *k = kernels_by_name(o->kernels);
    kernels_set_threads(o->threads);
    if ((st = seq_state_create(c, 0, c->n_layers, cap, &s, err)) ||
        (st = workspace_create(c, cap, k, &ws, err)) ||
        (st = sampler_create(&smp, &o->sampling, c->vocab_size, err)))
        goto done;
    x = stf_alloc(c->d_model * sizeof *x);
    logits = stf_alloc(c->vocab_size * sizeof *logits);
    generated = calloc(o->max_tokens + 1, sizeof *generated);
    tok_times = calloc(o->max_tokens + 1, sizeof *tok_times);
    if (!x || !logits || !generated || !tok_times) {
        st = stf_fail(err, STF_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (o->dump_logits && !(dump = fopen(o->dump_logits, "wb"))) {
        st = stf_fail(err, STF_ERR_IO, "%s: cannot create: %s", o->dump_logits, strerror(errno));
        goto done;
    }
    seq_state_reset(s);
    /* prefill: every prompt token through the layers; the head only where its logits are
     * used (the last position, or every position when dumping) */
    double t0 = stf_now();
    uint32_t pos = 0;
    for (uint32_t i = 0; i < n_prompt; i++, pos++) {
        forward_embed(m, prompt[i], pos, x);
        forward_layers(m, s, ws, pos, x);
        if (dump || i + 1 == n_prompt) forward_head(m, ws, x, logits);
        if (dump && fwrite(logits, sizeof *logits, c->vocab_size, dump) != c->vocab_size) {
            st = stf_fail(err, STF_ERR_IO, "%s: write failed", o->dump_logits);
            goto done;
        }
    }
    double t_prefill = stf_now() - t0;
    /* decode */
    while (n_gen < o->max_tokens) {
        double ts = stf_now();
        uint32_t next = sampler_sample(&smp, logits);
        generated[n_gen++] = next;
        if (next == c->eos_id || n_gen == o->max_tokens) {
            tok_times[n_gen - 1] = stf_now() - ts;
            break;
        }
        forward_embed(m, next, pos, x);
        forward_layers(m, s, ws, pos, x);
        forward_head(m, ws, x, logits);
        pos++;
        tok_times[n_gen - 1] = stf_now() - ts;
        if (dump && fwrite(logits, sizeof *logits, c->vocab_size, dump) != c->vocab_size) {
            st = stf_fail(err, STF_ERR_IO, "%s: write failed", o->dump_logits);
            goto done;
        }
    }
    if (!text || o->print_tokens) {
        for (uint32_t i = 0; i < n_gen; i++)
            printf("%s%u", i ? " " : "", generated[i]);
        printf("\n");
    }
    if (text) { /* the prompt and its continuation, as the pipeline prints them */
        const char *out;
        uint32_t *all = malloc(((size_t)n_prompt + n_gen) * sizeof *all);
        if (!all) {
            st = stf_fail(err, STF_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(all, prompt, n_prompt * sizeof *all);
        memcpy(all + n_prompt, generated, n_gen * sizeof *all);
        st = dist_text_decode(text, all, n_prompt + n_gen, &out, err);
        free(all);
        if (st) goto done;
        printf("%s\n", out);
    }
    fflush(stdout);
    double med = stf_median(tok_times, n_gen > 1 ? (int)n_gen - 1 : (int)n_gen);
    if (!o->quiet)
        fprintf(stderr,
                "sparsetf: %s: load %.3f s; prefill %u tokens %.1f ms; %u tokens, median %.3f "
                "ms/token; peak RSS %.1f MB\n",
                o->model_path, t_load, n_prompt, 1e3 * t_prefill, n_gen, 1e3 * med,
                (double)stf_peak_rss_bytes() / 1e6);
    st = STF_OK;
done:
    if (dump && fclose(dump) != 0 && !st)
        st = stf_fail(err, STF_ERR_IO, "%s: write failed", o->dump_logits);
    free(prompt);
    free(generated);
    free(tok_times);
    stf_free(x);
    stf_free(logits);
    sampler_destroy(&smp);
    dist_text_close(text);
    workspace_free(ws);
    seq_state_free(s);
    model_close(m);
    return st;
}
