/*
 * run_config: how one sparsetf job runs — the knobs a front end sets (struct run_settings,
 * plain data from a command line, an HTTP server's flags or a test) and the resolved,
 * validated configuration every rank runs from (struct run_config): the model's header, the
 * cache capacity, the slot count, the prefill chunk and the layer plan.
 *
 * run_config_resolve reads the model header once and plans once; nothing downstream reads
 * the settings again or re-derives a value (ctx, rows per frame, slots). Every check is
 * deterministic, so every rank resolving the same settings gets the same configuration.
 */
#ifndef STF_PIPELINE_RUN_CONFIG_H
#define STF_PIPELINE_RUN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "model/config.h"
#include "pipeline/fault.h"
#include "pipeline/plan.h"
#include "util/status.h"

/* What a front end asks for; 0 means "the default" where stated. */
struct run_settings {
    const char *model_path;
    uint32_t ctx;              /* positions per session cache; 0 = the model's max_seq_len */
    uint32_t slots;            /* cache slots per rank; 0 = one per expected session, max 16 */
    uint32_t prefill_chunk;    /* prompt positions per prefill frame; 0 = 32 */
    const char *kernels;       /* "fast" (default when NULL) or "ref" */
    int threads;               /* kernel threads per rank; 0 = 1 */
    bool verify;               /* check every tensor checksum at load */
    enum plan_balance balance; /* how layers are split over ranks */
    uint32_t tp;               /* tensor-parallel ranks per stage; 0 = the plan chooses */
    double timeout;            /* seconds a rank waits for a peer; 0 = 60 */
    const char *fault_inject;  /* testing hook (pipeline/fault.h); NULL = none */
};

/* The configuration every rank runs from. Owns plan.ranks. */
struct run_config {
    const char *model_path;    /* borrowed from the settings */
    struct model_config model; /* the model file's header */
    uint32_t n_ranks;          /* ranks of the job (the plan's size) */
    uint32_t ctx;              /* cache positions per slot, <= model.max_seq_len */
    uint32_t n_slots;          /* cache slots per rank, the same on every rank */
    uint32_t max_rows;         /* rows per prefill frame: min(prefill_chunk, ctx) */
    const struct kernels *kernels;
    int threads;
    bool verify;
    double timeout;
    struct fault fault;    /* parsed fault_inject */
    struct dist_plan plan; /* layers of each of the n_ranks ranks */
};

/* Reads the model header of s->model_path, validates the settings against it and plans
 * n_ranks ranks. expected_sessions sizes the default slot count (0 = unknown: 16). Errors
 * name the option and the limit ("--ctx 4096 exceeds the model's max_seq_len 1024"). */
enum stf_status run_config_resolve(const struct run_settings *s, uint32_t n_ranks,
                                   uint32_t expected_sessions, struct run_config *rc,
                                   struct stf_error *err);
void run_config_free(struct run_config *rc);

#endif
