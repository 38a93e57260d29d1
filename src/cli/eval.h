/*
 * eval: log-perplexity of a text file under the model (`sparsetf-dist --eval FILE`), on one
 * process, through the engine (each window is a session asking for every logits row).
 * Definition (docs/quality.md): every non-empty line is one document, encoded by the
 * model's tokenizer as [BOS] ids [EOS] and run from a fresh state; every token after BOS is
 * predicted once. A document longer than the context is cut into windows of T tokens that
 * overlap by one token, each run from a fresh state. Reported: tokens predicted, characters
 * (Unicode code points of the lines, without newlines), nats per token and bits per
 * character = total nats / ln 2 / characters.
 */
#ifndef STF_CLI_EVAL_H
#define STF_CLI_EVAL_H

#include "cli/options.h"
#include "pipeline/run_config.h"

/* rc: a one-rank configuration (ctx >= 2); runs the engine on a loopback endpoint. */
enum stf_status dist_eval(const struct dist_options *o, const struct run_config *rc,
                          struct stf_error *err);

#endif
