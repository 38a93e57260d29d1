/*
 * sparsetf-bench: the layout of the paper's Table 1 on this machine. For each model size
 * (800m and 17b shapes of SPEC §5) and each variant (baseline, +Sparse FF, +Sparse QKV,
 * +both, +both with the sparse output layer) it times one decoder block for one token at a
 * time, and the output layer, then reports medians, spread, the speedup over the baseline,
 * the bytes of weights a token reads, achieved GB/s, and that as a fraction of this
 * machine's memory bandwidth measured in the same run (a STREAM triad).
 *
 * Weights are random and in memory (a slice of 1 or a few layers, like the paper's timing
 * of a slice); inputs change every repetition so the sparse layers pick different rows.
 * Per-token time = n_layers x block + output layer: extrapolated from the measured slice.
 * One JSON line per result on stdout (or --json FILE), the human table on stderr.
 *
 * The `terraformer` variant is the {800m,17b}-terraformer preset: reversible blocks (two
 * attention sub-layers and the FF each), all sparse, SRU branch, LSH attention (SPEC §2, §3).
 *
 * --long P1,P2,... (SPEC §2's point): one 800m-terraformer block with LSH attention against
 * the same block with softmax attention over the whole KV cache, decoding positions 0 to the
 * largest P token by token (the two in turn), and the median per-token block time over the
 * 64 positions before each P (thread CPU time, one thread), with the per-session cache
 * memory of each. --long-only lsh or
 * softmax runs one of the two alone (the other's growing KV cache then does not evict the
 * first's working set between tokens).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/bench_model.h"
#include "model/forward.h"
#include "model/init.h"
#include "util/mem.h"
#include "util/rng.h"
#include "util/timer.h"

struct bench_opts {
    int reps, warmup, threads;
    const char *sizes;
    const char *kernels;
    const char *dtype; /* "f32", "q8", or "f32,q8": each variant in both, q8 timed against f32 */
    const char *only;  /* comma-separated variant names, NULL = all */
    FILE *json;
    double stream_mb;
};

/* STREAM triad a = b + s*c over arrays far larger than the caches; bytes counted as STREAM
 * does (3 arrays x 4 bytes per element, no write-allocate). Returns the median GB/s. */
static double stream_triad_gbs(size_t n, int reps, double *spread_lo, double *spread_hi)
{
    float *a = stf_alloc(n * sizeof *a), *b = stf_alloc(n * sizeof *b),
          *c = stf_alloc(n * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "sparsetf-bench: cannot allocate STREAM arrays\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        b[i] = (float)i;
        c[i] = 1.0f;
    }
    double *gbs = calloc((size_t)reps, sizeof *gbs);
    const float s = 3.0f;
    for (int r = -1; r < reps; r++) {
        double t = stf_now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] + s * c[i];
        t = stf_now() - t;
        if (r >= 0) gbs[r] = 3.0 * (double)n * sizeof(float) / t / 1e9;
    }
    volatile float sink = a[n / 2];
    (void)sink;
    double med = stf_median(gbs, reps);
    *spread_lo = gbs[0];
    *spread_hi = gbs[reps - 1];
    free(gbs);
    stf_free(a), stf_free(b), stf_free(c);
    return med;
}

struct variant {
    const char *name;
    int sparse_ff, sparse_qkv, sparse_out, terraformer;
};

static const struct variant variants[] = {
    {"baseline", 0, 0, 0, 0}, {"+sparse_ff", 1, 0, 0, 0},       {"+sparse_qkv", 0, 1, 0, 0},
    {"+both", 1, 1, 0, 0},    {"+both+sparse_out", 1, 1, 1, 0}, {"terraformer", 1, 1, 1, 1},
};

static struct model_config preset_config(const char *name)
{
    struct model_config c = {0};
    struct stf_error err = {0};
    if (model_config_parse(&c, model_preset_text(name), name, &err)) {
        fprintf(stderr, "sparsetf-bench: %s\n", err.msg);
        exit(1);
    }
    return c;
}

/* The config of one Table 1 row: the dense preset with the sparse preset's FF / QKV /
 * output swapped in (the sparse FF keeps its own d_ff, as in SPEC §5). */
