/* local: the whole model in one process — prefill, then sampling until --max-tokens or the
 * end-of-text token. The single-rank path of sparsetf-dist. */
#ifndef STF_PIPELINE_LOCAL_H
#define STF_PIPELINE_LOCAL_H

#include "pipeline/options.h"

enum stf_status dist_run_local(const struct dist_options *o, struct stf_error *err);

#endif
