#include "kernels/sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "util/mem.h"

enum stf_status sampler_params_check(const struct sampler_params *p, struct stf_error *err)
{
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return stf_fail(err, STF_ERR_ARG, "--temperature must be a finite number >= 0, got %g",
                        (double)p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return stf_fail(err, STF_ERR_ARG, "--top-p must be in (0, 1], got %g", (double)p->top_p);
    if (!(p->repeat_penalty >= 0.0f) || !isfinite(p->repeat_penalty))
        return stf_fail(err, STF_ERR_ARG, "--repeat-penalty must be a finite number >= 0, got %g",
                        (double)p->repeat_penalty);
    return STF_OK;
}

enum stf_status sampler_create(struct sampler *s, const struct sampler_params *p, uint32_t vocab,
                               struct stf_error *err)
{
    enum stf_status st = sampler_params_check(p, err);
    if (st) return st;
    s->p = *p;
    s->vocab = vocab;
    rng_seed(&s->rng, p->seed);
    s->order = stf_alloc((size_t)vocab * sizeof *s->order);
    s->probs = stf_alloc((size_t)vocab * sizeof *s->probs);
    s->penalized = NULL;
    if (p->repeat_penalty != 1.0f && p->repeat_penalty != 0.0f && p->repeat_last_n > 0 &&
        !(s->penalized = stf_alloc((size_t)vocab * sizeof *s->penalized))) {
        sampler_destroy(s);
        return stf_fail(err, STF_ERR_NOMEM, "sampler: out of memory for %u candidates", vocab);
    }
    if (!s->order || !s->probs) {
        sampler_destroy(s);
        return stf_fail(err, STF_ERR_NOMEM, "sampler: out of memory for %u candidates", vocab);
    }
    return STF_OK;
}

void sampler_destroy(struct sampler *s)
{
    stf_free(s->order);
    stf_free(s->probs);
    stf_free(s->penalized);
    s->penalized = NULL;
    s->order = NULL;
    s->probs = NULL;
}

/* Sorts candidate indices by descending logit, ties by ascending index (deterministic).
 * A heap would be cheaper for small k; the vocabulary sort is < 1% of a token's time. */
static int cmp_desc(const void *a, const void *b, void *ctx)
{
    const float *logits = ctx;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    float x = logits[i], y = logits[j];
    if (x != y) return x > y ? -1 : 1;
    return (i > j) - (i < j);
}

uint32_t sampler_sample(struct sampler *s, const float *logits)
{
    uint32_t V = s->vocab;
    if (s->p.temperature == 0.0f) return argmax(logits, V);
    for (uint32_t i = 0; i < V; i++)
        s->order[i] = i;
    qsort_r(s->order, V, sizeof *s->order, cmp_desc, (void *)logits);
    uint32_t n = V;
    if (s->p.top_k > 0 && s->p.top_k < n) n = s->p.top_k;
    /* softmax(logits / T) over the kept candidates, in double for a stable cumulative sum */
    double mx = logits[s->order[0]], sum = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        double e = exp(((double)logits[s->order[i]] - mx) / s->p.temperature);
        s->probs[i] = (float)e;
        sum += e;
    }
    if (s->p.top_p < 1.0f) {
        double cum = 0.0;
        uint32_t keep = n;
        for (uint32_t i = 0; i < n; i++) {
            cum += s->probs[i] / sum;
            if (cum >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        sum = 0.0;
        for (uint32_t i = 0; i < n; i++)
            sum += s->probs[i];
    }
    double u = (double)(rng_next(&s->rng) >> 11) * (1.0 / 9007199254740992.0) * sum;
    double cum = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        cum += s->probs[i];
        if (u < cum) return s->order[i];
    }
    return s->order[n - 1];
}

uint32_t sampler_sample_history(struct sampler *s, const float *logits, const uint32_t *history,
                                uint32_t n)
{
    if (!s->penalized || n == 0) return sampler_sample(s, logits);
    memcpy(s->penalized, logits, (size_t)s->vocab * sizeof *logits);
    const float p = s->p.repeat_penalty;
    uint32_t from = n > s->p.repeat_last_n ? n - s->p.repeat_last_n : 0;
    for (uint32_t i = from; i < n; i++) {
        uint32_t tok = history[i];
        if (tok >= s->vocab) continue;
        bool seen = false; /* a token repeated in the window is penalised once */
        for (uint32_t j = from; j < i && !seen; j++)
            seen = history[j] == tok;
        if (seen) continue;
        float l = logits[tok];
        s->penalized[tok] = l > 0.0f ? l / p : l * p;
    }
    return sampler_sample(s, s->penalized);
}
