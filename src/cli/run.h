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

#endif
