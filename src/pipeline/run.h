/* run: sparsetf-dist's entry point after option parsing — starts the transport, plans,
 * and runs rank 0's coordinator or a stage (or, with --local, the single-process runner).
 * Failures after the transport is up end the whole job (pipe_fail); it returns only on
 * success or on errors before the job started. */
#ifndef STF_PIPELINE_RUN_H
#define STF_PIPELINE_RUN_H

#include "pipeline/options.h"

enum stf_status dist_run(const struct dist_options *o, int *argc, char ***argv,
                         struct stf_error *err);

#endif
