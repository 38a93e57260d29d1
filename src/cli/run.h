/* run: sparsetf-dist's entry point after option parsing — starts the transport (MPI under a
 * launcher; otherwise, and with --local, one loopback endpoint), reads the prompts and
 * resolves the run configuration once on rank 0, then runs the generation front end on rank
 * 0 (cli/generate.h) and engine_run_stage on the others, or --eval / --plan. Failures after
 * the job started end the whole job (engine_abort); it returns only on success or on errors
 * before the job started. */
#ifndef STF_CLI_RUN_H
#define STF_CLI_RUN_H

#include "cli/options.h"

enum stf_status dist_run(const struct dist_options *o, int *argc, char ***argv,
                         struct stf_error *err);

/* A command-line error (every rank parsed the same argv, so every rank has it): printed
 * once, by rank 0, and under a launcher no rank exits before rank 0 has printed it (MPI is
 * started only to agree on that). */
void dist_report_usage_error(int *argc, char ***argv, const struct stf_error *e);

#endif
