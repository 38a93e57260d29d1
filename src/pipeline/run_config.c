/* run_config: see run_config.h. */
#include "pipeline/run_config.h"

#include <string.h>

#include "model/model_file.h"

#define SLOTS_DEFAULT_MAX 16u

enum stf_status run_config_resolve(const struct run_settings *s, uint32_t n_ranks,
                                   uint32_t expected_sessions, struct run_config *rc,
                                   struct stf_error *err)
{
    memset(rc, 0, sizeof *rc);
    if (!s->model_path) return stf_fail(err, STF_ERR_ARG, "no model file given");
    rc->model_path = s->model_path;
    enum stf_status st = fault_parse(s->fault_inject, &rc->fault, err);
    if (!st) st = fault_check_rank(&rc->fault, (int)n_ranks, err);
    if (st) return st;
    if ((st = model_read_config(s->model_path, &rc->model, err))) return st;
    const uint32_t max_len = rc->model.max_seq_len;
    rc->ctx = s->ctx ? s->ctx : max_len;
    if (rc->ctx > max_len)
        return stf_fail(err, STF_ERR_ARG, "--ctx %u exceeds the model's max_seq_len %u", rc->ctx,
                        max_len);
    uint32_t chunk = s->prefill_chunk ? s->prefill_chunk : 32;
    rc->max_rows = chunk < rc->ctx ? chunk : rc->ctx;
    if (s->slots)
        rc->n_slots = s->slots;
    else if (expected_sessions)
        rc->n_slots = expected_sessions < SLOTS_DEFAULT_MAX ? expected_sessions : SLOTS_DEFAULT_MAX;
    else
        rc->n_slots = SLOTS_DEFAULT_MAX;
    const char *kernels = s->kernels ? s->kernels : "fast";
    if (!(rc->kernels = kernels_by_name(kernels)))
        return stf_fail(err, STF_ERR_ARG, "--kernels must be `fast` or `ref`, got `%s`", kernels);
    rc->threads = s->threads > 0 ? s->threads : 1;
    rc->verify = s->verify;
    rc->timeout = s->timeout > 0 ? s->timeout : 60;
    rc->n_ranks = n_ranks;
    return plan_make(&rc->model, n_ranks, s->tp, rc->n_slots, rc->ctx, rc->max_rows, s->balance,
                     &rc->plan, err);
}

void run_config_free(struct run_config *rc)
{
    plan_free(&rc->plan);
    memset(rc, 0, sizeof *rc);
}