static struct model_config variant_config(const char *size, const struct variant *v,
                                          uint32_t slice_layers, enum weight_type weights)
{
    char dense_name[32], sparse_name[32];
    snprintf(dense_name, sizeof dense_name, "%s-dense", size);
    snprintf(sparse_name, sizeof sparse_name, "%s-sparse", size);
    struct model_config dn = {0}, sp = {0};
    struct stf_error err = {0};
    if (model_config_parse(&dn, model_preset_text(dense_name), dense_name, &err) ||
        model_config_parse(&sp, model_preset_text(sparse_name), sparse_name, &err)) {
        fprintf(stderr, "sparsetf-bench: %s\n", err.msg);
        exit(1);
    }
    struct model_config c = dn;
    if (v->terraformer) {
        char name[32];
        snprintf(name, sizeof name, "%s-terraformer", size);
        c = preset_config(name);
        c.n_layers = slice_layers;
        c.weights = weights;
        c.max_seq_len = 256;
        return c;
    }
    c.n_layers = slice_layers;
    c.weights = weights;
    c.max_seq_len = 256;
    if (v->sparse_ff) {
        c.ff = FF_SPARSE;
        c.d_ff = sp.d_ff;
        c.ff_block = sp.ff_block;
        c.ff_rank = sp.ff_rank;
    }
    if (v->sparse_qkv) {
        c.attn = ATTN_SPARSE_QKV;
        c.qkv_modules = sp.qkv_modules;
    }
    if (v->sparse_out) {
        c.out = OUT_MULT;
        c.out_modules = sp.out_modules;
    }
    return c;
}

static int variant_listed(const char *list, const char *name);

/* One variant's slice, built in memory, with its state, ready to time a token. */
struct bench_model {
    const struct variant *v;
    struct model_config cfg;
    uint32_t slice;       /* layers built (enough to exceed the cache, see below) */
    uint32_t full_layers; /* layers of the whole model, for the per-token estimate */
    struct model *m;
    struct seq_state *s;
    struct workspace *ws;
    float *x, *logits;
    uint32_t pos;
    struct rng rng;
};

static void die(const struct stf_error *err)
{
    fprintf(stderr, "sparsetf-bench: %s\n", err->msg);
    exit(1);
}

static void bench_model_build(struct bench_model *b, const char *size, const struct variant *v,
                              const struct bench_opts *o, enum weight_type weights)
{
    memset(b, 0, sizeof *b);
    struct stf_error err = {0};
    char dense_name[32];
    snprintf(dense_name, sizeof dense_name, "%s-dense", size);
    struct model_config dn = {0};
    if (model_config_parse(&dn, model_preset_text(dense_name), dense_name, &err)) die(&err);
    /* the slice must be much larger than the last-level cache or the weights stay cached */
    struct model_config one = variant_config(size, v, 1, weights);
    uint64_t layer_bytes = model_layer_bytes(&one);
    b->slice = 1;
    while ((uint64_t)b->slice * layer_bytes < (uint64_t)(o->stream_mb * 1e6) && b->slice < 8)
        b->slice++;
    b->v = v;
    b->cfg = variant_config(size, v, b->slice, weights);
    /* the sparse presets have 14 layers at 17b where the dense have 15: per-token time uses
     * the layer count of the model the variant belongs to */
    b->full_layers =
        (v->sparse_ff || v->sparse_qkv) ? (strcmp(size, "17b") ? 24u : 14u) : dn.n_layers;
    if (v->terraformer) {
        char name[32];
        snprintf(name, sizeof name, "%s-terraformer", size);
        b->full_layers = preset_config(name).n_layers;
    }
    struct model_select sel = {
        .layer_begin = 0, .layer_end = b->slice, .embed = false, .head = true};
    fprintf(stderr, "  %-4s %-17s %-3s building a %u-layer slice (%.2f GB)...\n", size, v->name,
            weights == WEIGHTS_Q8 ? "q8" : "f32", b->slice, (double)(b->slice * layer_bytes) / 1e9);
    if (model_create_random(&b->cfg, 1234, &sel, MODEL_RANDOM_FAST, &b->m, &err) ||
        seq_state_create(&b->cfg, 0, b->slice, b->cfg.max_seq_len, &b->s, &err) ||
        workspace_create(&b->cfg, b->cfg.max_seq_len, kernels_by_name(o->kernels), &b->ws, &err))
        die(&err);
    seq_state_reset(b->s);
    b->x = stf_alloc((size_t)model_streams(&b->cfg) * b->cfg.d_model * sizeof *b->x);
    b->logits = stf_alloc(b->cfg.vocab_size * sizeof *b->logits);
    rng_seed(&b->rng, 99);
}

/* Times one token through the slice and the output layer; a new random input each time, so
 * the sparse layers pick other rows. */
static void bench_model_token(struct bench_model *b, double *block_s, double *head_s)
{
    if (b->pos == b->cfg.max_seq_len) {
        seq_state_reset(b->s);
        b->pos = 0;
    }
    for (uint32_t i = 0; i < model_streams(&b->cfg) * b->cfg.d_model; i++)
        b->x[i] = rng_normal(&b->rng);
    double t0 = stf_now();
    seq_state_lsh_prepare(b->s, 1); /* LSH: seed, and the drops rank 0 would order */
    forward_layers(b->m, b->s, b->ws, b->pos++, b->x);
    double t1 = stf_now();
    forward_head(b->m, b->ws, b->x, b->logits);
    double t2 = stf_now();
    *block_s = (t1 - t0) / b->slice;
    *head_s = t2 - t1;
}

