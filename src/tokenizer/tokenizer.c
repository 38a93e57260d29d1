/*
 * tokenizer: loading a SentencePiece model and the encode / decode entry points.
 * See tokenizer.h for the contract; unigram.c and bpe.c hold the two segmenters.
 */
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

static const uint8_t space_symbol[3] = {0xE2, 0x96, 0x81};     /* U+2581 "▁" */
static const uint8_t replacement_char[3] = {0xEF, 0xBF, 0xBD}; /* U+FFFD */

/* "<0xBB>" with upper-case hex, exactly as SentencePiece writes byte pieces; else -1 */
static int byte_piece_value(const uint8_t *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    const char *hi = memchr(hex, s[3], 16);
    const char *lo = memchr(hex, s[4], 16);
    if (!hi || !lo || s[3] == '\0' || s[4] == '\0') return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

int32_t tok_lookup_id(const struct tokenizer *tok, const uint8_t *s, size_t len)
{
    int32_t id = piece_trie_find(&tok->reserved_trie, s, len);
    if (id >= 0) return id;
    id = piece_trie_find(&tok->normal_trie, s, len);
    return id >= 0 ? id : tok->unk_id;
}

static int is_normal_class(uint8_t type)
{
    return type == SPM_PIECE_NORMAL || type == SPM_PIECE_USER_DEFINED || type == SPM_PIECE_UNUSED;
}

/* SentencePiece's InitializePieces checks plus the tables the encoder reads. */
static enum stf_status build_tables(struct tokenizer *tok, struct stf_error *err)
{
    const struct spm_model *m = &tok->model;
    const int32_t n = m->n_pieces;
    enum stf_status st = STF_OK;
    struct piece_trie_key *normal = NULL, *reserved = NULL, *user = NULL;
    int n_normal = 0, n_reserved = 0, n_user = 0;

    uint8_t *type = malloc((size_t)n);
    tok->piece_score = malloc((size_t)n * sizeof *tok->piece_score);
    tok->decode_id = malloc((size_t)n * sizeof *tok->decode_id);
    tok->byte_of_id = malloc((size_t)n * sizeof *tok->byte_of_id);
    normal = malloc((size_t)n * sizeof *normal);
    reserved = malloc((size_t)n * sizeof *reserved);
    user = malloc((size_t)n * sizeof *user);
    tok->piece_type = type;
    if (!type || !tok->piece_score || !tok->decode_id || !tok->byte_of_id || !normal || !reserved ||
        !user) {
        st = stf_fail(err, STF_ERR_NOMEM, "%s: out of memory for %d pieces", tok->what, n);
        goto done;
    }

    for (int b = 0; b < 256; ++b)
        tok->byte_ids[b] = -1;
    tok->unk_id = -1;
    tok->min_score = FLT_MAX;
    tok->max_score = FLT_MIN; /* sic: SentencePiece starts the maximum at FLT_MIN */
    for (int32_t i = 0; i < n; ++i) {
        const struct spm_piece *p = &m->pieces[i];
        type[i] = p->type;
        tok->piece_score[i] = p->score;
        tok->byte_of_id[i] = -1;
        if (p->piece.len == 0) {
            st = stf_fail(err, STF_ERR_FORMAT, "%s: piece %d is empty, expected a non-empty string",
                          tok->what, i);
            goto done;
        }
        const struct piece_trie_key key = {p->piece.text, p->piece.len, i};
        if (is_normal_class(p->type))
            normal[n_normal++] = key;
        else
            reserved[n_reserved++] = key;
        if (p->type == SPM_PIECE_USER_DEFINED) user[n_user++] = key;
        if (p->type == SPM_PIECE_NORMAL) {
            if (p->score < tok->min_score) tok->min_score = p->score;
            if (p->score > tok->max_score) tok->max_score = p->score;
        }
        if (p->type == SPM_PIECE_UNKNOWN) {
            if (tok->unk_id >= 0) {
                st = stf_fail(err, STF_ERR_FORMAT,
                              "%s: pieces %d and %d are both of type UNKNOWN, expected one",
                              tok->what, tok->unk_id, i);
                goto done;
            }
            tok->unk_id = i;
        }
        if (p->type == SPM_PIECE_BYTE) {
            if (!m->byte_fallback) {
                st = stf_fail(err, STF_ERR_FORMAT,
                              "%s: byte piece %s (id %d) found although "
                              "trainer_spec.byte_fallback is false",
                              tok->what, (const char *)p->piece.text, i);
                goto done;
            }
            const int b = byte_piece_value(p->piece.text, p->piece.len);
            if (b < 0) {
                st =
                    stf_fail(err, STF_ERR_FORMAT, "%s: byte piece %d is \"%.32s\", expected <0xHH>",
                             tok->what, i, (const char *)p->piece.text);
                goto done;
            }
            tok->byte_of_id[i] = (int16_t)b;
        }
    }
    if (tok->unk_id < 0) {
        st = stf_fail(err, STF_ERR_FORMAT, "%s: no piece of type UNKNOWN (<unk>) in the vocabulary",
                      tok->what);
        goto done;
    }

    char what[300];
    snprintf(what, sizeof what, "%s: normal pieces", tok->what);
    st = piece_trie_build(&tok->normal_trie, normal, n_normal, what, err);
    if (st != STF_OK) goto done;
    snprintf(what, sizeof what, "%s: reserved pieces", tok->what);
    st = piece_trie_build(&tok->reserved_trie, reserved, n_reserved, what, err);
    if (st != STF_OK) goto done;
    snprintf(what, sizeof what, "%s: user-defined pieces", tok->what);
    st = piece_trie_build(&tok->user_trie, user, n_user, what, err);
    if (st != STF_OK) goto done;

    for (int32_t i = 0; i < n; ++i) {
        const struct spm_piece *p = &m->pieces[i];
        tok->decode_id[i] = tok_lookup_id(tok, p->piece.text, p->piece.len);
    }
    if (m->byte_fallback) {
        for (int b = 0; b < 256; ++b) {
            char piece[8];
            snprintf(piece, sizeof piece, "<0x%02X>", b);
            const int32_t id = tok_lookup_id(tok, (const uint8_t *)piece, 6);
            if (type[id] != SPM_PIECE_BYTE) {
                st = stf_fail(err, STF_ERR_FORMAT,
                              "%s: trainer_spec.byte_fallback is true but there is no byte "
                              "piece %s, expected all 256",
                              tok->what, piece);
                goto done;
            }
            tok->byte_ids[b] = id;
        }
    }
    if (m->model_type == SPM_MODEL_UNIGRAM && tok->normal_trie.n_keys == 0) {
        st = stf_fail(err, STF_ERR_FORMAT, "%s: unigram model has no normal pieces to segment with",
                      tok->what);
        goto done;
    }

done:
    free(normal);
    free(reserved);
    free(user);
    return st;
}

enum stf_status tokenizer_open_bytes(const void *bytes, size_t len, const char *what,
                                     struct tokenizer **out, struct stf_error *err)
{
    enum stf_status st;
    *out = NULL;
    if (!what) what = "SentencePiece model";
    struct tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return stf_fail(err, STF_ERR_NOMEM, "%s: out of memory", what);
    snprintf(tok->what, sizeof tok->what, "%s", what);

    st = spm_proto_read(bytes, len, tok->what, &tok->model, err);
    if (st != STF_OK) goto fail;
    const struct spm_model *m = &tok->model;
    if (m->model_type < SPM_MODEL_UNIGRAM || m->model_type > SPM_MODEL_CHAR) {
        st = stf_fail(err, STF_ERR_UNSUPPORTED,
                      "%s: trainer_spec.model_type is %d, expected 1 (unigram), 2 (bpe), "
                      "3 (word) or 4 (char)",
                      tok->what, m->model_type);
        goto fail;
    }
    st = build_tables(tok, err);
    if (st != STF_OK) goto fail;

    char field[300];
    snprintf(field, sizeof field, "%s: normalizer_spec", tok->what);
    st = normalizer_init(&tok->norm, m->normalizer.precompiled_charsmap.text,
                         m->normalizer.precompiled_charsmap.len, field, err);
    if (st != STF_OK) goto fail;
    tok->norm.add_dummy_prefix = m->normalizer.add_dummy_prefix;
    tok->norm.remove_extra_whitespaces = m->normalizer.remove_extra_whitespaces;
    tok->norm.escape_whitespaces = m->normalizer.escape_whitespaces;
    tok->norm.treat_whitespace_as_suffix = m->treat_whitespace_as_suffix;
    tok->norm.user_symbols = &tok->user_trie;

    if (m->has_denormalizer) {
        snprintf(field, sizeof field, "%s: denormalizer_spec", tok->what);
        st = normalizer_init(&tok->denorm, m->denormalizer.precompiled_charsmap.text,
                             m->denormalizer.precompiled_charsmap.len, field, err);
        if (st != STF_OK) goto fail;
        tok->denorm.add_dummy_prefix = m->denormalizer.add_dummy_prefix;
        tok->denorm.remove_extra_whitespaces = m->denormalizer.remove_extra_whitespaces;
        tok->denorm.escape_whitespaces = m->denormalizer.escape_whitespaces;
        tok->denorm.treat_whitespace_as_suffix = false;
        tok->denorm.user_symbols = NULL;
    }
    *out = tok;
    return STF_OK;

fail:
    tokenizer_close(tok);
    return st;
}

enum stf_status tokenizer_open_file(const char *path, struct tokenizer **out, struct stf_error *err)
{
    enum stf_status st;
    uint8_t *bytes = NULL;
    size_t len = 0, cap = 0;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return stf_fail(err, STF_ERR_IO, "%s: cannot open SentencePiece model: %s", path,
                        strerror(errno));
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            uint8_t *grown = realloc(bytes, cap);
            if (!grown) {
                st = stf_fail(err, STF_ERR_NOMEM, "%s: out of memory reading the model", path);
                goto done;
            }
            bytes = grown;
        }
        const size_t got = fread(bytes + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                st = stf_fail(err, STF_ERR_IO, "%s: read failed: %s", path, strerror(errno));
                goto done;
            }
            break;
        }
    }
    st = tokenizer_open_bytes(bytes, len, path, out, err);
