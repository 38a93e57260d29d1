/*
 * sparsetf-batch-bench: decoding throughput and per-token latency against the number of
 * concurrent sessions, batched vs unbatched, in one run. For each model and each batch size
 * B it keeps B sequences and times one decode step of all B of them two ways, interleaved
 * repetition by repetition on the same inputs:
 *   unbatched  B x (forward_layers + forward_head), one row at a time (what the engine does
 *              today with B sessions);
 *   batched    forward_layers_rows + forward_head_rows on the B rows at once.
 * Every batched row's logits are compared bitwise with the unbatched row's (a mismatch is an
 * error: batching must not change any session's output).
 *
 * A model is a preset (random weights, a slice of --layers layers plus the output layer, like
 * sparsetf-bench) or a .stf file (all its layers). Per-token figures are extrapolated to the
 * preset's full depth: layers time x (full layers / slice) + output layer. Times are this
 * thread's CPU time (CLOCK_THREAD_CPUTIME_ID; with --threads 1 it is the work done, not the
 * time other processes held the core — on a shared machine wall times swing by 10x), and
 * the speedup is also given as the median over steps of the wall-time ratio of the two
 * ways, timed moments apart. One JSON line per result on stdout (or --json FILE), the human
 * table on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/forward.h"
#include "model/init.h"
#include "util/mem.h"
#include "util/rng.h"
#include "util/timer.h"

#define MAX_MODELS  4
#define MAX_BATCHES 16

struct opts {
    int reps, warmup, threads, layers;
    const char *models, *kernels, *dtype;
    uint32_t batches[MAX_BATCHES];
    int nbatches;
    FILE *json;
};

struct bench_model {
    char name[64];
    struct model *m;
    uint32_t slice, full_layers;
};

static void die(const char *what, const struct stf_error *err)
{
    fprintf(stderr, "sparsetf-batch-bench: %s: %s\n", what, err->msg);
    exit(1);
}

static void model_load(struct bench_model *b, const char *name, const struct opts *o)
{
    struct stf_error err = {0};
    memset(b, 0, sizeof *b);
    const char *base = strrchr(name, '/');
    snprintf(b->name, sizeof b->name, "%s", base ? base + 1 : name); /* a file: its base name */
    const char *preset = model_preset_text(name);
    if (preset) {
        struct model_config cfg = {0};
        if (model_config_parse(&cfg, preset, name, &err)) die(name, &err);
        cfg.weights = strcmp(o->dtype, "q8") == 0 ? WEIGHTS_Q8 : WEIGHTS_F32;
        b->full_layers = cfg.n_layers;
        b->slice = (uint32_t)o->layers < cfg.n_layers ? (uint32_t)o->layers : cfg.n_layers;
        cfg.n_layers = b->slice;
        struct model_select sel = {
            .layer_begin = 0, .layer_end = b->slice, .embed = false, .head = true};
        fprintf(stderr, "%s: building a %u-layer %s slice with random weights...\n", name, b->slice,
                o->dtype);
        snprintf(b->name, sizeof b->name, "%s%s", name, cfg.weights == WEIGHTS_Q8 ? " q8" : "");
        if (model_create_random(&cfg, 1234, &sel, MODEL_RANDOM_FAST, &b->m, &err)) die(name, &err);
    } else {
        struct model_config cfg;
        if (model_read_config(name, &cfg, &err)) die(name, &err);
        struct model_select sel = {
            .layer_begin = 0, .layer_end = cfg.n_layers, .embed = false, .head = true};
        if (model_open(name, &sel, 0, &b->m, &err)) die(name, &err);
        b->slice = b->full_layers = cfg.n_layers;
    }
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct result {
    double unb_layers, unb_head, bat_layers, bat_head; /* CPU medians, seconds per step */
    double wall_ratio;                                 /* median of unbatched / batched wall */
};

