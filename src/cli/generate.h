/*
 * generate: sparsetf-dist's generation front end, on rank 0 — one engine session per prompt
 * (--prompt, --prompt-tokens, or a line of --prompts / --prompts-tokens), session i sampling
 * with --seed + i; output streamed to stdout as each token is sampled; --dump-logits rows,
 * the summary on stderr and --stats-json at the end.
 *
 * Output. One session: the generated ids on one line (token ids or --print-tokens), then,
 * for a text prompt, the prompt and its continuation decoded together on one line (streamed
 * as it grows when it is the only output; after the ids line otherwise). Several sessions:
 * the same per session, every line starting with "[i] " (i the 0-based session index); a
 * session's line is broken where another session's output interrupts it, so its ids are the
 * lines with its prefix, in order.
 */
#ifndef STF_CLI_GENERATE_H
#define STF_CLI_GENERATE_H

#include <stdint.h>

#include "cli/options.h"
#include "pipeline/run_config.h"
#include "transport/transport.h"

/* lines: the n prompts (text or ids, per the options). rc and t as for engine_open. */
enum stf_status generate_run(const struct dist_options *o, const struct run_config *rc,
                             struct transport *t, char *const *lines, uint32_t n,
                             struct stf_error *err);

#endif