done:
    fclose(f);
    free(bytes);
    return st;
}

void tokenizer_close(struct tokenizer *tok)
{
    if (!tok) return;
    normalizer_free(&tok->norm);
    normalizer_free(&tok->denorm);
    piece_trie_free(&tok->normal_trie);
    piece_trie_free(&tok->reserved_trie);
    piece_trie_free(&tok->user_trie);
    free((void *)tok->piece_type);
    free(tok->piece_score);
    free(tok->decode_id);
    free(tok->byte_of_id);
    tok_buf_free(&tok->normalized);
    tok_buf_free(&tok->segments);
    tok_buf_free(&tok->work);
    tok_buf_free(&tok->work2);
    tok_buf_free(&tok->text);
    spm_model_free(&tok->model);
    free(tok);
}

/* char model: one piece per character (or user-defined symbol) */
static enum stf_status char_segment(struct tokenizer *tok, const uint8_t *s, size_t n,
                                    struct stf_error *err)
{
    tok->segments.len = 0;
    for (size_t pos = 0; pos < n;) {
        int32_t id;
        size_t len = 0;
        if (tok->user_trie.n_keys > 0)
            len = piece_trie_longest_prefix(&tok->user_trie, s + pos, n - pos, &id);
        if (len == 0) {
            len = utf8_char_len(s[pos]);
            if (len > n - pos) len = n - pos;
        }
        const struct tok_segment seg = {(uint32_t)pos, (uint32_t)len,
                                        tok_lookup_id(tok, s + pos, len)};
        if (tok_buf_append(&tok->segments, &seg, sizeof seg) != 0)
            return stf_fail(err, STF_ERR_NOMEM, "char: out of memory");
        pos += len;
    }
    return STF_OK;
}

