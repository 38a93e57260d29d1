#include "tools/bench_model.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "kernels/sampler.h"
#include "model/forward.h"
#include "util/timer.h"

/* ---- per-kernel timing: a kernels table that forwards to the chosen one and counts ---- */

/* One kernel at one shape: its time, calls and the cost of one call (weights, cache rows
 * and the like it reads; multiply-adds), computed from the call's arguments. */
struct kstat {
    char name[64];
    double seconds, bytes, macs; /* bytes and macs summed over the calls */
    long calls;
    double mark; /* seconds at the start of the current token */
};

#define KSTAT_MAX 32
static struct kstat kstats[KSTAT_MAX];
static int n_kstats;
static const struct kernels *kinner; /* the table being timed */

static struct kstat *kstat_at(const char *name)
{
    for (int i = 0; i < n_kstats; i++)
        if (strcmp(kstats[i].name, name) == 0) return &kstats[i];
    if (n_kstats == KSTAT_MAX) return &kstats[KSTAT_MAX - 1]; /* lumps the rest: never at 5 kinds */
    struct kstat *k = &kstats[n_kstats++];
    snprintf(k->name, sizeof k->name, "%s", name);
    return k;
}

static void kstat_add(const char *name, double t0, double bytes, double macs)
{
    double t = roofline_now() - t0;
    struct kstat *k = kstat_at(name);
    k->seconds += t;
    k->bytes += bytes;
    k->macs += macs;
    k->calls++;
}

static void tk_dense(float *y, const float *x, const float *W, const float *b, uint32_t in,
                     uint32_t out)
{
    char name[64];
    snprintf(name, sizeof name, "dense %ux%u", in, out);
    double t = roofline_now();
    kinner->dense(y, x, W, b, in, out);
    kstat_add(name, t, 4.0 * ((double)in * out + (b ? out : 0)), (double)in * out);
}

static void tk_sparse_ff(float *out, const float *x, const float *c1, const float *c2,
                         const float *cb, const float *w1t, const float *w2, const float *b2,
                         struct sparse_ff_dims dm, struct sparse_ff_scratch *s)
{
    char name[64];
    snprintf(name, sizeof name, "sparse_ff d=%u F=%u N=%u r=%u", dm.d, dm.F, dm.N, dm.r);
    double B = dm.F / dm.N, t = roofline_now();
    kinner->sparse_ff(out, x, c1, c2, cb, w1t, w2, b2, dm, s);
    kstat_add(name, t,
              4.0 * ((double)dm.d * dm.r + (double)dm.r * dm.F + dm.F + 2 * B * dm.d + dm.d),
              (double)dm.d * dm.r + (double)dm.r * dm.F + 2 * B * dm.d);
}

static void tk_mult_dense(float *y, const float *x, const float *G, const float *P, const float *c,
                          uint32_t d, uint32_t S, uint32_t M, float *scratch)
{
    char name[64];
    snprintf(name, sizeof name, "mult_dense d=%u S=%u M=%u", d, S, M);
    double t = roofline_now();
    kinner->mult_dense(y, x, G, P, c, d, S, M, scratch);
    kstat_add(name, t, 4.0 * ((double)S * d + (double)d * M + (double)S * M), (double)S * d * M);
}

static void tk_local_conv(float *out, const float *const rows[3], const float *W, const float *beta,
                          uint32_t S, uint32_t M, uint32_t Km, float *scratch)
{
    char name[64];
    snprintf(name, sizeof name, "local_conv 3x%u S=%u M=%u", Km, S, M);
    double t = roofline_now();
    kinner->local_conv(out, rows, W, beta, S, M, Km, scratch);
    kstat_add(name, t, 4.0 * (3.0 * Km * M * M + M), (double)S * 3 * Km * M * M);
}

static void tk_attention(float *out, const float *q, const float *kc, const float *vc, uint32_t n,
                         uint32_t stride, uint32_t H, uint32_t dh, float *scores)
{
    char name[64];
    snprintf(name, sizeof name, "attention H=%u dh=%u", H, dh);
    double t = roofline_now();
    kinner->attention(out, q, kc, vc, n, stride, H, dh, scores);
    kstat_add(name, t, 4.0 * 2 * (double)n * H * dh, 2.0 * n * H * dh);
}