/* One batch size on one model: B sequences per mode, reps + warmup steps. */
static struct result run_batch(const struct bench_model *b, uint32_t B, const struct opts *o)
{
    const struct model_config *c = &b->m->cfg;
    const struct kernels *k = kernels_by_name(o->kernels);
    uint32_t d = c->d_model, V = c->vocab_size, steps = (uint32_t)(o->reps + o->warmup);
    struct stf_error err = {0};
    struct seq_state **su = calloc(B, sizeof *su), **sb = calloc(B, sizeof *sb);
    struct workspace *ws;
    struct batch_workspace *bw;
    if (!su || !sb) exit(1);
    for (uint32_t r = 0; r < B; r++) {
        if (seq_state_create(c, 0, b->slice, steps, &su[r], &err) ||
            seq_state_create(c, 0, b->slice, steps, &sb[r], &err))
            die(b->name, &err);
        seq_state_reset(su[r]);
        seq_state_reset(sb[r]);
    }
    if (workspace_create(c, steps, k, &ws, &err) ||
        batch_workspace_create(c, steps, B, k, &bw, &err))
        die(b->name, &err);
    float *xu = stf_alloc((size_t)B * d * sizeof(float)), *xb = stf_alloc((size_t)B * d * 4);
    float *lu = stf_alloc((size_t)B * V * sizeof(float)), *lb = stf_alloc((size_t)B * V * 4);
    uint32_t *pos = stf_alloc(B * sizeof *pos), *where = stf_alloc(B * sizeof *where);
    double *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = calloc((size_t)o->reps, sizeof(double));
    if (!xu || !xb || !lu || !lb || !pos || !where) {
        fprintf(stderr, "sparsetf-batch-bench: out of memory at batch %u\n", B);
        exit(1);
    }
    struct rng rng;
    rng_seed(&rng, 99);
    for (uint32_t s = 0; s < steps; s++) {
        for (uint64_t i = 0; i < (uint64_t)B * d; i++)
            xu[i] = xb[i] = rng_normal(&rng);
        for (uint32_t r = 0; r < B; r++)
            pos[r] = s;
        double w0 = stf_now(), t0 = cpu_now();
        for (uint32_t r = 0; r < B; r++)
            forward_layers(b->m, su[r], ws, s, xu + (uint64_t)r * d);
        double t1 = cpu_now();
        for (uint32_t r = 0; r < B; r++)
            forward_head(b->m, ws, xu + (uint64_t)r * d, lu + (uint64_t)r * V);
        double t2 = cpu_now(), w1 = stf_now();
        uint32_t bad = forward_layers_rows(b->m, sb, bw, pos, B, xb, where);
        double t3 = cpu_now();
        bad += forward_head_rows(b->m, bw, xb, B, lb, where);
        double t4 = cpu_now(), w2 = stf_now();
        if (bad) {
            fprintf(stderr, "sparsetf-batch-bench: %s: batch of %u at step %u: non-finite values\n",
                    b->name, B, s);
            exit(1);
        }
        if (memcmp(lu, lb, (size_t)B * V * sizeof(float)) != 0) {
            fprintf(stderr,
                    "sparsetf-batch-bench: %s: batch of %u at step %u: batched logits differ "
                    "from the unbatched ones (batch invariance broken)\n",
                    b->name, B, s);
            exit(1);
        }
        if (s >= (uint32_t)o->warmup) {
            int i = (int)s - o->warmup;
            t[0][i] = t1 - t0, t[1][i] = t2 - t1, t[2][i] = t3 - t2, t[3][i] = t4 - t3;
            t[4][i] = (w1 - w0) / (w2 - w1);
        }
    }
    double med[5];
    for (int i = 0; i < 5; i++) {
        qsort(t[i], (size_t)o->reps, sizeof(double), cmp_double);
        med[i] = t[i][o->reps / 2];
        free(t[i]);
    }
    for (uint32_t r = 0; r < B; r++) {
        seq_state_free(su[r]);
        seq_state_free(sb[r]);
    }
    free(su), free(sb);
    workspace_free(ws);
    batch_workspace_free(bw);
    stf_free(xu), stf_free(xb), stf_free(lu), stf_free(lb), stf_free(pos), stf_free(where);
    return (struct result){med[0], med[1], med[2], med[3], med[4]};
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sparsetf-batch-bench [--models NAME,...] [--batches 1,2,4,...] [--layers N]\n"
            "                            [--reps N] [--warmup N] [--threads N]\n"
            "                            [--kernels fast|ref] [--dtype f32|q8] [--json FILE]\n"
            "Times decode steps of B concurrent sessions batched vs one row at a time, and\n"
            "checks every batched row is bitwise its unbatched run. NAME is a preset (random\n"
            "weights, a --layers slice + output layer; default 800m-sparse,800m-dense; stored\n"
            "as --dtype, default f32) or a model file (.stf, its own dtype). --batches default\n"
            "1,2,4,8,16,32,64. See docs/benchmarks.md.\n");
}

static int parse_batches(const char *s, struct opts *o)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    o->nbatches = 0;
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        char *end;
        long v = strtol(p, &end, 10);
        if (*end || v < 1 || v > 4096 || o->nbatches == MAX_BATCHES) return -1;
        o->batches[o->nbatches++] = (uint32_t)v;
    }
    return o->nbatches ? 0 : -1;
}

