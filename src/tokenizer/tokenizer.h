/*
 * tokenizer: SentencePiece encoding and decoding, read straight from a `.model` file.
 *
 * Rank 0 turns prompts into token ids and generated ids back into text with the
 * exact segmentation of the reference SentencePiece library (0.1.97, as packaged by
 * Debian): the same normalisation (precompiled charsmap, dummy prefix, whitespace
 * rules), the same unigram Viterbi (scores, unknown penalty, tie order) and BPE merge
 * order, the same unknown / byte-fallback / user-defined / control handling, and the
 * same decoding rules. Unigram, BPE, word and char models are supported.
 *
 * Ownership: tokenizer_open_* copies what it needs from the model bytes, so the
 * caller may free them afterwards; the tokenizer is released by tokenizer_close.
 * Pointers returned by tokenizer_decode / tokenizer_normalize / tokenizer_piece are
 * borrowed: decode and normalize results stay valid until the next call on the same
 * tokenizer, piece strings until tokenizer_close.
 *
 * Threads: encode, decode and normalize reuse scratch buffers inside the tokenizer,
 * so one tokenizer must not be used by two threads at once (open one per thread).
 * After the buffers have grown to the longest input seen, those calls allocate
 * nothing.
 */
#ifndef STF_TOKENIZER_TOKENIZER_H
#define STF_TOKENIZER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

struct tokenizer;

/* Opens a tokenizer from the len bytes of a serialized SentencePiece ModelProto.
 * what names the source in error messages (a path, "model.bin: tokenizer"). */
enum stf_status tokenizer_open_bytes(const void *bytes, size_t len, const char *what,
                                     struct tokenizer **out, struct stf_error *err);

/* Reads the `.model` file at path and opens it. */
enum stf_status tokenizer_open_file(const char *path, struct tokenizer **out,
                                    struct stf_error *err);

void tokenizer_close(struct tokenizer *tok);

/* Encodes text[0..len) (UTF-8; malformed bytes are handled as SentencePiece does) into
 * ids[0..max_ids). *n_ids always receives the number of ids the text needs; when that
 * exceeds max_ids, only the first max_ids are written and STF_ERR_ARG is returned, so a
 * caller can grow its array and call again. No BOS/EOS is added. */
enum stf_status tokenizer_encode(struct tokenizer *tok, const char *text, size_t len, int32_t *ids,
                                 int max_ids, int *n_ids, struct stf_error *err);

/* Decodes n_ids ids to text. *text (NUL-terminated, *len bytes) is borrowed, valid until
 * the next call on tok. An id outside [0, piece count) is an STF_ERR_ARG. */
enum stf_status tokenizer_decode(struct tokenizer *tok, const int32_t *ids, int n_ids,
                                 const char **text, size_t *len, struct stf_error *err);

/* The normalised form of text that the segmentation works on (spaces shown as U+2581
 * when the model escapes them). *out is borrowed like tokenizer_decode's result. */
enum stf_status tokenizer_normalize(struct tokenizer *tok, const char *text, size_t len,
                                    const char **out, size_t *out_len, struct stf_error *err);

int tokenizer_piece_count(const struct tokenizer *tok);
/* The piece string of id (NUL-terminated, *len bytes if len is not NULL), or NULL when
 * id is out of range. */
const char *tokenizer_piece(const struct tokenizer *tok, int32_t id, size_t *len);
/* SentencePiece's PieceToId: the id of an exact piece string, or the unknown id. */
int32_t tokenizer_piece_to_id(const struct tokenizer *tok, const char *piece, size_t len);

/* Special ids as SentencePiece reports them; -1 when the model has none. */
int32_t tokenizer_unk_id(const struct tokenizer *tok);
int32_t tokenizer_bos_id(const struct tokenizer *tok);
int32_t tokenizer_eos_id(const struct tokenizer *tok);
int32_t tokenizer_pad_id(const struct tokenizer *tok);

/* "unigram", "bpe", "word" or "char". */
const char *tokenizer_model_name(const struct tokenizer *tok);

#endif