static void bench_model_free(struct bench_model *b)
{
    stf_free(b->x);
    stf_free(b->logits);
    workspace_free(b->ws);
    seq_state_free(b->s);
    model_close(b->m);
}

struct row {
    char size[8];
    const char *dtype; /* "f32" or "q8" */
    const char *vs;    /* what block_x / token_x compare with: "baseline" or "f32" */
    const struct variant *v;
    uint32_t full_layers;
    int n;
    double block_ms, block_lo, block_hi, head_ms, token_ms;
    double block_x, token_x; /* medians of the per-pair ratios baseline / variant */
    double bytes_block, bytes_head, gbs_block;
};

static void row_fill(struct row *r, const char *size, const struct bench_model *b, double *tb,
                     double *th, int n)
{
    memset(r, 0, sizeof *r);
    snprintf(r->size, sizeof r->size, "%s", size);
    r->v = b->v;
    r->dtype = b->cfg.weights == WEIGHTS_Q8 ? "q8" : "f32";
    r->vs = "baseline";
    r->full_layers = b->full_layers;
    r->n = n;
    r->head_ms = 1e3 * stf_median(th, n);
    r->block_ms = 1e3 * stf_median(tb, n); /* sorts tb */
    r->block_lo = 1e3 * tb[0];
    r->block_hi = 1e3 * tb[n - 1];
    r->token_ms = r->full_layers * r->block_ms + r->head_ms;
    r->bytes_block = (double)model_layer_read_bytes(&b->cfg);
    r->bytes_head = (double)model_head_read_bytes(&b->cfg);
    r->gbs_block = r->bytes_block / (r->block_ms * 1e-3) / 1e9;
    r->block_x = r->token_x = 1.0;
}

/* Times every variant of one size against the baseline, token by token in turn (A B A B),
 * so that each speedup is a median of ratios measured moments apart on a noisy machine. */
static int run_size(const char *size, const struct bench_opts *o, struct row *rows)
{
    int nv = 0;
    const struct variant *todo[8];
    for (size_t v = 1; v < sizeof variants / sizeof variants[0]; v++)
        if (!o->only || variant_listed(o->only, variants[v].name)) todo[nv++] = &variants[v];
    struct bench_model base;
    enum weight_type wt = strcmp(o->dtype, "q8") == 0 ? WEIGHTS_Q8 : WEIGHTS_F32;
    bench_model_build(&base, size, &variants[0], o, wt);
    int per = o->reps, total_base = per * (nv ? nv : 1);
    double *btb = calloc((size_t)total_base, sizeof *btb);
    double *bth = calloc((size_t)total_base, sizeof *bth);
    double *tb = calloc((size_t)per, sizeof *tb), *th = calloc((size_t)per, sizeof *th);
    double *rb = calloc((size_t)per, sizeof *rb), *rt = calloc((size_t)per, sizeof *rt);
    int nb = 0;
    double db, dh;
    if (!nv) {
        for (int i = 0; i < o->warmup; i++)
            bench_model_token(&base, &db, &dh);
        for (int i = 0; i < per; i++, nb++)
            bench_model_token(&base, &btb[nb], &bth[nb]);
    }
    for (int k = 0; k < nv; k++) {
        struct bench_model var;
        bench_model_build(&var, size, todo[k], o, wt);
        for (int i = 0; i < o->warmup; i++) {
            bench_model_token(&base, &db, &dh);
            bench_model_token(&var, &db, &dh);
        }
        for (int i = 0; i < per; i++, nb++) {
            bench_model_token(&base, &btb[nb], &bth[nb]);
            bench_model_token(&var, &tb[i], &th[i]);
            rb[i] = btb[nb] / tb[i];
            rt[i] = (base.full_layers * btb[nb] + bth[nb]) / (var.full_layers * tb[i] + th[i]);
        }
        row_fill(&rows[1 + k], size, &var, tb, th, per);
        rows[1 + k].block_x = stf_median(rb, per);
        rows[1 + k].token_x = stf_median(rt, per);
        bench_model_free(&var);
    }
    row_fill(&rows[0], size, &base, btb, bth, nb);
    bench_model_free(&base);
    free(btb), free(bth), free(tb), free(th), free(rb), free(rt);
    return 1 + nv;
}

/* --dtype f32,q8: each variant (baseline included) built in f32 and in q8 and timed token by
 * token in turn, so each q8 speedup is a median of ratios to the same variant in f32. */
