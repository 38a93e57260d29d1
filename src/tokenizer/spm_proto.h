/*
 * spm_proto: reads a SentencePiece `.model` (a serialized sentencepiece.ModelProto)
 * into plain structs. It is the only file of the tokenizer that includes the
 * protobuf-c code generated from proto/sentencepiece_model.proto.
 *
 * Everything in struct spm_model is owned by it (one arena for all strings) and
 * released by spm_model_free; the protobuf message is freed before spm_proto_read
 * returns. Values absent from the file take SentencePiece's defaults.
 */
#ifndef STF_TOKENIZER_SPM_PROTO_H
#define STF_TOKENIZER_SPM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

/* ModelProto.SentencePiece.Type values, as on disk */
enum spm_piece_type {
    SPM_PIECE_NORMAL = 1,
    SPM_PIECE_UNKNOWN = 2,
    SPM_PIECE_CONTROL = 3,
    SPM_PIECE_USER_DEFINED = 4,
    SPM_PIECE_UNUSED = 5,
    SPM_PIECE_BYTE = 6,
};

/* TrainerSpec.ModelType values, as on disk */
enum spm_model_type {
    SPM_MODEL_UNIGRAM = 1,
    SPM_MODEL_BPE = 2,
    SPM_MODEL_WORD = 3,
    SPM_MODEL_CHAR = 4,
};

/* A byte string inside the model's arena; text[len] is always NUL. */
struct spm_bytes {
    const uint8_t *text;
    uint32_t len;
};

struct spm_piece {
    struct spm_bytes piece;
    float score;
    uint8_t type; /* enum spm_piece_type; unknown values read as NORMAL, like protobuf */
};

struct spm_normalizer_spec {
    struct spm_bytes name;
    struct spm_bytes precompiled_charsmap; /* empty: no character rewriting */
    bool add_dummy_prefix;
    bool remove_extra_whitespaces;
    bool escape_whitespaces;
};

struct spm_model {
    struct spm_piece *pieces; /* (n_pieces), id order */
    int32_t n_pieces;
    int model_type; /* enum spm_model_type (or another value from the file) */
    bool treat_whitespace_as_suffix;
    bool allow_whitespace_only_pieces;
    bool byte_fallback;
    struct spm_bytes unk_surface; /* decoded text of <unk> */
    struct spm_bytes unk_piece, bos_piece, eos_piece, pad_piece;
    struct spm_normalizer_spec normalizer;
    bool has_denormalizer; /* a denormalizer_spec with a non-empty charsmap */
    struct spm_normalizer_spec denormalizer;
    uint8_t *arena; /* owns every spm_bytes above */
};

/* Parses len bytes of a serialized ModelProto; what names the source in messages. */
enum stf_status spm_proto_read(const void *bytes, size_t len, const char *what,
                               struct spm_model *model, struct stf_error *err);
void spm_model_free(struct spm_model *model);

#endif