/* SPEC §2: one head's scan of its n cached bucket signatures (8 bytes each) for C entries */
static uint32_t tk_lsh_select(uint32_t *J, const uint64_t *sigs, uint32_t sig_stride, uint32_t n,
                              uint64_t q_sig, uint32_t n_hashes, uint32_t C, uint64_t *work)
{
    char name[64];
    snprintf(name, sizeof name, "lsh_select C=%u", C);
    double t = roofline_now();
    uint32_t nJ = kinner->lsh_select(J, sigs, sig_stride, n, q_sig, n_hashes, C, work);
    kstat_add(name, t, 8.0 * n, 0);
    return nJ;
}

/* SPEC §2: one head's attention over its nJ selected entries (qk and v rows, key scales) */
static void tk_lsh_attend(float *out, const float *q, const float *qk, const float *v,
                          uint32_t stride, const float *scale, uint32_t scale_stride,
                          const uint32_t *J, uint32_t nJ, uint32_t self, uint32_t dh, float *scores)
{
    char name[64];
    snprintf(name, sizeof name, "lsh_attend dh=%u", dh);
    double t = roofline_now();
    kinner->lsh_attend(out, q, qk, v, stride, scale, scale_stride, J, nJ, self, dh, scores);
    kstat_add(name, t, 4.0 * nJ * (2.0 * dh + 1), 2.0 * nJ * dh);
}

static const struct kernels timed_kernels = {
    .name = "timed",
    .dense = tk_dense,
    .sparse_ff = tk_sparse_ff,
    .mult_dense = tk_mult_dense,
    .local_conv = tk_local_conv,
    .attention = tk_attention,
    .lsh_select = tk_lsh_select,
    .lsh_attend = tk_lsh_attend,
};

/* ---- the parts of a token and their cost ---- */

enum { PART_EMBED = FWD_PARTS, PART_SAMPLE, PART_TOTAL, N_PARTS };
static const char *const part_names[N_PARTS] = {
    [FWD_NORM] = "layernorm",     [FWD_ATTN] = "attention",
    [FWD_SRU] = "sru branch",     [FWD_FF] = "ff",
    [FWD_RESIDUAL] = "residual",  [FWD_HEAD] = "output layer",
    [PART_EMBED] = "embedding",   [PART_SAMPLE] = "sampling",
    [PART_TOTAL] = "whole token",
};

/* Weight bytes one token reads and its multiply-adds in one sub-layer of this kind, summed
 * over the kind's tensor list (layer_kinds.h: the same figures as model_layer_read_bytes). */
static void kind_cost(const struct sublayer_kind *kind, const struct model_config *c, double *bytes,
                      double *macs)
{
    *bytes = *macs = 0;
    if (!kind) return;
    struct tensor_desc t[KIND_MAX_TENSORS];
    int n = kind->tensors(c, t);
    for (int i = 0; i < n; i++) {
        *bytes += (double)tensor_desc_read_bytes(&t[i]);
        *macs += (double)tensor_desc_macs(&t[i]);
    }
}

/* What one attention sub-layer reads from its cache and multiplies for the token at
 * position pos, besides its weights: softmax attention reads the K and V rows 0..pos; LSH
 * attention (SPEC §2) hashes with its rotations (d x n_hashes x nb/2), scans the n entries
 * it holds (one 8-byte bucket signature per head) and attends over at most C of them (qk
 * and v rows and a key scale per head). */
static void cache_cost(const struct model_config *c, bool lsh, uint32_t pos, double *bytes,
                       double *macs)
{
    double d = c->d_model, H = c->n_heads;
    if (!lsh) {
        *bytes = 2.0 * (pos + 1) * d * 4, *macs = 2.0 * (pos + 1) * d;
        return;
    }
    double n = model_lsh_entries(c, pos), C = (double)model_lsh_C(c);
    double J = n < C ? n : C, rot = d * c->lsh_n_hashes * (c->lsh_n_buckets / 2);
    *bytes = rot * 4 + n * H * 8 + J * (2 * d + H) * 4;
    *macs = rot + 2 * J * d;
}

/* The cost of each part for the token at position pos: weights from the kinds' tables; each
 * attention sub-layer (two per Terraformer block, LSH or not by its index) adds its cache;
 * norms read their gain and bias; the residuals and sampling read and write vectors. */