static int run_dtypes(const char *size, const struct bench_opts *o, struct row *rows)
{
    int nv = 0, nrows = 0;
    const struct variant *todo[8];
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
        if (v == 0 || !o->only || variant_listed(o->only, variants[v].name))
            todo[nv++] = &variants[v];
    int per = o->reps;
    double *ta = calloc((size_t)per, sizeof *ta), *ha = calloc((size_t)per, sizeof *ha);
    double *tq = calloc((size_t)per, sizeof *tq), *hq = calloc((size_t)per, sizeof *hq);
    double *rb = calloc((size_t)per, sizeof *rb), *rt = calloc((size_t)per, sizeof *rt);
    double db, dh;
    for (int k = 0; k < nv; k++) {
        struct bench_model a, q;
        bench_model_build(&a, size, todo[k], o, WEIGHTS_F32);
        bench_model_build(&q, size, todo[k], o, WEIGHTS_Q8);
        for (int i = 0; i < o->warmup; i++) {
            bench_model_token(&a, &db, &dh);
            bench_model_token(&q, &db, &dh);
        }
        for (int i = 0; i < per; i++) {
            bench_model_token(&a, &ta[i], &ha[i]);
            bench_model_token(&q, &tq[i], &hq[i]);
            rb[i] = ta[i] / tq[i];
            rt[i] = (a.full_layers * ta[i] + ha[i]) / (q.full_layers * tq[i] + hq[i]);
        }
        row_fill(&rows[nrows], size, &a, ta, ha, per);
        rows[nrows++].vs = "f32";
        row_fill(&rows[nrows], size, &q, tq, hq, per);
        rows[nrows].vs = "f32";
        rows[nrows].block_x = stf_median(rb, per);
        rows[nrows++].token_x = stf_median(rt, per);
        bench_model_free(&a);
        bench_model_free(&q);
    }
    free(ta), free(ha), free(tq), free(hq), free(rb), free(rt);
    return nrows;
}

/* Is name one of the comma-separated names in list? (The baseline always runs: the
 * speedups are ratios to it.) */
static int variant_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
    return 0;
}

/* One 800m-terraformer block decoding a long sequence: LSH attention (the preset) or, with
 * lsh_period = 0, softmax attention over the whole KV cache. */
struct long_model {
    struct model_config cfg;
    struct model *m;
    struct seq_state *s;
    struct workspace *ws;
    struct forward_profile prof; /* thread CPU seconds per part (FWD_ATTN: both sub-layers) */
    float *x;
    struct rng rng;
};

/* CPU time of this thread: on a shared machine the wall clock mostly measures how long the
 * scheduler kept the thread off the CPU, which varies by tens of percent within a run. */
static double thread_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One block of 800m-terraformer (LSH in both sub-layers, or softmax: lsh_period = 0). */
static void long_model_build(struct long_model *b, int lsh, uint32_t positions,
                             const struct bench_opts *o)
{
    struct stf_error err = {0};
    memset(b, 0, sizeof *b);
    b->cfg = preset_config("800m-terraformer");
    b->cfg.n_layers = 1;
    b->cfg.max_seq_len = positions;
    if (!lsh) b->cfg.lsh_period = 0;
    struct model_select sel = {.layer_begin = 0, .layer_end = 1, .embed = false, .head = false};
    if (model_create_random(&b->cfg, 1234, &sel, MODEL_RANDOM_FAST, &b->m, &err) ||
        seq_state_create(&b->m->cfg, 0, 1, positions, &b->s, &err) ||
        workspace_create(&b->m->cfg, positions, kernels_by_name(o->kernels), &b->ws, &err))
        die(&err);
    seq_state_reset(b->s);
    b->prof.now = thread_cpu_seconds;
    b->ws->prof = &b->prof;
    b->x = stf_alloc(2 * (size_t)b->cfg.d_model * sizeof *b->x);
    rng_seed(&b->rng, 7);
}

/* Softmax attention's work per token depends on the position, not on the cached values: its
 * KV caches are filled with random values once (every page touched), so a window at position
 * p can be decoded without decoding the p positions before it. */
static void long_model_fill_caches(struct long_model *b, uint32_t positions)
{
    uint64_t n = model_layer_state_bytes(&b->cfg, positions) / sizeof(float);
    float *f = (float *)b->s->data;
    for (uint64_t i = 0; i < n; i++)
        f[i] = 0.1f * rng_normal(&b->rng);
}

/* Decodes position pos; returns the block's thread CPU seconds, *attn those of its two
 * attention sub-layers (projections and attention over the cache). */
static double long_model_token(struct long_model *b, uint32_t pos, double *attn)
{
    for (uint32_t i = 0; i < 2 * b->cfg.d_model; i++)
        b->x[i] = rng_normal(&b->rng);
    memset(b->prof.seconds, 0, sizeof b->prof.seconds);
    double t0 = thread_cpu_seconds();
    seq_state_lsh_prepare(b->s, 1);
    forward_layers(b->m, b->s, b->ws, pos, b->x);
    double t = thread_cpu_seconds() - t0;
    *attn = b->prof.seconds[FWD_ATTN];
    return t;
}

