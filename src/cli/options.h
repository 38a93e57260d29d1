/*
 * options: the command line of sparsetf-dist, parsed into plain data. Shared by every rank
 * (each parses the same argv), so every check here is deterministic and rank-independent.
 */
#ifndef STF_CLI_OPTIONS_H
#define STF_CLI_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "pipeline/run_config.h"
#include "kernels/sampler.h"
#include "util/status.h"

#define DIST_MAX_STOPS 8

struct dist_options {
    struct run_settings run;   /* --model, --ctx, --slots, --prefill-chunk, --kernels, --threads,
                                  --verify, --balance, --timeout, --fault-inject */
    const char *prompt;        /* --prompt TEXT (needs the model's tokenizer) */
    const char *prompt_file;   /* -f FILE / --prompt -: the whole file (stdin) as one prompt */
    const char *prompt_tokens; /* --prompt-tokens "i j k" */
    const char *prompts_file;  /* --prompts FILE: one text prompt per line */
    const char *prompts_tokens_file; /* --prompts-tokens FILE: one line of token ids each */
    const char *stats_json;
    const char *dump_logits; /* raw f32 rows of logits for tests */
    uint32_t max_tokens;
    bool print_tokens;
    bool plan_only;
    bool quiet;
    bool local;              /* --local: the whole model in this process, no MPI */
    uint32_t plan_ranks;     /* --ranks N: plan for N ranks (--plan outside mpirun) */
    const char *eval_file;   /* --eval FILE: log-perplexity of a text file */
    const char *serve;       /* --serve [ADDR:]PORT: the HTTP API on rank 0 (docs/server.md) */
    const char *api_key;     /* --api-key KEY or $SPARSETF_API_KEY: Bearer key for /v1/... */
    uint32_t max_queue;      /* --max-queue N: requests waiting beyond the slots (then 429) */
    uint32_t max_body;       /* --max-body BYTES: request body limit */
    uint32_t client_timeout; /* --client-timeout S: idle seconds before a client is dropped */
    struct sampler_params sampling;
    const char *stops[DIST_MAX_STOPS]; /* --stop STR: generation ends after the text has one */
    uint32_t n_stops;
    bool output_json;    /* --output-json: one JSON object per session on stdout */
    const char *journal; /* --journal DIR: sessions survive a crash (pipeline/journal.h) */
};

/* Returns STF_OK, or STF_ERR_ARG with a message; *exit_now is set for --help/--version
 * (already printed to stdout). */
enum stf_status dist_options_parse(struct dist_options *o, int argc, char **argv, bool *exit_now,
                                   bool print, struct stf_error *err);
void dist_options_usage(FILE *f);

#endif
