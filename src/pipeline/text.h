/*
 * text: the tokenizer hook of rank 0 — text prompts to ids and generated ids to text, with
 * the SentencePiece model embedded in the model file (struct model: tokenizer bytes). Built
 * against src/tokenizer when that library is present (STF_HAVE_TOKENIZER); otherwise every
 * call fails with a message that says to use token ids.
 */
#ifndef STF_PIPELINE_TEXT_H
#define STF_PIPELINE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
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

/* Incremental decoding of one session's text for streaming: each call gets the ids so far
 * (the prompt and what was generated) and returns the bytes they add to the text since
 * the previous call. Only whole UTF-8 characters come out: when the ids end inside a
 * character spelled with byte-fallback pieces (<0xE2><0x80>...), those bytes wait for the
 * piece that completes it (or for final, which flushes what the full decode gives). The
 * pieces joined equal dist_text_decode of all the ids. Start with {0}. */
struct text_stream {
    size_t emitted; /* bytes of the text already returned */
};

/* *piece (len bytes, possibly 0) is borrowed until the next call on t. */
enum stf_status dist_text_stream(struct dist_text *t, struct text_stream *ts, const uint32_t *ids,
                                 uint32_t n, bool final, const char **piece, size_t *len,
                                 struct stf_error *err);

#endif