/* word model: SentencePiece's SplitIntoWords (a word starts at every "▁") */
static enum stf_status word_segment(struct tokenizer *tok, const uint8_t *s, size_t n,
                                    struct stf_error *err)
{
    tok->segments.len = 0;
    size_t word_begin = 0;
    for (size_t pos = 0; pos < n;) {
        size_t len = utf8_char_len(s[pos]);
        if (len > n - pos) len = n - pos;
        const int is_ws = len == 3 && memcmp(s + pos, space_symbol, 3) == 0;
        if (pos > 0 && is_ws) {
            const struct tok_segment seg = {(uint32_t)word_begin, (uint32_t)(pos - word_begin),
                                            tok_lookup_id(tok, s + word_begin, pos - word_begin)};
            if (tok_buf_append(&tok->segments, &seg, sizeof seg) != 0)
                return stf_fail(err, STF_ERR_NOMEM, "word: out of memory");
            word_begin = pos;
        }
        pos += len;
    }
    if (n > 0) {
        const struct tok_segment seg = {(uint32_t)word_begin, (uint32_t)(n - word_begin),
                                        tok_lookup_id(tok, s + word_begin, n - word_begin)};
        if (tok_buf_append(&tok->segments, &seg, sizeof seg) != 0)
            return stf_fail(err, STF_ERR_NOMEM, "word: out of memory");
    }
    return STF_OK;
}

