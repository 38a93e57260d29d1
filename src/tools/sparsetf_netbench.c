/*
 * sparsetf-netbench: message latency and bandwidth of the transport sparsetf-dist uses
 * (src/transport), for the messages a token actually sends — the calibration of the
 * latency model in bench/scaling/ (docs/scaling.md).
 *
 * Ring: rank 0 sends B bytes to rank 1, which receives them, spins for --think-us (the
 * stage's compute) and passes them on, … rank N−1 back to rank 0: a decode token's frames
 * travel the pipeline so. One hop costs (ring time − the ranks' think time) / N. With a think time
 * above 2 ms every waiting rank is in the transport's sleeping back-off (transport_pause), as the
 * stages of a pipeline whose stages compute for milliseconds are; with 0 they still spin.
 * Allgather: the first T ranks (a transport_split) gather B bytes from each, as the ranks of
 * a tensor-parallel stage do per split layer; T = every power of two ≤ N.
 *
 * Runs under mpirun (one rank per host for network figures) or alone (then only the
 * allgather of 1 rank is timed). Prints one line per measurement and, with --json, writes
 * them all; rank 0 reports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/transport.h"
#include "util/status.h"
#include "util/timer.h"

#define MAX_SIZES  32
#define MAX_THINKS 8
#define TIMEOUT_S  60.0
#define TAG_RING   7

static const char usage_text[] =
    "usage: [mpirun -np N] sparsetf-netbench [--sizes B,B,...] [--gather-sizes B,B,...]\n"
    "                  [--think-us U,U,...] [--reps N] [--warmup N] [--json FILE]\n"
    "Times the transport of sparsetf-dist: a ring of point-to-point messages through every\n"
    "rank (0 -> 1 -> ... -> N-1 -> 0, as a token's frames travel the pipeline), one hop =\n"
    "(ring time - think time) / N, with each rank spinning --think-us before passing the\n"
    "message on (default 0,5000: above 2 ms the waiting ranks sleep in the transport's\n"
    "back-off, as pipeline stages computing for milliseconds do); and allgathers over the\n"
    "first T ranks, T = 2, 4, ... <= N, of B bytes from each rank (tensor parallelism).\n"
    "  --sizes         ring message bytes (default 64,1024,4096,16384,36928,65536,262144,1048576)\n"
    "  --gather-sizes  bytes each rank contributes (default 4608,9216,18432,36864)\n"
    "  --think-us      spin per hop in microseconds (default 0,5000)\n"
    "  --reps N        timed repetitions per point (default 200; 50 with think > 0)\n"
    "  --warmup N      untimed repetitions first (default 10)\n"
    "  --json FILE     write every point as JSON (rank 0)\n"
    "  -h, --help      this text;  --version  the version\n"
    "Run one rank per host (e.g. cluster/sim-cluster.sh hosts, launch flags from its env).\n";

struct options {
    long sizes[MAX_SIZES], gather_sizes[MAX_SIZES], thinks[MAX_THINKS];
    int n_sizes, n_gather, n_thinks;
    int reps, warmup;
    const char *json;
};

/* Parses "a,b,c" of non-negative integers into v (at most cap); -1 on a bad list. */
static int parse_list(const char *s, long *v, int cap, long min, long max)
{
    int n = 0;
    while (*s) {
        char *end = NULL;
        long x = strtol(s, &end, 10);
        if (end == s || x < min || x > max || n == cap) return -1;
        v[n++] = x;
        if (*end == ',')
            ++end;
        else if (*end)
            return -1;
        s = end;
    }
    return n > 0 ? n : -1;
}

