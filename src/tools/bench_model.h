/*
 * bench_model: `sparsetf-bench --model FILE` — the per-token time budget of a model file on
 * the engine's own path. It maps the file as sparsetf-dist does, decodes greedily token by
 * token through forward_embed / forward_layers / forward_head and the sampler, and reports,
 * per part of the pass (embedding, norms, each sub-layer kind, residuals, output layer,
 * sampling) and per kernel shape, the median time per token, its roofline bound
 * (max(bytes / STREAM, multiply-adds / FMA peak), both measured in the same run with the same
 * threads) and the ratio; and the whole token against the sum of the bounds. Scaling
 * Transformer and Terraformer files (two streams, two attention sub-layers per block, LSH
 * caches seeded and dropped as rank 0 would order, seq_state_lsh_prepare).
 */
#ifndef STF_TOOLS_BENCH_MODEL_H
#define STF_TOOLS_BENCH_MODEL_H

#include <stdio.h>

#include "tools/roofline.h"

enum bench_madvise { BENCH_MADV_NONE, BENCH_MADV_WILLNEED, BENCH_MADV_HUGEPAGE };

struct bench_model_opts {
    const char *path;
    int tokens, warmup;
    const char *kernels;        /* "fast" or "ref" */
    enum bench_madvise madvise; /* advice given on every mapping after open */
    int prefault;               /* read one byte of every page before timing */
    FILE *json;                 /* one JSON line per result */
    int cpu_clock;              /* times are CPU seconds per thread (roofline_now) */
};

/* Runs the budget; messages go to stderr. Returns 0, or 1 on an error (printed). */
int bench_model_run(const struct bench_model_opts *o, const struct roofline *r);

#endif
