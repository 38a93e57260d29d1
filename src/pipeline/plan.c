/* plan: a P x T grid, contiguous layer ranges per stage balanced by weight bytes or
 * estimated time (see plan.h). */
#include "pipeline/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/forward.h"
#include "model/tp.h"
#include "model/weights.h"

/* Bytes per group from the model's own tensor table: embed (with positions), each layer,
 * head. layer_bytes has cfg->n_layers entries. */
static enum stf_status count_bytes(const struct model_config *cfg, uint64_t *embed, uint64_t *head,
                                   uint64_t *layer_bytes, struct stf_error *err)
{
    int n = model_tensor_list(cfg, NULL, NULL, 0);
    if (n <= 0) return stf_fail(err, STF_ERR_FORMAT, "plan: the config lists no tensors");
    struct tensor_desc *t = calloc((size_t)n, sizeof *t);
    if (!t) return stf_fail(err, STF_ERR_NOMEM, "plan: out of memory");
    model_tensor_list(cfg, NULL, t, n);
    *embed = *head = 0;
    memset(layer_bytes, 0, cfg->n_layers * sizeof *layer_bytes);
    for (int i = 0; i < n; i++) {
        uint64_t b = tensor_desc_bytes(&t[i]);
        if (t[i].group == GROUP_EMBED)
            *embed += b;
        else if (t[i].group == GROUP_HEAD)
            *head += b;
        else if (t[i].layer >= 0 && (uint32_t)t[i].layer < cfg->n_layers)
            layer_bytes[t[i].layer] += b;
    }
    free(t);
    return STF_OK;
}

/* The per-token time model of PLAN_BALANCE_TIME, in picoseconds (integers keep the
 * dynamic programme below exact and identical on every rank). */
#define PLAN_BYTES_PER_S 20e9
#define PLAN_MACS_PER_S  25e9
static uint64_t est_ps(uint64_t bytes, uint64_t macs)
{
    return (uint64_t)(1e12 * ((double)bytes / PLAN_BYTES_PER_S + (double)macs / PLAN_MACS_PER_S));
}

/* Whether n ranks form a grid of T-rank stages for cfg with no idle rank. */
static bool grid_ok(const struct model_config *cfg, uint32_t n, uint32_t T)
{
    if (T < 1 || n % T) return false;
    uint32_t P = n / T;
    if (T == 1) return P <= cfg->n_layers + 1;
    struct stf_error e;
    return P <= cfg->n_layers && model_tp_check(cfg, T, &e) == STF_OK;
}

/* ", 1 (8x1), 2 (4x2)" : the T that make a grid of n ranks, with P x T. */
static void list_grids(const struct model_config *cfg, uint32_t n, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = 0;
    for (uint32_t T = 1; T <= n && used + 32 < cap; T++)
        if (grid_ok(cfg, n, T))
            used += (size_t)snprintf(buf + used, cap - used, "%s%u (%u stages x %u)",
                                     used ? ", " : "", T, n / T, T);
}