static int parse_options(int argc, char **argv, struct options *o, struct stf_error *err)
{
    static const long sizes[] = {64, 1024, 4096, 16384, 36928, 65536, 262144, 1048576};
    static const long gathers[] = {4608, 9216, 18432, 36864};
    memcpy(o->sizes, sizes, sizeof sizes);
    o->n_sizes = (int)(sizeof sizes / sizeof *sizes);
    memcpy(o->gather_sizes, gathers, sizeof gathers);
    o->n_gather = (int)(sizeof gathers / sizeof *gathers);
    o->thinks[0] = 0;
    o->thinks[1] = 5000;
    o->n_thinks = 2;
    o->reps = -1;
    o->warmup = 10;
    o->json = NULL;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return 1;
        if (!strcmp(a, "--version")) return 2;
        if (i + 1 >= argc) {
            stf_fail(err, STF_ERR_ARG, "%s needs a value (see --help)", a);
            return -1;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--sizes")) {
            o->n_sizes = parse_list(v, o->sizes, MAX_SIZES, 8, 1L << 28);
            if (o->n_sizes < 0) {
                stf_fail(err, STF_ERR_ARG,
                         "--sizes %s: expected up to %d byte counts 8..2^28, comma separated", v,
                         MAX_SIZES);
                return -1;
            }
        } else if (!strcmp(a, "--gather-sizes")) {
            o->n_gather = parse_list(v, o->gather_sizes, MAX_SIZES, 1, 1L << 26);
            if (o->n_gather < 0) {
                stf_fail(err, STF_ERR_ARG,
                         "--gather-sizes %s: expected up to %d byte counts 1..2^26, comma "
                         "separated",
                         v, MAX_SIZES);
                return -1;
            }
        } else if (!strcmp(a, "--think-us")) {
            o->n_thinks = parse_list(v, o->thinks, MAX_THINKS, 0, 1000000);
            if (o->n_thinks < 0) {
                stf_fail(err, STF_ERR_ARG,
                         "--think-us %s: expected up to %d values 0..1000000, comma separated", v,
                         MAX_THINKS);
                return -1;
            }
        } else if (!strcmp(a, "--reps") || !strcmp(a, "--warmup")) {
            char *end = NULL;
            long x = strtol(v, &end, 10);
            bool reps = !strcmp(a, "--reps");
            if (end == v || *end || x < (reps ? 1 : 0) || x > 100000) {
                stf_fail(err, STF_ERR_ARG, "%s %s: expected a whole number %d..100000", a, v,
                         reps ? 1 : 0);
                return -1;
            }
            *(reps ? &o->reps : &o->warmup) = (int)x;
        } else if (!strcmp(a, "--json")) {
            o->json = v;
        } else {
            stf_fail(err, STF_ERR_ARG, "unknown option %s (see --help)", a);
            return -1;
        }
    }
    return 0;
}

static void spin(double seconds)
{
    double until = stf_now() + seconds;
    while (stf_now() < until) {
    }
}

/* Spins for `think` seconds (a stage's compute); returns the time it actually took (a rank
 * preempted while spinning takes longer: that is not the network's). */
static double think_for(double think)
{
    if (think <= 0) return 0.0;
    double t0 = stf_now();
    spin(think);
    return stf_now() - t0;
}

/* One ring pass of len bytes (len >= 8): *hop_seconds = (ring time - every rank's actual
 * think time) / N at rank 0. The think times travel in the message's first 8 bytes, each
 * rank adding its own, so nothing needs the hosts' clocks to agree. */
static enum stf_status ring_once(struct transport *t, char *buf, size_t len, double think,
                                 double *hop_seconds, struct stf_error *err)
{
    int rank = transport_rank(t), n = transport_size(t);
    struct transport_msg msg;
    enum stf_status st;
    double t0 = stf_now(), thought = 0;
    if (rank == 0) {
        thought = think_for(think);
        memcpy(buf, &thought, sizeof thought);
        if ((st = transport_send(t, 1 % n, TAG_RING, buf, len, TIMEOUT_S, err))) return st;
    }
    if ((st = transport_probe(t, (rank + n - 1) % n, TIMEOUT_S, "the ring message", &msg, err)) ||
        (st = transport_recv(t, &msg, buf, len, err)))
        return st;
    memcpy(&thought, buf, sizeof thought);
    if (rank != 0) {
        thought += think_for(think);
        memcpy(buf, &thought, sizeof thought);
        if ((st = transport_send(t, (rank + 1) % n, TAG_RING, buf, len, TIMEOUT_S, err))) return st;
    }
    *hop_seconds = (stf_now() - t0 - thought) / n;
    return STF_OK;
}

struct point {
    const char *kind; /* "ring" or "allgather" */
    int ranks;
    long bytes, think_us;
    double median_us, p10_us, p90_us; /* per hop (ring) or per allgather */
};

static void summarise(double *v, int n, double scale, struct point *p)
{
    p->median_us = stf_median(v, n) * scale;
    p->p10_us = stf_quantile(v, n, 0.1) * scale;
    p->p90_us = stf_quantile(v, n, 0.9) * scale;
}