enum stf_status tokenizer_encode(struct tokenizer *tok, const char *text, size_t len, int32_t *ids,
                                 int max_ids, int *n_ids, struct stf_error *err)
{
    enum stf_status st;
    *n_ids = 0;
    if (len > (size_t)INT32_MAX / 4)
        return stf_fail(err, STF_ERR_ARG, "%s: cannot encode %zu bytes at once (limit %d)",
                        tok->what, len, INT32_MAX / 4);
    st = normalizer_run(&tok->norm, (const uint8_t *)text, len, &tok->normalized, err);
    if (st != STF_OK) return st;
    const uint8_t *s = tok->normalized.data;
    const size_t n = tok->normalized.len;
    if (n > (size_t)INT32_MAX / 4)
        return stf_fail(err, STF_ERR_ARG, "%s: normalised text of %zu bytes is too long", tok->what,
                        n);

    switch (tok->model.model_type) {
    case SPM_MODEL_UNIGRAM:
        st = unigram_segment(tok, s, n, err);
        break;
    case SPM_MODEL_BPE:
        st = bpe_segment(tok, s, n, err);
        break;
    case SPM_MODEL_WORD:
        st = word_segment(tok, s, n, err);
        break;
    default:
        st = char_segment(tok, s, n, err);
        break;
    }
    if (st != STF_OK) return st;

    /* SentencePiece's PopulateSentencePieceText: an unknown piece becomes its UTF-8
     * bytes when byte fallback is on; otherwise a run of unknown pieces is one <unk>. */
    const struct tok_segment *seg = (const struct tok_segment *)(const void *)tok->segments.data;
    const size_t n_seg = tok->segments.len / sizeof *seg;
    const int byte_fallback = tok->model.byte_fallback;
    int count = 0;
    int prev_unk = 0;
    for (size_t i = 0; i < n_seg; ++i) {
        const int32_t id = seg[i].id;
        const uint8_t type = tok->piece_type[id];
        const int is_unk = type == SPM_PIECE_UNKNOWN;
        if (type == SPM_PIECE_CONTROL)
            return stf_fail(err, STF_ERR_UNSUPPORTED,
                            "%s: text segment matches control piece %d; SentencePiece rejects "
                            "such input too",
                            tok->what, id);
        if (is_unk && byte_fallback) {
            for (uint32_t k = 0; k < seg[i].len; ++k) {
                if (count < max_ids) ids[count] = tok->byte_ids[s[seg[i].begin + k]];
                ++count;
            }
        } else if (!(is_unk && prev_unk)) {
            if (count < max_ids) ids[count] = id;
            ++count;
        }
        prev_unk = is_unk;
    }
    *n_ids = count;
    if (count > max_ids)
        return stf_fail(err, STF_ERR_ARG, "%s: the text needs %d ids but the output holds %d",
                        tok->what, count, max_ids);
    return STF_OK;
}