/* Resolves T for n ranks: the given one, checked, or the smallest that makes a grid. */
static enum stf_status plan_pick_tp(const struct model_config *cfg, uint32_t n, uint32_t tp,
                                    uint32_t *out, struct stf_error *err)
{
    const uint32_t L = cfg->n_layers;
    char valid[512];
    list_grids(cfg, n, valid, sizeof valid);
    if (n < 1) return stf_fail(err, STF_ERR_ARG, "a job needs at least one rank");
    if (tp == 0) {
        for (uint32_t T = 1; T <= n; T++)
            if (grid_ok(cfg, n, T)) {
                *out = T;
                return STF_OK;
            }
        return stf_fail(err, STF_ERR_ARG,
                        "%u ranks cannot run this model without an idle rank: a pipeline takes "
                        "1 to %u ranks (one layer per stage at most %u stages), and no "
                        "tensor-parallel width T splits it into a grid of %u ranks (stages <= %u "
                        "layers, T dividing what each layer splits: %s)",
                        n, L + 1, L + 1, n, L, model_tp_describe(cfg));
    }
    if (n % tp)
        return stf_fail(err, STF_ERR_ARG,
                        "--tp %u does not divide the %u ranks into stages of %u; valid --tp for "
                        "%u ranks: %s",
                        tp, n, tp, n, valid[0] ? valid : "none");
    struct stf_error why;
    if (tp > 1 && model_tp_check(cfg, tp, &why))
        return stf_fail(err, STF_ERR_ARG,
                        "--tp %u does not divide what this model splits (%s); valid --tp for %u "
                        "ranks: %s",
                        tp, model_tp_describe(cfg), n, valid[0] ? valid : "none");
    uint32_t P = n / tp;
    if (P > (tp == 1 ? L + 1 : L))
        return stf_fail(err, STF_ERR_ARG,
                        "--tp %u on %u ranks makes %u stages for %u layers: %s; valid --tp for "
                        "%u ranks: %s",
                        tp, n, P, L,
                        tp == 1 ? "a pipeline takes at most one stage more than layers"
                                : "with T > 1 every stage needs a layer, or its ranks would idle",
                        n, valid[0] ? valid : "none");
    *out = tp;
    return STF_OK;
}

