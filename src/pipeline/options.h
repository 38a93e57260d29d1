/*
 * options: the command line of sparsetf-dist, parsed into plain data. Shared by every rank
 * (each parses the same argv), so every check here is deterministic and rank-independent.
 */
#ifndef STF_PIPELINE_OPTIONS_H
#define STF_PIPELINE_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "pipeline/plan.h"
#include "kernels/sampler.h"
#include "util/status.h"

struct dist_options {
    const char *model_path;
    const char *prompt;              /* --prompt TEXT (needs the model's tokenizer) */
    const char *prompt_tokens;       /* --prompt-tokens "i j k" */
    const char *prompts_file;        /* --prompts FILE: one text prompt per line */
    const char *prompts_tokens_file; /* --prompts-tokens FILE: one line of token ids each */
    const char *stats_json;
    const char *dump_logits; /* raw f32 rows of logits for tests */
    const char *kernels;     /* "fast" or "ref" */
    uint32_t max_tokens;
    uint32_t ctx; /* KV cache capacity; 0 = the model's max_seq_len */
    int threads;  /* OpenBLAS threads per rank */
    bool print_tokens;
    bool verify;
    bool plan_only;
    bool quiet;
    bool local;                /* --local: the single-process runner (pipeline/local.c), no MPI */
    uint32_t plan_ranks;       /* --ranks N: plan for N ranks (--plan outside mpirun) */
    uint32_t slots;            /* cache slots per rank; 0 = one per session, at most 16 */
    uint32_t prefill_chunk;    /* prompt positions per prefill frame */
    double timeout;            /* seconds a rank waits for a peer before failing the job */
    const char *fault_inject;  /* testing hook, see pipeline/fault.h */
    const char *eval_file;     /* --eval FILE: log-perplexity of a text file */
    enum plan_balance balance; /* --balance memory|time */
    struct sampler_params sampling;
};

/* Returns STF_OK, or STF_ERR_ARG with a message; *exit_now is set for --help/--version
 * (already printed to stdout). */
enum stf_status dist_options_parse(struct dist_options *o, int argc, char **argv, bool *exit_now,
                                   bool print, struct stf_error *err);
void dist_options_usage(FILE *f);

#endif
