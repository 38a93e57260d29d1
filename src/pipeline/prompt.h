/* prompt: turns the user's prompts (token ids, or lines of a prompts file) into checked
 * token ids. Text goes through pipeline/text.h on rank 0. */
#ifndef STF_PIPELINE_PROMPT_H
#define STF_PIPELINE_PROMPT_H

#include <stdint.h>

#include "util/status.h"

/* Parses space/comma separated ids, each < vocab. *ids is malloc'd (caller frees). */
enum stf_status prompt_parse_ids(const char *text, uint32_t vocab, uint32_t **ids, uint32_t *n,
                                 struct stf_error *err);

/* Reads path into lines: one prompt per line, blank lines skipped, "\r\n" accepted.
 * *lines (malloc'd array of malloc'd strings) is freed with prompt_lines_free. */
/* One prompt per non-blank line of a file ("-": standard input), read once (a pipe works). */
enum stf_status prompt_read_lines(const char *path, char ***lines, uint32_t *n,
                                  struct stf_error *err);
void prompt_lines_free(char **lines, uint32_t n);

/* The whole of a file (or standard input for "-") as one prompt, trailing newlines
 * removed; *text is owned by the caller (free). An empty prompt is an error. */
enum stf_status prompt_read_text(const char *path, char **text, struct stf_error *err);

#endif