enum stf_status plan_make(const struct model_config *cfg, uint32_t n_ranks, uint32_t tp,
                          uint32_t n_slots, uint32_t capacity, uint32_t max_rows,
                          enum plan_balance balance, struct dist_plan *out, struct stf_error *err)
{
    memset(out, 0, sizeof *out);
    const uint32_t L = cfg->n_layers;
    uint32_t T = 1;
    enum stf_status st = plan_pick_tp(cfg, n_ranks, tp, &T, err);
    if (st) return st;
    const uint32_t n_stages = n_ranks / T;
    uint64_t embed = 0, head = 0;
    uint64_t *lb = calloc(L, sizeof *lb), *prefix = calloc(L + 1, sizeof *prefix);
    uint64_t *weight_prefix = NULL;
    /* best[r * (L + 1) + j]: the smallest possible maximum load of ranks r..R-1 covering
     * layers j..L-1 (rank r >= 1 takes at least one layer); cut[]: where rank r stops. */
    uint64_t *best = calloc((size_t)n_stages * (L + 1), sizeof *best);
    /* among plans with the same maximum, the smallest sum of squared loads (the most even) */
    double *spread = calloc((size_t)n_stages * (L + 1), sizeof *spread);
    uint32_t *cut = calloc((size_t)n_stages * (L + 1), sizeof *cut);
    out->ranks = calloc(n_ranks, sizeof *out->ranks);
    if (!lb || !prefix || !best || !spread || !cut || !out->ranks) {
        st = stf_fail(err, STF_ERR_NOMEM, "plan: out of memory");
        goto fail;
    }
    if ((st = count_bytes(cfg, &embed, &head, lb, err))) goto fail;
    /* load[]: what is balanced per layer; fixed0: rank 0's extra load */
    /* what one of a stage's T ranks reads and computes per layer (T = 1: the whole layer) */
    const uint64_t layer_ps =
        est_ps(model_tp_layer_read_bytes(cfg, T), model_tp_layer_macs(cfg, T));
    const uint64_t layer_share = model_tp_layer_bytes(cfg, T);
    const uint64_t head_ps = est_ps(model_head_read_bytes(cfg), model_head_macs(cfg));
    uint64_t fixed0 = balance == PLAN_BALANCE_TIME ? head_ps : embed + head;
    weight_prefix = calloc(L + 1, sizeof *weight_prefix);
    if (!weight_prefix) {
        st = stf_fail(err, STF_ERR_NOMEM, "plan: out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < L; i++) {
        weight_prefix[i + 1] = weight_prefix[i] + (T == 1 ? lb[i] : layer_share);
        prefix[i + 1] =
            prefix[i] +
            (balance == PLAN_BALANCE_TIME ? layer_ps : weight_prefix[i + 1] - weight_prefix[i]);
        if (lb[i] > out->layer_bytes_max) out->layer_bytes_max = lb[i];
    }
    const uint64_t INF = UINT64_MAX;
    const uint32_t R = n_stages;
#define BEST(r, j)   best[(size_t)(r) * (L + 1) + (j)]
#define CUT(r, j)    cut[(size_t)(r) * (L + 1) + (j)]
#define SPREAD(r, j) spread[(size_t)(r) * (L + 1) + (j)]
    for (uint32_t j = 0; j <= L; j++) {
        BEST(R - 1, j) = ((R - 1 == 0 && T == 1) || j < L) ? prefix[L] - prefix[j] : INF;
        if (R - 1 == 0) BEST(R - 1, j) += fixed0;
        SPREAD(R - 1, j) = (double)BEST(R - 1, j) * (double)BEST(R - 1, j);
    }
    for (uint32_t j = 0; j <= L; j++)
        CUT(R - 1, j) = L;
    for (uint32_t r = R - 1; r-- > 0;) {
        uint32_t rest = R - 1 - r; /* ranks after r, each needing a layer */
        for (uint32_t j = 0; j <= L; j++) {
            BEST(r, j) = INF;
            SPREAD(r, j) = 0;
            if (r > 0 && j >= L) continue;
            uint64_t fixed = r == 0 ? fixed0 : 0;
            /* stage 0 may be empty only when it is rank 0 alone */
            for (uint32_t e = (r == 0 && T == 1 ? j : j + 1); e + rest <= L; e++) {
                if (BEST(r + 1, e) == INF) continue;
                uint64_t own = fixed + prefix[e] - prefix[j];
                uint64_t m = own > BEST(r + 1, e) ? own : BEST(r + 1, e);
                double sq = (double)own * (double)own + SPREAD(r + 1, e);
                /* strict: exact ties keep the earlier cut (fewer layers on rank 0) */
                if (m < BEST(r, j) || (m == BEST(r, j) && sq < SPREAD(r, j))) {
                    BEST(r, j) = m;
                    SPREAD(r, j) = sq;
                    CUT(r, j) = e;
                }
            }
            if (r == 0) break; /* rank 0 always starts at layer 0 */
        }
    }
    out->n_ranks = n_ranks;
    out->tp = T;
    out->n_stages = n_stages;
    out->tp_chosen = tp == 0;
    out->collectives = model_tp_layer_collectives(cfg, T, &out->collective_bytes);
    snprintf(out->tp_describe, sizeof out->tp_describe, "%s", model_tp_describe(cfg));
    out->n_slots = n_slots;
    out->capacity = capacity;
    out->max_rows = max_rows;
    for (uint32_t i = 0; i < L; i++)
        out->model_bytes += lb[i];
    out->model_bytes += embed + head;
    out->balance = balance;
    uint64_t per_layer_cache = model_tp_layer_state_bytes(cfg, capacity, T) * n_slots;
    /* frames: a receive buffer, a decoder arena (2x) and send buffers (rank 0 keeps 4) */
    uint64_t frame = (uint64_t)max_rows * cfg->d_model * 4 + 4096;
    uint64_t ws = workspace_bytes(cfg, capacity);
    uint32_t j = 0;
    for (uint32_t sg = 0; sg < R; sg++) {
        uint32_t e = CUT(sg, j);
        for (uint32_t t = 0; t < T; t++) {
            uint32_t r = sg * T + t;
            struct plan_rank *pr = &out->ranks[r];
            pr->stage = sg;
            pr->tp_rank = t;
            pr->layer_begin = j;
            pr->layer_end = e;
            pr->embed = pr->head = r == 0;
            pr->weight_bytes = weight_prefix[e] - weight_prefix[j] + (r == 0 ? embed + head : 0);
            pr->est_token_s = 1e-12 * (double)((e - j) * layer_ps + (r == 0 ? head_ps : 0));
            pr->cache_bytes = per_layer_cache * (e - j);
            pr->buffer_bytes =
                ws + frame * (r == 0 ? 8 : 5) + (r == 0 ? 4ull * cfg->vocab_size * 3 : 0);
        }
        j = e;
    }
#undef BEST
#undef CUT
#undef SPREAD
    if (j != L)
        st = stf_fail(err, STF_ERR_ARG, "plan: internal error, layers %u..%u unassigned", j, L);
fail:
    free(weight_prefix);
    free(lb);
    free(prefix);
    free(best);
    free(spread);
    free(cut);
    if (st) plan_free(out);
    return st;
}

void plan_free(struct dist_plan *p)
{
    free(p->ranks);
    p->ranks = NULL;
}

uint64_t plan_rank_expected_bytes(const struct dist_plan *p, uint32_t r)
{
    const struct plan_rank *pr = &p->ranks[r];
    return pr->weight_bytes + pr->cache_bytes + pr->buffer_bytes;
}

void plan_print(FILE *f, const struct dist_plan *p, const char *model_path)
{
    fprintf(
        f, "plan: %s on %u rank%s; %u cache slot%s x %u positions; model %.1f MB; balanced by %s\n",
        model_path, p->n_ranks, p->n_ranks == 1 ? "" : "s", p->n_slots, p->n_slots == 1 ? "" : "s",
        p->capacity, (double)p->model_bytes / 1e6,
        p->balance == PLAN_BALANCE_TIME ? "estimated time" : "weight bytes");
    fprintf(f, "grid: %u stage%s x %u tensor-parallel rank%s (T = %u%s)", p->n_stages,
            p->n_stages == 1 ? "" : "s", p->tp, p->tp == 1 ? "" : "s", p->tp,
            p->tp_chosen ? ", chosen by the plan; --tp sets it" : ", --tp");
    if (p->tp > 1)
        fprintf(f, "; per layer and token %u collectives, %.1f KB received per rank\n",
                p->collectives, (double)p->collective_bytes / 1e3);
    else
        fprintf(f, "\n");
    fprintf(f, "%5s %5s %3s  %-12s %7s  %-12s %12s %12s %12s %12s\n", "rank", "stage", "tp",
            "layers", "count", "also", "weights MB", "caches MB", "expected MB", "est ms/tok");
    for (uint32_t r = 0; r < p->n_ranks; r++) {
        const struct plan_rank *pr = &p->ranks[r];
        char range[32];
        if (pr->layer_end > pr->layer_begin)
            snprintf(range, sizeof range, "%u..%u", pr->layer_begin, pr->layer_end - 1);
        else
            snprintf(range, sizeof range, "-");
        fprintf(f, "%5u %5u %3u  %-12s %7u  %-12s %12.2f %12.2f %12.2f %12.3f\n", r, pr->stage,
                pr->tp_rank, range, pr->layer_end - pr->layer_begin, pr->embed ? "embed+head" : "",
                (double)pr->weight_bytes / 1e6, (double)pr->cache_bytes / 1e6,
                (double)plan_rank_expected_bytes(p, r) / 1e6, 1e3 * pr->est_token_s);
    }
    if (p->tp > 1)
        fprintf(f,
                "tensor parallelism: %s; weights and caches of a layer are split over its "
                "stage's %u ranks (the parts every rank keeps whole counted on each)\n",
                p->tp_describe, p->tp);
    fprintf(f, "expected MB = weights + caches + buffers; each rank also carries the MPI "
               "runtime (~20-40 MB)\nest ms/tok = read bytes / 20 GB/s + multiply-adds / 25 G/s "
               "(a model, not a measurement)\n");
}