static void long_model_free(struct long_model *b)
{
    stf_free(b->x);
    workspace_free(b->ws);
    seq_state_free(b->s);
    model_close(b->m);
}

/* --long: per-token attention and block CPU time against position, LSH vs softmax. LSH
 * decodes every position from 0 (its cache fills and drops as in a session); softmax decodes
 * the window before each checkpoint over random caches of that length. Both in one process,
 * window after window, so the ratios come from one run. */
static int run_long(const char *list, const char *only, const struct bench_opts *o)
{
    uint32_t at[16], n = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < 16;
         t = strtok_r(NULL, ",", &save)) {
        long v = strtol(t, NULL, 10);
        if (v < 128 || v > (1l << 20) || (n && v <= at[n - 1] + 64)) {
            fprintf(stderr,
                    "sparsetf-bench: --long wants increasing positions in 128..%ld, each at "
                    "least 64 past the one before, got `%s`\n",
                    1l << 20, t);
            return 2;
        }
        at[n++] = (uint32_t)v;
    }
    if (!n) return 2;
    enum { WINDOW = 64, WARM = 8 };
    int do_lsh = !only || !strcmp(only, "lsh"), do_soft = !only || !strcmp(only, "softmax");
    if (!do_lsh && !do_soft) {
        fprintf(stderr, "sparsetf-bench: --long-only wants lsh or softmax, got `%s`\n", only);
        return 2;
    }
    struct long_model lsh, dense;
    fprintf(stderr,
            "long sequences: one 800m-terraformer block, LSH decoding positions 0..%u, softmax "
            "the %d before each checkpoint...\n",
            at[n - 1] - 1, WINDOW);
    long_model_build(&lsh, 1, do_lsh ? at[n - 1] : 64, o);
    long_model_build(&dense, 0, do_soft ? at[n - 1] : 64, o);
    if (do_soft) long_model_fill_caches(&dense, at[n - 1]);
    uint64_t mem_lsh = model_layer_state_bytes(&lsh.cfg, at[n - 1]);
    double la[WINDOW], lb[WINDOW], da[WINDOW], db[WINDOW];
    double la0 = 0, lb0 = 0, da0 = 0, db0 = 0, attn;
    fprintf(stderr, "\n%9s | %-31s | %-31s | %-11s | %-8s %-9s | %-11s\n", "", "LSH cpu ms/token",
            "softmax cpu ms/token", "softmax/LSH", "cache MB", "", "LSH entries");
    fprintf(stderr, "%9s | %11s %7s %11s | %11s %7s %11s | %11s | %8s %9s | %11s\n", "position",
            "attention", "/first", "block", "attention", "/first", "block", "attention", "LSH",
            "softmax", "held");
    uint32_t lsh_pos = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t w0 = at[k] - WINDOW;
        if (do_lsh) {
            for (; lsh_pos < w0; lsh_pos++)
                long_model_token(&lsh, lsh_pos, &attn);
            for (uint32_t w = 0; w < WINDOW; w++, lsh_pos++)
                lb[w] = long_model_token(&lsh, lsh_pos, &la[w]);
        }
        if (do_soft) {
            for (uint32_t p = w0 - WARM; p < w0; p++)
                long_model_token(&dense, p, &attn);
            for (uint32_t w = 0; w < WINDOW; w++)
                db[w] = long_model_token(&dense, w0 + w, &da[w]);
        }
        double mla = do_lsh ? 1e3 * stf_median(la, WINDOW) : 0;
        double mlb = do_lsh ? 1e3 * stf_median(lb, WINDOW) : 0;
        double mda = do_soft ? 1e3 * stf_median(da, WINDOW) : 0;
        double mdb = do_soft ? 1e3 * stf_median(db, WINDOW) : 0;
        if (k == 0) la0 = mla, lb0 = mlb, da0 = mda, db0 = mdb;
        uint64_t mem_dense = model_layer_state_bytes(&dense.cfg, at[k]);
        /* entries each LSH cache held over the window (SPEC §2: pos + 1 until P, then
         * P - D + 1 ... P): the selection scans them all, attention reads at most C */
        uint32_t held_lo = UINT32_MAX, held_hi = 0;
        for (uint32_t p = w0; p < at[k]; p++) {
            uint32_t e = model_lsh_entries(&lsh.cfg, p);
            held_lo = e < held_lo ? e : held_lo, held_hi = e > held_hi ? e : held_hi;
        }
        char held[24];
        snprintf(held, sizeof held, "%u..%u", held_lo, held_hi);
        char c[6][16] = {"-", "-", "-", "-", "-", "-"}, r[16] = "-";
        if (do_lsh) {
            snprintf(c[0], 16, "%.3f", mla);
            snprintf(c[1], 16, "%.3f", mla / la0);
            snprintf(c[2], 16, "%.3f", mlb);
        }
        if (do_soft) {
            snprintf(c[3], 16, "%.3f", mda);
            snprintf(c[4], 16, "%.3f", mda / da0);
            snprintf(c[5], 16, "%.3f", mdb);
        }
        if (do_lsh && do_soft) snprintf(r, sizeof r, "%.2fx", mda / mla);
        fprintf(stderr, "%9u | %11s %7s %11s | %11s %7s %11s | %11s | %8.1f %9.1f | %11s\n", at[k],
                c[0], c[1], c[2], c[3], c[4], c[5], r, (double)mem_lsh / 1e6,
                (double)mem_dense / 1e6, held);
        fprintf(o->json,
                "{\"kind\":\"long\",\"position\":%u,\"lsh_attn_cpu_ms\":%.4f,"
                "\"lsh_block_cpu_ms\":%.4f,\"softmax_attn_cpu_ms\":%.4f,"
                "\"softmax_block_cpu_ms\":%.4f,\"lsh_attn_over_first\":%.4f,"
                "\"lsh_block_over_first\":%.4f,\"softmax_attn_over_first\":%.4f,"
                "\"softmax_block_over_first\":%.4f,\"lsh_state_bytes\":%llu,"
                "\"softmax_state_bytes\":%llu,\"lsh_entries_min\":%u,\"lsh_entries_max\":%u,"
                "\"window\":%d,\"threads\":%d,\"kernels\":\"%s\","
                "\"timed\":\"%s\"}\n",
                at[k], mla, mlb, mda, mdb, la0 > 0 ? mla / la0 : 0, lb0 > 0 ? mlb / lb0 : 0,
                da0 > 0 ? mda / da0 : 0, db0 > 0 ? mdb / db0 : 0, (unsigned long long)mem_lsh,
                (unsigned long long)mem_dense, held_lo, held_hi, WINDOW, o->threads, o->kernels,
                only ? only : "both");
        fflush(o->json);
    }
    fprintf(stderr,
            "(medians of the %d positions before each checkpoint, thread CPU time; attention = "
            "Attn1 + Attn2 with their projections, block = + FFB; cache = one session's state "
            "of the block)\n",
            WINDOW);
    long_model_free(&lsh);
    long_model_free(&dense);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: sparsetf-bench [--sizes 800m,17b] [--reps N] [--warmup N] [--threads N]\n"
        "                      [--kernels fast|ref] [--json FILE] [--variants +both,...]\n"
        "                      [--dtype f32|q8|f32,q8]\n"
        "                      [--long P1,P2,... [--long-only lsh|softmax]]\n"
        "       sparsetf-bench --model FILE [--tokens N] [--warmup N] [--threads N]\n"
        "                      [--madvise none|willneed|hugepage] [--prefault]\n"
        "                      [--clock wall|cpu] [--json FILE]\n"
        "Without --model: times decoder blocks and output layers for Table 1's variants, built\n"
        "in memory; --dtype q8 times q8-weight models (docs/file-format.md), f32,q8 times every\n"
        "variant in both, in turn, and gives the q8 speedup over f32. With --model: the\n"
        "per-token time budget of a model file on the engine's own path (mapped file, forward\n"
        "pass, sampling): time per part and per kernel shape against its roofline bound,\n"
        "max(bytes / STREAM triad, multiply-adds / FMA peak), both measured first with the\n"
        "same threads; --clock cpu times everything in CPU seconds per thread (for a machine\n"
        "shared with other jobs). --long times LSH against softmax attention per token at the\n"
        "given positions, with each one's cache per session. See docs/benchmarks.md.\n");
}