static int run(struct transport *world, const struct options *o, struct stf_error *err)
{
    int rank = transport_rank(world), n = transport_size(world);
    long maxb = 0;
    for (int i = 0; i < o->n_sizes; ++i)
        maxb = o->sizes[i] > maxb ? o->sizes[i] : maxb;
    for (int i = 0; i < o->n_gather; ++i)
        maxb = o->gather_sizes[i] * n > maxb ? o->gather_sizes[i] * n : maxb;
    int maxreps = o->reps > 0 ? o->reps : 200;
    char *buf = calloc((size_t)maxb, 1), *recv = calloc((size_t)maxb, 1);
    double *v = calloc((size_t)maxreps, sizeof *v);
    struct point *pts = calloc(MAX_SIZES * (MAX_THINKS + 8), sizeof *pts);
    if (!buf || !recv || !v || !pts) {
        stf_fail(err, STF_ERR_NOMEM, "out of memory for %ld-byte buffers", maxb);
        goto fail;
    }
    int np = 0;
    enum stf_status st;
    for (int k = 0; n > 1 && k < o->n_thinks; ++k) {
        double think = (double)o->thinks[k] * 1e-6;
        int reps = o->reps > 0 ? o->reps : (think > 0 ? 50 : 200);
        for (int s = 0; s < o->n_sizes; ++s) {
            size_t len = (size_t)o->sizes[s];
            for (int r = 0; r < o->warmup + reps; ++r) {
                double hop = 0;
                if ((st = ring_once(world, buf, len, think, &hop, err))) goto fail;
                if (r >= o->warmup) v[r - o->warmup] = hop;
            }
            struct point *p = &pts[np++];
            *p = (struct point){"ring", n, o->sizes[s], o->thinks[k], 0, 0, 0};
            summarise(v, reps, 1e6, p);
            if (rank == 0)
                printf("ring       %2d ranks %9ld B think %6ld us: hop median %9.1f us (p10 %.1f, "
                       "p90 %.1f)\n",
                       n, p->bytes, p->think_us, p->median_us, p->p10_us, p->p90_us);
        }
    }
    for (int T = 2; T <= n; T *= 2) {
        struct transport *sub = NULL;
        if ((st = transport_split(world, rank < T ? 0 : 1, rank, &sub, err))) goto fail;
        int reps = o->reps > 0 ? o->reps : 200;
        for (int s = 0; s < o->n_gather; ++s) {
            size_t len = (size_t)o->gather_sizes[s];
            for (int r = 0; rank < T && r < o->warmup + reps; ++r) {
                double t0 = stf_now();
                if ((st = transport_allgather(sub, buf, len, recv, TIMEOUT_S, err))) {
                    transport_close(sub);
                    goto fail;
                }
                if (r >= o->warmup) v[r - o->warmup] = stf_now() - t0;
            }
            struct point *p = &pts[np++];
            *p = (struct point){"allgather", T, o->gather_sizes[s], 0, 0, 0, 0};
            if (rank < T) summarise(v, reps, 1e6, p);
            if (rank == 0)
                printf("allgather  %2d ranks %9ld B each         : median %9.1f us (p10 %.1f, p90 "
                       "%.1f)\n",
                       T, p->bytes, p->median_us, p->p10_us, p->p90_us);
        }
        transport_close(sub);
        if ((st = transport_barrier(world, err))) goto fail;
    }
    if (rank == 0 && o->json) {
        FILE *f = fopen(o->json, "w");
        if (!f) {
            stf_fail(err, STF_ERR_IO, "cannot write %s", o->json);
            goto fail;
        }
        const char *link = getenv("STF_SIM_LINK_DELAY_US");
        fprintf(f,
                "{\"tool\": \"sparsetf-netbench\", \"ranks\": %d, \"host0\": \"%s\", "
                "\"sim_link_delay_us\": %s, \"points\": [",
                n, transport_host(), link && *link ? link : "0");
        for (int i = 0; i < np; ++i)
            fprintf(f,
                    "%s\n  {\"kind\": \"%s\", \"ranks\": %d, \"bytes\": %ld, \"think_us\": %ld, "
                    "\"median_us\": %.2f, \"p10_us\": %.2f, \"p90_us\": %.2f}",
                    i ? "," : "", pts[i].kind, pts[i].ranks, pts[i].bytes, pts[i].think_us,
                    pts[i].median_us, pts[i].p10_us, pts[i].p90_us);
        fprintf(f, "\n]}\n");
        if (fclose(f)) {
            stf_fail(err, STF_ERR_IO, "writing %s failed", o->json);
            goto fail;
        }
    }
    free(buf), free(recv), free(v), free(pts);
    return 0;
fail:
    free(buf), free(recv), free(v), free(pts);
    return -1;
}

int main(int argc, char **argv)
{
    struct stf_error err = {0};
    struct options o;
    int rc = parse_options(argc, argv, &o, &err);
    if (rc == 1) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (rc == 2) {
        printf("sparsetf-netbench %s\n", PROJECT_VERSION);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "sparsetf-netbench: %s\n", err.msg);
        return 2;
    }
    struct transport *world = NULL;
    if (transport_mpi_init(&argc, &argv, &world, &err)) {
        fprintf(stderr, "sparsetf-netbench: %s\n", err.msg);
        return 1;
    }
    if (run(world, &o, &err)) {
        fprintf(stderr, "sparsetf-netbench: rank %d on %s: %s\n", transport_rank(world),
                transport_host(), err.msg);
        transport_abort(world, 1);
    }
    transport_close(world);
    transport_mpi_finalize();
    return 0;
}