/* Appends the bytes of a run of byte pieces: each well-formed UTF-8 character as is,
 * each malformed byte as U+FFFD. */
static int flush_bytes(struct tok_buf *text, const uint8_t *bytes, size_t n)
{
    if (tok_buf_reserve(text, n * 3 + 1) != 0) return -1;
    for (size_t off = 0; off < n;) {
        size_t mblen;
        if (utf8_valid_prefix(bytes + off, n - off, &mblen)) {
            tok_buf_put(text, bytes + off, mblen);
        } else {
            tok_buf_put(text, replacement_char, sizeof replacement_char);
        }
        off += mblen;
    }
    return 0;
}

/* Appends piece with every "▁" turned into a space. */
static int put_unescaped(struct tok_buf *text, const uint8_t *p, size_t n)
{
    if (tok_buf_reserve(text, n + 1) != 0) return -1;
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && p[i] == 0xE2 && p[i + 1] == 0x96 && p[i + 2] == 0x81) {
            text->data[text->len++] = ' ';
            i += 3;
        } else {
            text->data[text->len++] = p[i++];
        }
    }
    return 0;
}

enum stf_status tokenizer_decode(struct tokenizer *tok, const int32_t *ids, int n_ids,
                                 const char **text_out, size_t *len_out, struct stf_error *err)
{
    const struct spm_model *m = &tok->model;
    struct tok_buf *text = &tok->text;
    struct tok_buf *bytes = &tok->work; /* pending run of byte pieces */
    text->len = 0;
    bytes->len = 0;
    *text_out = "";
    *len_out = 0;

    const int strip_bos_ws =
        m->normalizer.add_dummy_prefix || m->normalizer.remove_extra_whitespaces;
    int is_bos_ws = 1;   /* still at the start: a leading "▁" may be dropped */
    int bos_ws_seen = 0; /* the previous piece dropped its leading "▁" */
    for (int i = 0; i < n_ids; ++i) {
        if (ids[i] < 0 || ids[i] >= m->n_pieces)
            return stf_fail(err, STF_ERR_ARG,
                            "%s: id %d at position %d is out of range, expected 0..%d", tok->what,
                            ids[i], i, m->n_pieces - 1);
        const int32_t id = tok->decode_id[ids[i]];
        const struct spm_bytes *piece = &m->pieces[ids[i]].piece;
        if (tok->piece_type[id] == SPM_PIECE_BYTE) {
            const uint8_t b = (uint8_t)tok->byte_of_id[id];
            if (tok_buf_append(bytes, &b, 1) != 0) goto nomem;
            continue;
        }
        if (bytes->len > 0) {
            if (flush_bytes(text, bytes->data, bytes->len) != 0) goto nomem;
            bytes->len = 0;
        }
        if (bos_ws_seen || text->len > 0) is_bos_ws = 0;
        bos_ws_seen = 0;
        const uint8_t type = tok->piece_type[id];
        if (type == SPM_PIECE_CONTROL) continue; /* <s>, </s>: invisible */
        if (type == SPM_PIECE_UNKNOWN) {
            const int same = m->pieces[id].piece.len == piece->len &&
                             memcmp(m->pieces[id].piece.text, piece->text, piece->len) == 0;
            const struct spm_bytes *surface = same ? &m->unk_surface : piece;
            if (tok_buf_append(text, surface->text, surface->len) != 0) goto nomem;
            continue;
        }
        const uint8_t *p = piece->text;
        size_t n = piece->len;
        if (is_bos_ws && strip_bos_ws && n >= 3 && memcmp(p, space_symbol, 3) == 0) {
            p += 3;
            n -= 3;
            /* with remove_extra_whitespaces every leading "▁" goes, so stay at bos */
            bos_ws_seen = !m->normalizer.remove_extra_whitespaces;
        }
        if (put_unescaped(text, p, n) != 0) goto nomem;
    }
    if (bytes->len > 0) {
        if (flush_bytes(text, bytes->data, bytes->len) != 0) goto nomem;
        bytes->len = 0;
    }

    if (m->has_denormalizer) {
        enum stf_status st = normalizer_run(&tok->denorm, text->data, text->len, bytes, err);
        if (st != STF_OK) return st;
        text->len = 0;
        if (tok_buf_append(text, bytes->data, bytes->len) != 0) goto nomem;
    }
    if (tok_buf_reserve(text, 1) != 0) goto nomem;
    text->data[text->len] = '\0';
    *text_out = (const char *)text->data;
    *len_out = text->len;
    return STF_OK;

nomem:
    return stf_fail(err, STF_ERR_NOMEM, "%s: out of memory decoding %d ids", tok->what, n_ids);
}