int main(int argc, char **argv)
{
    kernels_prepare_process(argv);
    struct bench_opts o = {.reps = 15,
                           .warmup = 3,
                           .threads = 1,
                           .sizes = "800m,17b",
                           .kernels = "fast",
                           .dtype = "f32",
                           .json = stdout,
                           .stream_mb = 256};
    static const struct option lo[] = {
        {"sizes", required_argument, 0, 's'},     {"reps", required_argument, 0, 'r'},
        {"warmup", required_argument, 0, 'w'},    {"threads", required_argument, 0, 't'},
        {"kernels", required_argument, 0, 'k'},   {"json", required_argument, 0, 'j'},
        {"variants", required_argument, 0, 'v'},  {"dtype", required_argument, 0, 'd'},
        {"model", required_argument, 0, 'm'},     {"tokens", required_argument, 0, 'n'},
        {"madvise", required_argument, 0, 'a'},   {"prefault", no_argument, 0, 'p'},
        {"clock", required_argument, 0, 'c'},     {"long", required_argument, 0, 'l'},
        {"long-only", required_argument, 0, 'L'}, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},         {0, 0, 0, 0}};
    int warmup_given = 0;
    struct bench_model_opts mo = {.tokens = 32, .warmup = -1, .kernels = "fast"};
    int ch;
    const char *long_list = NULL, *long_only = NULL;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 's':
            o.sizes = optarg;
            break;
        case 'r':
            o.reps = atoi(optarg);
            break;
        case 'w':
            o.warmup = atoi(optarg);
            warmup_given = 1;
            break;
        case 't':
            o.threads = atoi(optarg);
            break;
        case 'k':
            o.kernels = optarg;
            break;
        case 'v':
            o.only = optarg;
            break;
        case 'd':
            o.dtype = optarg;
            if (strcmp(o.dtype, "f32") && strcmp(o.dtype, "q8") && strcmp(o.dtype, "f32,q8")) {
                fprintf(stderr, "sparsetf-bench: --dtype `%s`: expected f32, q8 or f32,q8\n",
                        o.dtype);
                return 2;
            }
            break;
        case 'm':
            mo.path = optarg;
            break;
        case 'n':
            mo.tokens = atoi(optarg);
            break;
        case 'p':
            mo.prefault = 1;
            break;
        case 'c':
            if (strcmp(optarg, "wall") && strcmp(optarg, "cpu")) {
                fprintf(stderr, "sparsetf-bench: --clock %s: expected wall or cpu\n", optarg);
                return 2;
            }
            mo.cpu_clock = strcmp(optarg, "cpu") == 0;
            break;
        case 'a':
            if (strcmp(optarg, "none") == 0)
                mo.madvise = BENCH_MADV_NONE;
            else if (strcmp(optarg, "willneed") == 0)
                mo.madvise = BENCH_MADV_WILLNEED;
            else if (strcmp(optarg, "hugepage") == 0)
                mo.madvise = BENCH_MADV_HUGEPAGE;
            else {
                fprintf(stderr,
                        "sparsetf-bench: --madvise %s: expected none, willneed or "
                        "hugepage\n",
                        optarg);
                return 2;
            }
            break;
        case 'l':
            long_list = optarg;
            break;
        case 'L':
            long_only = optarg;
            break;
        case 'j':
            if (!(o.json = fopen(optarg, "w"))) {
                fprintf(stderr, "sparsetf-bench: %s: %s\n", optarg, strerror(errno));
                return 1;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("sparsetf-bench %s\n", PROJECT_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sparsetf-bench: unexpected argument `%s` (see --help)\n", argv[optind]);
        return 2;
    }
    /* every name is checked before the STREAM run and the (long) model builds */
    char names[256];
    snprintf(names, sizeof names, "%s", o.sizes);
    for (char *save = NULL, *s = strtok_r(names, ",", &save); s; s = strtok_r(NULL, ",", &save))
        if (strcmp(s, "800m") && strcmp(s, "17b")) {
            fprintf(stderr, "sparsetf-bench: unknown size `%s` in --sizes (800m or 17b)\n", s);
            return 2;
        }
    if (o.only) {
        snprintf(names, sizeof names, "%s", o.only);
        for (char *save = NULL, *s = strtok_r(names, ",", &save); s;
             s = strtok_r(NULL, ",", &save)) {
            bool known = false;
            for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
                known = known || strcmp(s, variants[v].name) == 0;
            if (!known) {
                fprintf(stderr,
                        "sparsetf-bench: unknown variant `%s` in --variants (baseline, "
                        "+sparse_ff, +sparse_qkv, +both, +both+sparse_out)\n",
                        s);
                return 2;
            }
        }
    }
    if (o.reps < 3 || o.warmup < 0 || o.threads < 1 || !kernels_by_name(o.kernels)) {
        fprintf(stderr, "sparsetf-bench: need --reps >= 3, --warmup >= 0, --threads >= 1, "
                        "--kernels fast|ref\n");
        return 2;
    }
    kernels_set_threads(o.threads);
    if (mo.path) {
        if (mo.tokens < 3) {
            fprintf(stderr, "sparsetf-bench: need --tokens >= 3\n");
            return 2;
        }
        struct model_config mcfg;
        struct stf_error merr = {0};
        if (model_read_config(mo.path, &mcfg, &merr)) { /* before the roofline's seconds */
            fprintf(stderr, "sparsetf-bench: %s\n", merr.msg);
            return 1;
        }
        mo.warmup = warmup_given ? o.warmup : 4;
        if (mo.cpu_clock) roofline_use_cpu_clock(o.threads);
        mo.kernels = o.kernels;
        mo.json = o.json;
        struct roofline rl;
        if (roofline_measure(&rl, o.threads, (size_t)(o.stream_mb * 1e6 / sizeof(float)), 7)) {
            fprintf(stderr, "sparsetf-bench: cannot allocate the STREAM arrays\n");
            return 1;
        }
        fprintf(stderr,
                "roofline (%d thread%s): STREAM triad %.2f GB/s (min %.2f, max %.2f); %s peak "
                "%.1f GMAC/s (min %.1f, max %.1f)\n",
                rl.threads, rl.threads == 1 ? "" : "s", rl.stream_gbs, rl.stream_lo, rl.stream_hi,
                rl.isa, rl.peak_gmacs, rl.peak_lo, rl.peak_hi);
        fprintf(o.json,
                "{\"kind\":\"roofline\",\"threads\":%d,\"stream_gbs\":%.3f,\"peak_gmacs\":%.2f,"
                "\"isa\":\"%s\"}\n",
                rl.threads, rl.stream_gbs, rl.peak_gmacs, rl.isa);
        int rc = bench_model_run(&mo, &rl);
        if (o.json != stdout) fclose(o.json);
        return rc;
    }
    if (long_list) {
        int rc = run_long(long_list, long_only, &o);
        if (o.json != stdout) fclose(o.json);
        return rc;
    }
    double slo, shi;
    size_t stream_n = (size_t)(o.stream_mb * 1e6 / sizeof(float));
    double stream = stream_triad_gbs(stream_n, 7, &slo, &shi);
    fprintf(stderr,
            "STREAM triad (%d thread%s, 3 x %.0f MB): median %.2f GB/s (min %.2f, max %.2f)\n",
            o.threads, o.threads == 1 ? "" : "s", o.stream_mb, stream, slo, shi);
    fprintf(o.json,
            "{\"kind\":\"stream_triad\",\"gbs\":%.3f,\"min\":%.3f,\"max\":%.3f,\"threads\":%d}\n",
            stream, slo, shi, o.threads);

    char sizes[64];
    snprintf(sizes, sizeof sizes, "%s", o.sizes);
    struct row rows[32];
    int nrows = 0;
    for (char *save = NULL, *size = strtok_r(sizes, ",", &save); size;
         size = strtok_r(NULL, ",", &save)) {
        if (strcmp(size, "800m") && strcmp(size, "17b")) {
            fprintf(stderr, "sparsetf-bench: unknown size `%s` (800m or 17b)\n", size);
            return 2;
        }
        if (nrows + 10 > 32) break;
        if (strcmp(o.dtype, "f32,q8") == 0)
            nrows += run_dtypes(size, &o, rows + nrows);
        else
            nrows += run_size(size, &o, rows + nrows);
    }
    fprintf(stderr, "\n%-5s %-17s %-5s %10s %17s %9s %10s %8s %9s %8s %7s %7s\n", "size", "variant",
            "dtype", "block ms", "(min..max)", "block x", "token ms", "token x", "MB/block", "GB/s",
            "%STREAM", "layers");
    for (int i = 0; i < nrows; i++) {
        const struct row *rw = &rows[i];
        fprintf(stderr,
                "%-5s %-17s %-5s %10.3f %8.3f..%-8.3f %8.2fx %10.2f %7.2fx %9.2f %8.2f %6.0f%% "
                "%7u\n",
                rw->size, rw->v->name, rw->dtype, rw->block_ms, rw->block_lo, rw->block_hi,
                rw->block_x, rw->token_ms, rw->token_x, rw->bytes_block / 1e6, rw->gbs_block,
                100 * rw->gbs_block / stream, rw->full_layers);
        fprintf(o.json,
                "{\"kind\":\"block\",\"size\":\"%s\",\"variant\":\"%s\",\"dtype\":\"%s\","
                "\"speedup_vs\":\"%s\",\"block_ms_median\":%.4f,"
                "\"block_ms_min\":%.4f,\"block_ms_max\":%.4f,\"head_ms_median\":%.4f,"
                "\"token_ms\":%.3f,\"layers\":%u,\"block_speedup\":%.2f,\"token_speedup\":%.2f,"
                "\"bytes_per_block\":%.0f,\"bytes_head\":%.0f,\"gbs\":%.3f,"
                "\"fraction_of_stream\":%.3f,\"reps\":%d,\"threads\":%d,\"kernels\":\"%s\"}\n",
                rw->size, rw->v->name, rw->dtype, rw->vs, rw->block_ms, rw->block_lo, rw->block_hi,
                rw->head_ms, rw->token_ms, rw->full_layers, rw->block_x, rw->token_x,
                rw->bytes_block, rw->bytes_head, rw->gbs_block, rw->gbs_block / stream, rw->n,
                o.threads, o.kernels);
    }
    fprintf(stderr,
            "(token ms = layers x block + output layer; x = median of per-token ratios "
            "to the %s, each pair timed in turn; MB/block = weight bytes a token reads)\n",
            strcmp(o.dtype, "f32,q8") == 0 ? "same variant in f32" : "baseline");
    if (o.json != stdout) fclose(o.json);
    return 0;
}