static void token_costs(const struct model *m, uint32_t pos, double bytes[N_PARTS],
                        double macs[N_PARTS])
{
    const struct model_config *c = &m->cfg;
    double L = c->n_layers, d = c->d_model, apl = model_attn_per_layer(c);
    memset(bytes, 0, N_PARTS * sizeof *bytes);
    memset(macs, 0, N_PARTS * sizeof *macs);
    double b, k;
    for (uint32_t l = 0; l < c->n_layers * model_attn_per_layer(c); l++) {
        double cb, ck;
        kind_cost(layer_kinds_attn(&m->kinds, c, l), c, &b, &k);
        cache_cost(c, model_sublayer_is_lsh(c, l), pos, &cb, &ck);
        bytes[FWD_ATTN] += b + cb, macs[FWD_ATTN] += k + ck;
    }
    kind_cost(m->kinds.ff, c, &b, &k);
    bytes[FWD_FF] = L * b, macs[FWD_FF] = L * k;
    kind_cost(m->kinds.sru, c, &b, &k);
    bytes[FWD_SRU] = L * b, macs[FWD_SRU] = L * k;
    kind_cost(m->kinds.out, c, &b, &k);
    bytes[FWD_HEAD] = b, macs[FWD_HEAD] = k;
    bytes[FWD_NORM] = ((apl + 1) * L + 1) * 2 * d * 4; /* per block LN1 (LN2) LN3, and LN_f */
    bytes[FWD_RESIDUAL] = L * (apl + 1) * 3 * d * 4;
    bytes[PART_EMBED] = model_streams(c) * 3 * d * 4;
    bytes[PART_SAMPLE] = (double)c->vocab_size * 4;
    for (int p = 0; p < PART_TOTAL; p++)
        bytes[PART_TOTAL] += bytes[p], macs[PART_TOTAL] += macs[p];
}

static void advise(const struct model *m, const struct bench_model_opts *o)
{
    for (int i = 0; i < m->n_maps; i++) {
        const struct file_map *fm = &m->maps[i];
        if (!fm->base) continue;
        if (o->madvise == BENCH_MADV_WILLNEED) madvise(fm->base, fm->base_len, MADV_WILLNEED);
        if (o->madvise == BENCH_MADV_HUGEPAGE) madvise(fm->base, fm->base_len, MADV_HUGEPAGE);
        if (o->prefault) {
            volatile unsigned char sink = 0;
            long page = sysconf(_SC_PAGESIZE);
            for (size_t off = 0; off < fm->base_len; off += (size_t)page)
                sink ^= ((const volatile unsigned char *)fm->base)[off];
            (void)sink;
        }
    }
}

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static long faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt + ru.ru_majflt;
}

