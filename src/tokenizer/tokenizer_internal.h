/*
 * tokenizer_internal: the inside of struct tokenizer, shared by the files of the
 * tokenizer module (tokenizer.c: load, ids, decode; unigram.c and bpe.c: the two
 * segmentation algorithms). Nothing outside src/tokenizer includes this.
 */
#ifndef STF_TOKENIZER_TOKENIZER_INTERNAL_H
#define STF_TOKENIZER_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "tokenizer/normalizer.h"
#include "tokenizer/piece_trie.h"
#include "tokenizer/spm_proto.h"
#include "tokenizer/tok_buf.h"
#include "tokenizer/tokenizer.h"

/* One piece of a segmentation: bytes [begin, begin + len) of the normalised text. */
struct tok_segment {
    uint32_t begin;
    uint32_t len;
    int32_t id;
};

struct tokenizer {
    char what[256];            /* the source, for messages */
    struct spm_model model;    /* pieces and specs, owned */
    const uint8_t *piece_type; /* (n_pieces): enum spm_piece_type per id; owned */
    float *piece_score;        /* (n_pieces): score per id; owned */
    int32_t *decode_id;        /* (n_pieces): PieceToId(piece(id)), the id decode uses */
    int16_t *byte_of_id;       /* (n_pieces): b for a BYTE piece <0xBB>, else -1 */
    int32_t byte_ids[256];     /* id of piece <0xBB>, or -1 */

    /* SentencePiece keeps two maps: normal pieces (NORMAL, USER_DEFINED, UNUSED),
     * searched inside text, and reserved ones (UNKNOWN, CONTROL, BYTE), only ever
     * looked up whole. PieceToId tries reserved first. */
    struct piece_trie normal_trie;
    struct piece_trie reserved_trie;
    struct piece_trie user_trie; /* USER_DEFINED only: matched before normalisation */

    struct normalizer norm;
    struct normalizer denorm; /* used when model.has_denormalizer */

    int32_t unk_id;  /* the UNKNOWN piece (exactly one exists) */
    float min_score; /* over NORMAL pieces: unknown costs min_score - 10 */
    float max_score; /* over NORMAL pieces, starting from FLT_MIN as spm does */

    /* scratch, grown on demand and reused */
    struct tok_buf normalized;
    struct tok_buf segments; /* struct tok_segment */
    struct tok_buf work;     /* per-algorithm working arrays */
    struct tok_buf work2;
    struct tok_buf text; /* decode / normalize output */
};

/* PieceToId: reserved pieces first, then normal ones, else the unknown id. */
int32_t tok_lookup_id(const struct tokenizer *tok, const uint8_t *s, size_t len);

/* Segmenters: fill tok->segments (in text order) from the normalised s[0..n). */
enum stf_status unigram_segment(struct tokenizer *tok, const uint8_t *s, size_t n,
                                struct stf_error *err);
enum stf_status bpe_segment(struct tokenizer *tok, const uint8_t *s, size_t n,
                            struct stf_error *err);

#endif
