#include "tokenizer/spm_proto.h"

#include <stdlib.h>
#include <string.h>

#include "sentencepiece_model.pb-c.h"

/* Copies strings into one arena so the model outlives the protobuf message. */
struct arena_writer {
    uint8_t *base;
    size_t used;
};

static struct spm_bytes arena_copy(struct arena_writer *a, const void *data, size_t len)
{
    struct spm_bytes b = {a->base + a->used, (uint32_t)len};
    if (len) memcpy(a->base + a->used, data, len);
    a->base[a->used + len] = '\0';
    a->used += len + 1;
    return b;
}

static size_t spec_bytes(const Sentencepiece__NormalizerSpec *spec)
{
    if (!spec) return 2;
    return spec->name.len + 1 + spec->precompiled_charsmap.len + 1;
}

static void copy_spec(struct arena_writer *a, const Sentencepiece__NormalizerSpec *spec,
                      struct spm_normalizer_spec *out)
{
    if (!spec) {
        out->name = arena_copy(a, "", 0);
        out->precompiled_charsmap = arena_copy(a, "", 0);
        out->add_dummy_prefix = true;
        out->remove_extra_whitespaces = true;
        out->escape_whitespaces = true;
        return;
    }
    out->name = arena_copy(a, spec->name.data, spec->name.len);
    out->precompiled_charsmap =
        arena_copy(a, spec->precompiled_charsmap.data, spec->precompiled_charsmap.len);
    out->add_dummy_prefix = spec->add_dummy_prefix;
    out->remove_extra_whitespaces = spec->remove_extra_whitespaces;
    out->escape_whitespaces = spec->escape_whitespaces;
}

/* An optional string field: its bytes when present (and, if nonempty_only, not
 * empty), otherwise the default. */
static struct spm_bytes copy_or_default(struct arena_writer *a, protobuf_c_boolean has,
                                        ProtobufCBinaryData v, const char *dflt, bool nonempty_only)
{
    if (has && (!nonempty_only || v.len > 0)) return arena_copy(a, v.data, v.len);
    return arena_copy(a, dflt, strlen(dflt));
}

enum stf_status spm_proto_read(const void *bytes, size_t len, const char *what,
                               struct spm_model *model, struct stf_error *err)
{
    enum stf_status st = STF_OK;
    Sentencepiece__ModelProto *proto = NULL;
    memset(model, 0, sizeof *model);

    if (len == 0) {
        st = stf_fail(err, STF_ERR_FORMAT, "%s: empty SentencePiece model", what);
        goto fail;
    }
    proto = sentencepiece__model_proto__unpack(NULL, len, bytes);
    if (!proto) {
        st = stf_fail(err, STF_ERR_FORMAT,
                      "%s: not a SentencePiece model: the %zu bytes do not parse as "
                      "sentencepiece.ModelProto (truncated or not a .model file?)",
                      what, len);
        goto fail;
    }
    if (proto->n_pieces == 0) {
        st = stf_fail(err, STF_ERR_FORMAT, "%s: ModelProto.pieces is empty, expected a vocabulary",
                      what);
        goto fail;
    }
    if (proto->n_pieces > INT32_MAX / 2) {
        st = stf_fail(err, STF_ERR_FORMAT, "%s: %zu pieces is more than supported", what,
                      proto->n_pieces);
        goto fail;
    }

    const Sentencepiece__TrainerSpec *ts = proto->trainer_spec;
    size_t arena_len = 64; /* defaults below */
    for (size_t i = 0; i < proto->n_pieces; ++i)
        arena_len += proto->pieces[i]->piece.len + 1;
    if (ts)
        arena_len += ts->unk_surface.len + ts->unk_piece.len + ts->bos_piece.len +
                     ts->eos_piece.len + ts->pad_piece.len + 5;
    arena_len += spec_bytes(proto->normalizer_spec) + spec_bytes(proto->denormalizer_spec);

    model->arena = malloc(arena_len);
    model->pieces = calloc(proto->n_pieces, sizeof *model->pieces);
    if (!model->arena || !model->pieces) {
        st =
            stf_fail(err, STF_ERR_NOMEM, "%s: out of memory for %zu pieces", what, proto->n_pieces);
        goto fail;
    }
    struct arena_writer a = {model->arena, 0};
    model->n_pieces = (int32_t)proto->n_pieces;
    for (size_t i = 0; i < proto->n_pieces; ++i) {
        const Sentencepiece__ModelProto__SentencePiece *sp = proto->pieces[i];
        struct spm_piece *p = &model->pieces[i];
        p->piece = arena_copy(&a, sp->piece.data, sp->piece.len);
        p->score = sp->score;
        const int type = (int)sp->type;
        p->type =
            (type >= SPM_PIECE_NORMAL && type <= SPM_PIECE_BYTE) ? (uint8_t)type : SPM_PIECE_NORMAL;
    }

    if (ts) {
        model->model_type = (int)ts->model_type;
        model->treat_whitespace_as_suffix = ts->treat_whitespace_as_suffix;
        model->allow_whitespace_only_pieces = ts->allow_whitespace_only_pieces;
        model->byte_fallback = ts->byte_fallback;
        model->unk_surface =
            copy_or_default(&a, ts->has_unk_surface, ts->unk_surface, " \xE2\x81\x87 ", false);
        model->unk_piece = copy_or_default(&a, ts->has_unk_piece, ts->unk_piece, "<unk>", true);
        model->bos_piece = copy_or_default(&a, ts->has_bos_piece, ts->bos_piece, "<s>", true);
        model->eos_piece = copy_or_default(&a, ts->has_eos_piece, ts->eos_piece, "</s>", true);
        model->pad_piece = copy_or_default(&a, ts->has_pad_piece, ts->pad_piece, "<pad>", true);
    } else {
        ProtobufCBinaryData none = {0, NULL};
        model->model_type = SPM_MODEL_UNIGRAM;
        model->unk_surface = copy_or_default(&a, 0, none, " \xE2\x81\x87 ", false);
        model->unk_piece = copy_or_default(&a, 0, none, "<unk>", true);
        model->bos_piece = copy_or_default(&a, 0, none, "<s>", true);
        model->eos_piece = copy_or_default(&a, 0, none, "</s>", true);
        model->pad_piece = copy_or_default(&a, 0, none, "<pad>", true);
    }
    copy_spec(&a, proto->normalizer_spec, &model->normalizer);
    copy_spec(&a, proto->denormalizer_spec, &model->denormalizer);
    model->has_denormalizer =
        proto->denormalizer_spec && proto->denormalizer_spec->precompiled_charsmap.len > 0;

    sentencepiece__model_proto__free_unpacked(proto, NULL);
    return STF_OK;

fail:
    if (proto) sentencepiece__model_proto__free_unpacked(proto, NULL);
    spm_model_free(model);
    return st;
}

void spm_model_free(struct spm_model *model)
{
    free(model->pieces);
    free(model->arena);
    memset(model, 0, sizeof *model);
}