int bench_model_run(const struct bench_model_opts *o, const struct roofline *r)
{
    struct stf_error err = {0};
    struct model *m = NULL;
    struct seq_state *s = NULL;
    struct workspace *ws = NULL;
    struct sampler smp = {0};
    float *x = NULL, *logits = NULL;
    double *per = NULL, *ktok = NULL;
    int rc = 1;
    double t_open = roofline_now();
    if (model_open(o->path, NULL, 0, &m, &err)) goto fail;
    t_open = roofline_now() - t_open;
    const struct model_config *c = &m->cfg;
    uint32_t cap = (uint32_t)(o->warmup + o->tokens + 1);
    if (cap > c->max_seq_len) {
        stf_fail(&err, STF_ERR_ARG, "%s: --warmup + --tokens (%u) exceed max_seq_len %u", o->path,
                 cap, c->max_seq_len);
        goto fail;
    }
    kinner = kernels_by_name(o->kernels);
    struct sampler_params sp = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 1};
    if (seq_state_create(c, 0, c->n_layers, cap, &s, &err) ||
        workspace_create(c, cap, &timed_kernels, &ws, &err) ||
        sampler_create(&smp, &sp, c->vocab_size, &err))
        goto fail;
    struct forward_profile prof = {.now = roofline_now};
    ws->prof = &prof;
    x = malloc((size_t)model_streams(c) * c->d_model * sizeof *x); /* a Terraformer's a, b */
    logits = malloc((size_t)c->vocab_size * sizeof *logits);
    per = calloc((size_t)o->tokens * N_PARTS * 2, sizeof *per); /* times, then bounds */
    ktok = calloc((size_t)o->tokens * KSTAT_MAX, sizeof *ktok); /* per token and kernel */
    if (!x || !logits || !per || !ktok) {
        stf_fail(&err, STF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    double t_adv = roofline_now();
    advise(m, o);
    t_adv = roofline_now() - t_adv;
    fprintf(stderr,
            "%s: %u layers, d=%u, %.2f GB mapped (open %.2f s, advice/prefault %.2f s), "
            "kernels %s\n",
            o->path, c->n_layers, c->d_model, (double)m->mapped_bytes / 1e9, t_open, t_adv,
            o->kernels);
    seq_state_reset(s);
    uint32_t tok = c->bos_id;
    long f0 = 0;
    double c0 = 0, w0 = 0;
    for (int i = -o->warmup; i < o->tokens; i++) {
        uint32_t pos = (uint32_t)(i + o->warmup);
        if (i == 0) {
            memset(kstats, 0, sizeof kstats), n_kstats = 0;
            f0 = faults();
            c0 = cpu_seconds(), w0 = stf_now();
        }
        memset(prof.seconds, 0, sizeof prof.seconds);
        for (int k = 0; k < n_kstats; k++)
            kstats[k].mark = kstats[k].seconds;
        double t0 = roofline_now();
        forward_embed(m, tok, pos, x);
        double t1 = roofline_now();
        seq_state_lsh_prepare(s, 1); /* LSH: the seed, and the drops rank 0 would order */
        forward_layers(m, s, ws, pos, x);
        forward_head(m, ws, x, logits);
        double t2 = roofline_now();
        tok = sampler_sample(&smp, logits);
        double t3 = roofline_now();
        if (i < 0) continue;
        for (int k = 0; k < n_kstats; k++)
            ktok[(size_t)k * o->tokens + i] = kstats[k].seconds - kstats[k].mark;
        double *tm = per + (size_t)i * N_PARTS, *bd = per + ((size_t)o->tokens + i) * N_PARTS;
        for (int p = 0; p < FWD_PARTS; p++)
            tm[p] = prof.seconds[p];
        tm[PART_EMBED] = t1 - t0, tm[PART_SAMPLE] = t3 - t2, tm[PART_TOTAL] = t3 - t0;
        double bytes[N_PARTS], macs[N_PARTS];
        token_costs(m, pos, bytes, macs);
        for (int p = 0; p < N_PARTS; p++)
            bd[p] = roofline_bound(r, bytes[p], macs[p]);
        bd[PART_TOTAL] = 0;
        for (int p = 0; p < PART_TOTAL; p++)
            bd[PART_TOTAL] += bd[p]; /* the sum of the parts' bounds */
    }
    double fpt = (double)(faults() - f0) / o->tokens;
    /* CPU seconds of the process per wall second of the timed tokens: the threads used when
     * nothing else competes for the cores; less means the run was preempted */
    double busy = (cpu_seconds() - c0) / (stf_now() - w0);

    /* medians over the timed tokens, part by part; ratio = median of per-token ratios */
    int n = o->tokens;
    double *col = malloc((size_t)n * sizeof *col), *rat = malloc((size_t)n * sizeof *rat);
    if (!col || !rat) {
        free(col), free(rat);
        stf_fail(&err, STF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    double bytes0[N_PARTS], macs0[N_PARTS];
    token_costs(m, (uint32_t)o->warmup, bytes0, macs0);
    fprintf(stderr,
            "\nper token (median of %d tokens after %d warm-up, greedy from BOS; %d thread%s; "
            "STREAM %.2f GB/s, %s peak %.1f GMAC/s; %.0f page faults per token; %.2f CPUs "
            "busy of %d; %s clock)\n",
            n, o->warmup, r->threads, r->threads == 1 ? "" : "s", r->stream_gbs, r->isa,
            r->peak_gmacs, fpt, busy, r->threads, o->cpu_clock ? "CPU" : "wall");
    fprintf(stderr, "%-38s %9s %10s %8s %10s %10s  %s\n", "part", "ms", "bound ms", "ratio",
            "MB read", "M MACs", "bound by");
    /* the attention kind, and how many of the sub-layers use LSH attention over it */
    char attn_label[48];
    uint32_t n_lsh = model_lsh_sublayers(c), n_sub = c->n_layers * model_attn_per_layer(c);
    if (n_lsh)
        snprintf(attn_label, sizeof attn_label, "%s, lsh in %u/%u", m->kinds.attn->name, n_lsh,
                 n_sub);
    else
        snprintf(attn_label, sizeof attn_label, "%s", m->kinds.attn->name);
    static const int order[N_PARTS] = {PART_EMBED,   FWD_NORM, FWD_ATTN,    FWD_SRU,   FWD_FF,
                                       FWD_RESIDUAL, FWD_HEAD, PART_SAMPLE, PART_TOTAL};
    for (int oi = 0; oi < N_PARTS; oi++) {
        int p = order[oi];
        if (p == FWD_SRU && !m->kinds.sru) continue;
        for (int i = 0; i < n; i++) {
            double t = per[(size_t)i * N_PARTS + p], b = per[((size_t)n + i) * N_PARTS + p];
            col[i] = t;
            rat[i] = b > 0 ? t / b : 0;
        }
        double ms = 1e3 * stf_median(col, n), ratio = stf_median(rat, n);
        for (int i = 0; i < n; i++)
            col[i] = per[((size_t)n + i) * N_PARTS + p];
        double bms = 1e3 * stf_median(col, n);
        const char *kind = p == FWD_ATTN   ? attn_label
                           : p == FWD_FF   ? m->kinds.ff->name
                           : p == FWD_HEAD ? m->kinds.out->name
                                           : "";
        const char *by = p == PART_TOTAL ? "sum of the parts' bounds"
                         : bytes0[p] / (r->stream_gbs * 1e9) >= macs0[p] / (r->peak_gmacs * 1e9)
                             ? "memory"
                             : "FMA";
        char label[64];
        snprintf(label, sizeof label, "%s%s%s%s", part_names[p], *kind ? " (" : "", kind,
                 *kind ? ")" : "");
        fprintf(stderr, "%-38s %9.3f %10.3f %7.2fx %10.2f %10.1f  %s\n", label, ms, bms, ratio,
                bytes0[p] / 1e6, macs0[p] / 1e6, by);
        fprintf(o->json,
                "{\"kind\":\"budget\",\"model\":\"%s\",\"part\":\"%s\",\"sublayer_kind\":\"%s\","
                "\"ms\":%.4f,\"bound_ms\":%.4f,\"ratio\":%.3f,\"bytes\":%.0f,\"macs\":%.0f,"
                "\"threads\":%d,\"tokens\":%d,\"faults_per_token\":%.1f,\"cpus_busy\":%.2f}\n",
                o->path, part_names[p], kind, ms, bms, ratio, bytes0[p], macs0[p], r->threads, n,
                fpt, busy);
    }
    fprintf(stderr, "\nper kernel shape (median over the timed tokens of the time per token)\n");
    fprintf(stderr, "%-34s %7s %9s %10s %8s %9s\n", "kernel", "calls", "ms", "bound ms", "ratio",
            "GB/s");
    for (int i = 0; i < n_kstats; i++) {
        const struct kstat *k = &kstats[i];
        double ms = 1e3 * stf_median(ktok + (size_t)i * n, n);
        double bms = 1e3 * roofline_bound(r, k->bytes, k->macs) / n;
        fprintf(stderr, "%-34s %7.1f %9.3f %10.3f %7.2fx %9.2f\n", k->name, (double)k->calls / n,
                ms, bms, ms / bms, k->bytes / n / (ms * 1e-3) / 1e9);
        fprintf(o->json,
                "{\"kind\":\"kernel\",\"model\":\"%s\",\"kernel\":\"%s\",\"calls_per_token\":%.2f,"
                "\"ms\":%.4f,\"bound_ms\":%.4f,\"ratio\":%.3f,\"threads\":%d}\n",
                o->path, k->name, (double)k->calls / n, ms, bms, ms / bms, r->threads);
    }
    free(col), free(rat);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "sparsetf-bench: %s\n", err.msg);
    free(x), free(logits), free(per), free(ktok);
    sampler_destroy(&smp);
    workspace_free(ws);
    seq_state_free(s);
    model_close(m);
    return rc;
}
