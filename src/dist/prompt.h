/* prompt: turns the user's prompt (token ids or text) into checked token ids. */
#ifndef STF_DIST_PROMPT_H
#define STF_DIST_PROMPT_H

#include <stdint.h>

#include "util/status.h"

/* Parses space/comma separated ids, each < vocab. *ids is malloc'd (caller frees). */
enum stf_status prompt_parse_ids(const char *text, uint32_t vocab, uint32_t **ids, uint32_t *n,
                                 struct stf_error *err);

#endif