int main(int argc, char **argv)
{
    kernels_prepare_process(argv);
    struct opts o = {.reps = 7,
                     .warmup = 2,
                     .threads = 1,
                     .layers = 1,
                     .models = "800m-sparse,800m-dense",
                     .kernels = "fast",
                     .dtype = "f32",
                     .json = stdout};
    parse_batches("1,2,4,8,16,32,64", &o);
    static const struct option lo[] = {
        {"models", required_argument, 0, 'm'},  {"batches", required_argument, 0, 'b'},
        {"layers", required_argument, 0, 'l'},  {"reps", required_argument, 0, 'r'},
        {"warmup", required_argument, 0, 'w'},  {"threads", required_argument, 0, 't'},
        {"kernels", required_argument, 0, 'k'}, {"dtype", required_argument, 0, 'd'},
        {"json", required_argument, 0, 'j'},    {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},       {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'm':
            o.models = optarg;
            break;
        case 'b':
            if (parse_batches(optarg, &o)) {
                fprintf(stderr,
                        "sparsetf-batch-bench: --batches wants up to %d sizes 1..4096 "
                        "separated by commas, got `%s`\n",
                        MAX_BATCHES, optarg);
                return 2;
            }
            break;
        case 'l':
            o.layers = atoi(optarg);
            break;
        case 'r':
            o.reps = atoi(optarg);
            break;
        case 'w':
            o.warmup = atoi(optarg);
            break;
        case 't':
            o.threads = atoi(optarg);
            break;
        case 'k':
            o.kernels = optarg;
            break;
        case 'd':
            o.dtype = optarg;
            break;
        case 'j':
            if (!(o.json = fopen(optarg, "w"))) {
                fprintf(stderr, "sparsetf-batch-bench: %s: %s\n", optarg, strerror(errno));
                return 1;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("sparsetf-batch-bench %s\n", PROJECT_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sparsetf-batch-bench: unexpected argument `%s` (see --help)\n",
                argv[optind]);
        return 2;
    }
    if (o.reps < 3 || o.warmup < 0 || o.threads < 1 || o.layers < 1 ||
        !kernels_by_name(o.kernels) || (strcmp(o.dtype, "f32") && strcmp(o.dtype, "q8"))) {
        fprintf(stderr, "sparsetf-batch-bench: need --reps >= 3, --warmup >= 0, --threads >= 1, "
                        "--layers >= 1, --kernels fast|ref, --dtype f32|q8\n");
        return 2;
    }
    kernels_set_threads(o.threads);
    struct bench_model models[MAX_MODELS];
    int nm = 0;
    char names[512];
    snprintf(names, sizeof names, "%s", o.models);
    for (char *save = NULL, *p = strtok_r(names, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (nm == MAX_MODELS) {
            fprintf(stderr, "sparsetf-batch-bench: at most %d models\n", MAX_MODELS);
            return 2;
        }
        model_load(&models[nm++], p, &o);
    }
    fprintf(stderr,
            "\n(step ms = each session's per-token latency at full depth, CPU time; tok/s = B / "
            "step; speedup = unbatched / batched CPU time; wall x = median per-step wall ratio)\n"
            "%-24s %5s %12s %12s %12s %12s %9s %9s %9s\n",
            "model", "B", "unbat step ms", "batch step ms", "unbat tok/s", "batch tok/s", "speedup",
            "head x", "wall x");
    /* batch sizes outer, models inner: the models' runs of one size are close in time */
    for (int bi = 0; bi < o.nbatches; bi++)
        for (int mi = 0; mi < nm; mi++) {
            const struct bench_model *b = &models[mi];
            uint32_t B = o.batches[bi];
            struct result r = run_batch(b, B, &o);
            double scale = (double)b->full_layers / b->slice;
            /* a step's time for the full depth: every session waits for the whole step */
            double unb = r.unb_layers * scale + r.unb_head, bat = r.bat_layers * scale + r.bat_head;
            fprintf(stderr, "%-24s %5u %12.2f %12.2f %12.1f %12.1f %8.2fx %8.2fx %8.2fx\n", b->name,
                    B, 1e3 * unb, 1e3 * bat, B / unb, B / bat, unb / bat, r.unb_head / r.bat_head,
                    r.wall_ratio);
            fprintf(o.json,
                    "{\"kind\":\"batch\",\"model\":\"%s\",\"batch\":%u,\"slice_layers\":%u,"
                    "\"full_layers\":%u,\"unbatched_step_ms\":%.4f,\"batched_step_ms\":%.4f,"
                    "\"unbatched_layers_ms\":%.4f,\"batched_layers_ms\":%.4f,"
                    "\"unbatched_head_ms\":%.4f,\"batched_head_ms\":%.4f,"
                    "\"unbatched_tokens_per_s\":%.2f,\"batched_tokens_per_s\":%.2f,"
                    "\"speedup\":%.3f,\"wall_speedup\":%.3f,\"bitwise_equal\":true,\"reps\":%d,"
                    "\"threads\":%d,\"kernels\":\"%s\",\"time\":\"thread_cpu\"}\n",
                    b->name, B, b->slice, b->full_layers, 1e3 * unb, 1e3 * bat, 1e3 * r.unb_layers,
                    1e3 * r.bat_layers, 1e3 * r.unb_head, 1e3 * r.bat_head, B / unb, B / bat,
                    unb / bat, r.wall_ratio, o.reps, o.threads, o.kernels);
            fflush(o.json);
        }
    for (int mi = 0; mi < nm; mi++)
        model_close(models[mi].m);
    if (o.json != stdout) fclose(o.json);
    return 0;
}
