/*
 * text: the tokenizer hook of rank 0 — text prompts to ids and generated ids to text, with
 * the SentencePiece model embedded in the model file (struct model: tokenizer bytes). Built
 * against src/tokenizer when that library is present (STF_HAVE_TOKENIZER); otherwise every
 * call fails with a message that says to use token ids.
 */
#ifndef STF_PIPELINE_TEXT_H
#define STF_PIPELINE_TEXT_H

#include <stdint.h>

#include "model/model_file.h"
#include "util/status.h"

struct dist_text;

/* Opens the tokenizer embedded in m (rank 0 maps it with the embedding). */
enum stf_status dist_text_open(const struct model *m, struct dist_text **out,
                               struct stf_error *err);
void dist_text_close(struct dist_text *t);

/* Encodes text; prepends the model's bos_id (a text prompt starts a document). *ids is
 * malloc'd, every id < vocab. */
enum stf_status dist_text_encode(struct dist_text *t, const char *text, uint32_t bos,
                                 uint32_t vocab, uint32_t **ids, uint32_t *n,
                                 struct stf_error *err);
/* Decodes ids; *text is borrowed until the next call on t. */
enum stf_status dist_text_decode(struct dist_text *t, const uint32_t *ids, uint32_t n,
                                 const char **text, struct stf_error *err);

#endif