enum stf_status tokenizer_normalize(struct tokenizer *tok, const char *text, size_t len,
                                    const char **out, size_t *out_len, struct stf_error *err)
{
    enum stf_status st = normalizer_run(&tok->norm, (const uint8_t *)text, len, &tok->text, err);
    if (st != STF_OK) return st;
    if (tok_buf_reserve(&tok->text, 1) != 0)
        return stf_fail(err, STF_ERR_NOMEM, "%s: out of memory", tok->what);
    tok->text.data[tok->text.len] = '\0';
    *out = (const char *)tok->text.data;
    *out_len = tok->text.len;
    return STF_OK;
}

int tokenizer_piece_count(const struct tokenizer *tok)
{
    return tok->model.n_pieces;
}

const char *tokenizer_piece(const struct tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->model.n_pieces) return NULL;
    if (len) *len = tok->model.pieces[id].piece.len;
    return (const char *)tok->model.pieces[id].piece.text;
}

int32_t tokenizer_piece_to_id(const struct tokenizer *tok, const char *piece, size_t len)
{
    return tok_lookup_id(tok, (const uint8_t *)piece, len);
}

static int32_t special_id(const struct tokenizer *tok, const struct spm_bytes *piece,
                          uint8_t want_type)
{
    const int32_t id = tok_lookup_id(tok, piece->text, piece->len);
    return tok->piece_type[id] == want_type ? id : -1;
}

int32_t tokenizer_unk_id(const struct tokenizer *tok)
{
    return special_id(tok, &tok->model.unk_piece, SPM_PIECE_UNKNOWN);
}

int32_t tokenizer_bos_id(const struct tokenizer *tok)
{
    return special_id(tok, &tok->model.bos_piece, SPM_PIECE_CONTROL);
}

int32_t tokenizer_eos_id(const struct tokenizer *tok)
{
    return special_id(tok, &tok->model.eos_piece, SPM_PIECE_CONTROL);
}

int32_t tokenizer_pad_id(const struct tokenizer *tok)
{
    return special_id(tok, &tok->model.pad_piece, SPM_PIECE_CONTROL);
}

const char *tokenizer_model_name(const struct tokenizer *tok)
{
    switch (tok->model.model_type) {
    case SPM_MODEL_UNIGRAM:
        return "unigram";
    case SPM_MODEL_BPE:
        return "bpe";
    case SPM_MODEL_WORD:
        return "word";
    default:
        return "char";
    }
}
