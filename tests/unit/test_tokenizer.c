/*
 * Unit tests for the tokenizer module: the .model parser (truncated and malformed
 * input gives a clear error, never a crash), the normaliser, the unigram and BPE
 * segmenters on small hand-checked vocabularies, byte fallback and decoding.
 *
 * Small models are written here byte by byte in protobuf wire format, independent of
 * the generated protobuf-c code; the real models come from tests/tokenizer/. The
 * expected ids of the hand-made models were worked out by hand and confirmed with the
 * reference (python sentencepiece LoadFromSerializedProto on the same bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tokenizer/tokenizer.h"

/* ---- a minimal protobuf writer ---- */

struct pb {
    uint8_t data[1 << 22]; /* never on the stack */
    size_t len;
};

static void pb_varint(struct pb *b, uint64_t v)
{
    while (v >= 0x80) {
        b->data[b->len++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->data[b->len++] = (uint8_t)v;
}

static void pb_bytes(struct pb *b, int field, const void *p, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void pb_int(struct pb *b, int field, int64_t v)
{
    pb_varint(b, (uint64_t)field << 3 | 0);
    pb_varint(b, (uint64_t)v);
}

static void pb_float(struct pb *b, int field, float f)
{
    pb_varint(b, (uint64_t)field << 3 | 5);
    memcpy(b->data + b->len, &f, 4); /* little-endian host */
    b->len += 4;
}

enum { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 };
enum { UNIGRAM = 1, BPE = 2 };

struct test_piece {
    const char *piece;
    float score;
    int type;
};

struct test_model {
    int model_type;
    int byte_fallback;
    int add_dummy_prefix;
    int remove_extra_whitespaces;
    int escape_whitespaces;
    int add_bytes; /* append <0x00>..<0xFF> BYTE pieces */
};

static const struct test_model plain_unigram = {UNIGRAM, 0, 0, 1, 1, 0};

static void pb_model(struct pb *out, const struct test_piece *pieces, int n,
                     const struct test_model *m)
{
    static struct pb sub;
    out->len = 0;
    for (int i = 0; i < n; ++i) {
        sub.len = 0;
        pb_bytes(&sub, 1, pieces[i].piece, strlen(pieces[i].piece));
        pb_float(&sub, 2, pieces[i].score);
        pb_int(&sub, 3, pieces[i].type);
        pb_bytes(out, 1, sub.data, sub.len);
    }
    if (m->add_bytes) {
        for (int b = 0; b < 256; ++b) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            sub.len = 0;
            pb_bytes(&sub, 1, name, 6);
            pb_float(&sub, 2, 0.0f);
            pb_int(&sub, 3, BYTE);
            pb_bytes(out, 1, sub.data, sub.len);
        }
    }
    sub.len = 0;
    pb_int(&sub, 3, m->model_type);
    pb_int(&sub, 35, m->byte_fallback);
    pb_bytes(out, 2, sub.data, sub.len);
    sub.len = 0;
    pb_bytes(&sub, 1, "identity", 8);
    pb_int(&sub, 3, m->add_dummy_prefix);
    pb_int(&sub, 4, m->remove_extra_whitespaces);
    pb_int(&sub, 5, m->escape_whitespaces);
    pb_bytes(out, 3, sub.data, sub.len);
}

static struct tokenizer *open_model(const struct test_piece *pieces, int n,
                                    const struct test_model *m)
{
    static struct pb b;
    struct stf_error err = {0};
    struct tokenizer *tok = NULL;
    pb_model(&b, pieces, n, m);
    enum stf_status st = tokenizer_open_bytes(b.data, b.len, "test model", &tok, &err);
    if (st != STF_OK) fail_msg("open failed: %s", err.msg);
    return tok;
}

static int encode(struct tokenizer *tok, const char *text, int32_t *ids, int max)
{
    struct stf_error err = {0};
    int n = -1;
    enum stf_status st = tokenizer_encode(tok, text, strlen(text), ids, max, &n, &err);
    if (st != STF_OK) fail_msg("encode \"%s\" failed: %s", text, err.msg);
    return n;
}

static void assert_ids(struct tokenizer *tok, const char *text, const int32_t *want, int n_want)
{
    int32_t ids[64];
    const int n = encode(tok, text, ids, 64);
    if (n != n_want || memcmp(ids, want, (size_t)n * sizeof *ids) != 0) {
        char got[512] = "", exp[512] = "";
        for (int i = 0; i < n && i < 40; ++i)
            snprintf(got + strlen(got), sizeof got - strlen(got), " %d", ids[i]);
        for (int i = 0; i < n_want; ++i)
            snprintf(exp + strlen(exp), sizeof exp - strlen(exp), " %d", want[i]);
        fail_msg("\"%s\": got [%s ] want [%s ]", text, got, exp);
    }
}

#define ASSERT_IDS(tok, text, ...)                                                                 \
    do {                                                                                           \
        const int32_t want_[] = {__VA_ARGS__};                                                     \
        assert_ids(tok, text, want_, (int)(sizeof want_ / sizeof want_[0]));                       \
    } while (0)

static void assert_decode(struct tokenizer *tok, const int32_t *ids, int n, const char *want)
{
    struct stf_error err = {0};
    const char *text;
    size_t len;
    if (tokenizer_decode(tok, ids, n, &text, &len, &err) != STF_OK)
        fail_msg("decode failed: %s", err.msg);
    assert_int_equal(len, strlen(want));
    assert_string_equal(text, want);
}

static void assert_normalized(struct tokenizer *tok, const char *in, size_t in_len,
                              const char *want)
{
    struct stf_error err = {0};
    const char *out;
    size_t len;
    if (tokenizer_normalize(tok, in, in_len, &out, &len, &err) != STF_OK)
        fail_msg("normalize failed: %s", err.msg);
    assert_string_equal(out, want);
}

static char *read_file(const char *rel, size_t *len)
{
    const char *src = getenv("STF_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", src ? src : ".", rel);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s (is STF_SOURCE_DIR set?)", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc(*len);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, *len, f), *len);
    fclose(f);
    return data;
}

/* ---- parser ---- */

static void test_tokenizer_parser_rejects_empty_and_garbage(void **state)
{
    (void)state;
    struct stf_error err = {0};
    struct tokenizer *tok = (struct tokenizer *)1;
    assert_int_equal(tokenizer_open_bytes("", 0, "empty", &tok, &err), STF_ERR_FORMAT);
    assert_null(tok);
    assert_non_null(strstr(err.msg, "empty"));
    const char garbage[] = "this is not a protobuf at all \xff\xff\xff\xff";
    assert_int_equal(tokenizer_open_bytes(garbage, sizeof garbage, "garbage.model", &tok, &err),
                     STF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "garbage.model"));
    assert_int_equal(tokenizer_open_file("/nonexistent/x.model", &tok, &err), STF_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.model"));
}

static void test_tokenizer_parser_truncated_real_model(void **state)
{
    (void)state;
    size_t len;
    char *bytes = read_file("tests/tokenizer/unigram_nfkc.model", &len);
    struct stf_error err = {0};
    struct tokenizer *tok = NULL;
    assert_int_equal(tokenizer_open_bytes(bytes, len, "unigram_nfkc", &tok, &err), STF_OK);
    assert_int_equal(tokenizer_piece_count(tok), 2000);
    tokenizer_close(tok);
    /* every cut inside the model must fail cleanly, or (when the cut lands on a field
     * boundary before the end of the pieces) load a smaller but consistent model */
    int failed = 0;
    for (size_t cut = 0; cut < len; cut += (cut < 4096 ? 1 : 997)) {
        tok = NULL;
        memset(&err, 0, sizeof err);
        enum stf_status st = tokenizer_open_bytes(bytes, cut, "cut", &tok, &err);
        if (st != STF_OK) {
            assert_null(tok);
            assert_true(strlen(err.msg) > 0);
            ++failed;
        } else {
            int32_t ids[256];
            int n;
            tokenizer_encode(tok, "Hello world", 11, ids, 256, &n, &err);
            tokenizer_close(tok);
        }
    }
    assert_true(failed > 0);
    free(bytes);
}

static void test_tokenizer_parser_bit_flips_do_not_crash(void **state)
{
    (void)state;
    size_t len;
    char *bytes = read_file("tests/tokenizer/bpe_nfkc_bytes.model", &len);
    char *copy = malloc(len);
    assert_non_null(copy);
    uint32_t seed = 12345;
    for (int round = 0; round < 300; ++round) {
        memcpy(copy, bytes, len);
        for (int k = 0; k < 8; ++k) {
            seed = seed * 1664525u + 1013904223u;
            copy[(seed >> 8) % len] ^= (char)(1u << (seed & 7));
        }
        struct stf_error err = {0};
        struct tokenizer *tok = NULL;
        if (tokenizer_open_bytes(copy, len, "flipped", &tok, &err) == STF_OK) {
            int32_t ids[512];
            int n;
            const char *text;
            size_t text_len;
            const char s[] = "Ｈｅｌｌｏ wörld ☃ \xff\xfe 日本語 <0x41>";
            if (tokenizer_encode(tok, s, sizeof s - 1, ids, 512, &n, &err) == STF_OK)
                tokenizer_decode(tok, ids, n, &text, &text_len, &err);
            tokenizer_close(tok);
        } else {
            assert_true(strlen(err.msg) > 0);
        }
    }
    free(copy);
    free(bytes);
}

static void test_tokenizer_parser_semantic_errors(void **state)
{
    (void)state;
    struct pb *b = malloc(sizeof *b);
    assert_non_null(b);
    struct stf_error err;
    struct tokenizer *tok = NULL;

    const struct test_piece no_unk[] = {{"a", -1, NORMAL}};
    pb_model(b, no_unk, 1, &plain_unigram);
    assert_int_equal(tokenizer_open_bytes(b->data, b->len, "m", &tok, &err), STF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "UNKNOWN"));

    const struct test_piece two_unk[] = {{"<unk>", 0, UNKNOWN}, {"<unk2>", 0, UNKNOWN}};
    pb_model(b, two_unk, 2, &plain_unigram);
    assert_int_equal(tokenizer_open_bytes(b->data, b->len, "m", &tok, &err), STF_ERR_FORMAT);

    const struct test_piece dup[] = {{"<unk>", 0, UNKNOWN}, {"a", -1, NORMAL}, {"a", -2, NORMAL}};
    pb_model(b, dup, 3, &plain_unigram);
    assert_int_equal(tokenizer_open_bytes(b->data, b->len, "m", &tok, &err), STF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "already defined"));

    const struct test_piece empty[] = {{"<unk>", 0, UNKNOWN}, {"", -1, NORMAL}};
    pb_model(b, empty, 2, &plain_unigram);
    assert_int_equal(tokenizer_open_bytes(b->data, b->len, "m", &tok, &err), STF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "empty"));

    const struct test_piece byte_piece[] = {{"<unk>", 0, UNKNOWN}, {"<0x41>", 0, BYTE}};
    pb_model(b, byte_piece, 2, &plain_unigram);
    assert_int_equal(tokenizer_open_bytes(b->data, b->len, "m", &tok, &err), STF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "byte_fallback"));

    struct test_model fallback_without_bytes = plain_unigram;
    fallback_without_bytes.byte_fallback = 1;
    const struct test_piece ok[] = {{"<unk>", 0, UNKNOWN}, {"a", -1, NORMAL}};
    pb_model(b, ok, 2, &fallback_without_bytes);
    assert_int_equal(tokenizer_open_bytes(b->data, b->len, "m", &tok, &err), STF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "256"));

    struct test_model bad_type = plain_unigram;
    bad_type.model_type = 9;
    pb_model(b, ok, 2, &bad_type);
    assert_int_equal(tokenizer_open_bytes(b->data, b->len, "m", &tok, &err), STF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "model_type"));

    /* a charsmap whose trie size points past its end */
    pb_model(b, ok, 2, &plain_unigram);
    static struct pb spec;
    spec.len = 0;
    const uint8_t charsmap[] = {0xff, 0xff, 0, 0, 1, 2, 3, 4};
    pb_bytes(&spec, 2, charsmap, sizeof charsmap);
    pb_bytes(b, 3, spec.data, spec.len); /* a second normalizer_spec merges into the first */
    assert_int_equal(tokenizer_open_bytes(b->data, b->len, "m", &tok, &err), STF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "precompiled_charsmap"));
    free(b);
}

/* ---- normaliser ---- */

static void test_tokenizer_normalizer_whitespace_rules(void **state)
{
    (void)state;
    const struct test_piece pieces[] = {{"<unk>", 0, UNKNOWN}, {"a", -1, NORMAL}};
    struct test_model m = {UNIGRAM, 0, 1, 1, 1, 0};
    struct tokenizer *tok = open_model(pieces, 2, &m);
    assert_normalized(tok, "  hello   world  ", 17, "\xe2\x96\x81hello\xe2\x96\x81world");
    assert_normalized(tok, "   ", 3, "");
    assert_normalized(tok, "", 0, "");
    assert_normalized(tok, "x\xc3(y", 4, "\xe2\x96\x81x\xef\xbf\xbd(y"); /* malformed -> U+FFFD */
    assert_normalized(tok, "a\0b", 3,
                      "\xe2\x96\x81"
                      "a"); /* NUL kept */
    tokenizer_close(tok);

    m.remove_extra_whitespaces = 0;
    tok = open_model(pieces, 2, &m);
    assert_normalized(tok, " a  b ", 6,
                      "\xe2\x96\x81\xe2\x96\x81"
                      "a\xe2\x96\x81\xe2\x96\x81"
                      "b\xe2\x96\x81");
    tokenizer_close(tok);

    m.remove_extra_whitespaces = 1;
    m.add_dummy_prefix = 0;
    m.escape_whitespaces = 0;
    tok = open_model(pieces, 2, &m);
    assert_normalized(tok, "  a  b  ", 8, "a b");
    tokenizer_close(tok);
}

static void test_tokenizer_normalizer_nfkc_charsmap(void **state)
{
    (void)state;
    struct stf_error err = {0};
    struct tokenizer *tok = NULL;
    char path[4096];
    const char *src = getenv("STF_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/tokenizer/unigram_nfkc.model", src ? src : ".");
    if (tokenizer_open_file(path, &tok, &err) != STF_OK) fail_msg("%s", err.msg);
    /* expectations checked with spm_normalize (Debian sentencepiece 0.1.97) */
    assert_normalized(tok, "ＡＢＣ １２３", strlen("ＡＢＣ １２３"), "▁ABC▁123");
    assert_normalized(tok, "ﬁne ①", strlen("ﬁne ①"), "▁fine▁1");
    assert_normalized(tok, "cafe\xcc\x81", 6, "▁caf\xc3\xa9"); /* composed */
    assert_normalized(tok, "  a\xe3\x80\x80 b  ", 10, "▁a▁b"); /* ideographic space */
    assert_normalized(tok, "㍻", strlen("㍻"), "▁平成");
    /* user-defined symbols are not normalised: "<sep>" stays, ☃ too */
    assert_normalized(tok, "Ａ<sep>☃", strlen("Ａ<sep>☃"), "▁A<sep>☃");
    tokenizer_close(tok);
}

/* ---- unigram ---- */

static const struct test_piece unigram_pieces[] = {
    {"<unk>", 0, UNKNOWN},    /* 0 */
    {"a", -1, NORMAL},        /* 1 */
    {"b", -1, NORMAL},        /* 2 */
    {"ab", -1.5f, NORMAL},    /* 3 */
    {"abc", -4, NORMAL},      /* 4 */
    {"c", -1, NORMAL},        /* 5 */
    {"bc", -1.2f, NORMAL},    /* 6 */
    {"<s>", 0, CONTROL},      /* 7 */
    {"<x>", 0, USER_DEFINED}, /* 8 */
    {"cc", -0.1f, UNUSED},    /* 9 */
};

static void test_tokenizer_unigram_viterbi(void **state)
{
    (void)state;
    struct tokenizer *tok = open_model(unigram_pieces, 10, &plain_unigram);
    /* abc: a+b+c -3, ab+c -2.5, a+bc -2.2, abc -4 */
    ASSERT_IDS(tok, "abc", 1, 6);
    ASSERT_IDS(tok, "ab", 3);
    /* unknown x costs min_score - 10 = -14; a run of unknowns is one <unk> */
    ASSERT_IDS(tok, "axa", 1, 0, 1);
    ASSERT_IDS(tok, "xxa", 0, 1);
    ASSERT_IDS(tok, "x\xc3\xa9y", 0);
    /* user-defined symbols always win; control pieces are never matched in text */
    ASSERT_IDS(tok, "a<x>b", 1, 8, 2);
    ASSERT_IDS(tok, "<s>", 0);
    /* unused pieces are skipped: cc is c + c */
    ASSERT_IDS(tok, "cc", 5, 5);
    assert_int_equal(tokenizer_unk_id(tok), 0);
    assert_int_equal(tokenizer_bos_id(tok), 7);
    assert_int_equal(tokenizer_eos_id(tok), -1);
    tokenizer_close(tok);
}

static void test_tokenizer_unigram_ties_keep_first(void **state)
{
    (void)state;
    /* a+b and ab both score -2: the first proposal for the end position (ab, made
     * from start 0 before b is tried from start 1) is kept */
    const struct test_piece pieces[] = {
        {"<unk>", 0, UNKNOWN}, {"a", -1, NORMAL}, {"b", -1, NORMAL}, {"ab", -2, NORMAL}};
    struct tokenizer *tok = open_model(pieces, 4, &plain_unigram);
    ASSERT_IDS(tok, "ab", 3);
    ASSERT_IDS(tok, "abab", 3, 3);
    tokenizer_close(tok);
}

static void test_tokenizer_byte_fallback(void **state)
{
    (void)state;
    const struct test_piece pieces[] = {
        {"<unk>", 0, UNKNOWN}, {"a", -1, NORMAL}, {"\xe2\x96\x81", -2, NORMAL}};
    struct test_model m = {UNIGRAM, 1, 1, 1, 1, 1};
    struct tokenizer *tok = open_model(pieces, 3, &m);
    /* bytes <0xHH> follow the 3 pieces: id = 3 + byte */
    ASSERT_IDS(tok, "a\xc3\xa9", 2, 1, 3 + 0xC3, 3 + 0xA9);
    /* a malformed byte was normalised to U+FFFD, so its bytes come out */
    ASSERT_IDS(tok, "\xff", 2, 3 + 0xEF, 3 + 0xBF, 3 + 0xBD);
    const int32_t ids[] = {2, 1, 3 + 0xC3, 3 + 0xA9, 2, 3 + 0xFF, 1};
    assert_decode(tok, ids, 7,
                  "a\xc3\xa9 \xef\xbf\xbd"
                  "a");
    tokenizer_close(tok);
}

/* ---- BPE ---- */

static void test_tokenizer_bpe_merges_by_score(void **state)
{
    (void)state;
    const struct test_piece pieces[] = {
        {"<unk>", 0, UNKNOWN},    /* 0 */
        {"a", 0, NORMAL},         /* 1 */
        {"b", 0, NORMAL},         /* 2 */
        {"c", 0, NORMAL},         /* 3 */
        {"ab", -1, NORMAL},       /* 4 */
        {"bc", -0.5f, NORMAL},    /* 5 */
        {"abc", -2, NORMAL},      /* 6 */
        {"d", 0, NORMAL},         /* 7 */
        {"cd", -1, NORMAL},       /* 8 */
        {"<x>", 0, USER_DEFINED}, /* 9 */
    };
    struct test_model m = plain_unigram;
    m.model_type = BPE;
    struct tokenizer *tok = open_model(pieces, 10, &m);
    /* bc (-0.5) merges before ab (-1), then a+bc = abc */
    ASSERT_IDS(tok, "abc", 6);
    /* bc first again; abc then wins over cd only because bcd is no piece */
    ASSERT_IDS(tok, "abcd", 6, 7);
    ASSERT_IDS(tok, "bcd", 5, 7);
    /* a user-defined symbol is frozen and splits merges */
    ASSERT_IDS(tok, "a<x>bc", 1, 9, 5);
    /* unknown characters: one <unk> per run */
    ASSERT_IDS(tok, "zza", 0, 1);
    tokenizer_close(tok);
}

static void test_tokenizer_bpe_ties_merge_leftmost(void **state)
{
    (void)state;
    const struct test_piece pieces[] = {
        {"<unk>", 0, UNKNOWN}, {"a", 0, NORMAL},   {"b", 0, NORMAL},   {"c", 0, NORMAL},
        {"d", 0, NORMAL},      {"ab", -1, NORMAL}, {"bc", -1, NORMAL}, {"cd", -1, NORMAL}};
    struct test_model m = plain_unigram;
    m.model_type = BPE;
    struct tokenizer *tok = open_model(pieces, 8, &m);
    /* ab, bc, cd all score -1: ab (leftmost) merges, which kills bc, then cd */
    ASSERT_IDS(tok, "abcd", 5, 7);
    ASSERT_IDS(tok, "bcd", 6, 4);
    tokenizer_close(tok);
}

static void test_tokenizer_bpe_unused_pieces_split_back(void **state)
{
    (void)state;
    const struct test_piece pieces[] = {{"<unk>", 0, UNKNOWN}, {"a", 0, NORMAL},
                                        {"b", 0, NORMAL},      {"ab", -1, UNUSED},
                                        {"abb", -2, NORMAL},   {"bb", -3, NORMAL}};
    struct test_model m = plain_unigram;
    m.model_type = BPE;
    struct tokenizer *tok = open_model(pieces, 6, &m);
    ASSERT_IDS(tok, "ab", 1, 2); /* ab merged, then split back */
    ASSERT_IDS(tok, "abb", 4);   /* ab + b = abb is a normal piece */
    tokenizer_close(tok);
}

static void test_tokenizer_large_vocabulary_lookup(void **state)
{
    (void)state;
    /* 60,000 distinct pseudo-random pieces (with shared prefixes and multi-byte
     * characters) must all be found by the double-array trie */
    enum { N = 60000 };
    static char names[N][24];
    static struct test_piece pieces[N];
    static const char *const alphabet[] = {
        "a", "b", "c", "d", "e", "é", "ü", "日", "本", "\xe2\x96\x81", "z", "q"};
    uint32_t seed = 7;
    pieces[0] = (struct test_piece){"<unk>", 0, UNKNOWN};
    for (int i = 1; i < N; ++i) {
        snprintf(names[i], sizeof names[i], "%d", i); /* unique suffix */
        char prefix[24] = "";
        seed = seed * 1664525u + 1013904223u;
        for (uint32_t k = 0; k < (seed >> 28) % 4; ++k) {
            seed = seed * 1664525u + 1013904223u;
            strcat(prefix, alphabet[(seed >> 16) % 12]);
        }
        char full[48];
        snprintf(full, sizeof full, "%s%s", prefix, names[i]);
        snprintf(names[i], sizeof names[i], "%.23s", full);
        pieces[i] = (struct test_piece){names[i], -(float)(i % 97), NORMAL};
    }
    struct tokenizer *tok = open_model(pieces, N, &plain_unigram);
    assert_int_equal(tokenizer_piece_count(tok), N);
    for (int i = 0; i < N; ++i)
        assert_int_equal(tokenizer_piece_to_id(tok, names[i], strlen(names[i])), i ? i : 0);
    assert_int_equal(tokenizer_piece_to_id(tok, "not a piece", 11), 0);
    tokenizer_close(tok);
}

/* ---- decode and API details ---- */

static void test_tokenizer_decode_rules(void **state)
{
    (void)state;
    const struct test_piece pieces[] = {
        {"<unk>", 0, UNKNOWN},             /* 0 */
        {"<s>", 0, CONTROL},               /* 1 */
        {"\xe2\x96\x81hello", -1, NORMAL}, /* 2 ▁hello */
        {"\xe2\x96\x81world", -1, NORMAL}, /* 3 ▁world */
        {"\xe2\x96\x81", -1, NORMAL},      /* 4 ▁ */
        {"x", -1, NORMAL},                 /* 5 */
    };
    struct test_model m = {UNIGRAM, 0, 1, 1, 1, 0};
    struct tokenizer *tok = open_model(pieces, 6, &m);
    const int32_t a[] = {1, 2, 3};
    assert_decode(tok, a, 3, "hello world");
    const int32_t b[] = {4, 2, 0, 5};
    assert_decode(tok, b, 4, "hello \xe2\x81\x87 x"); /* leading ▁s dropped, <unk> as " ⁇ " */
    assert_decode(tok, NULL, 0, "");
    const int32_t bad[] = {2, 6};
    struct stf_error err = {0};
    const char *text;
    size_t len;
    assert_int_equal(tokenizer_decode(tok, bad, 2, &text, &len, &err), STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "out of range"));
    ASSERT_IDS(tok, "hello world", 2, 3);
    tokenizer_close(tok);

    /* without remove_extra_whitespaces only the first leading ▁ goes */
    m.remove_extra_whitespaces = 0;
    tok = open_model(pieces, 6, &m);
    const int32_t c[] = {4, 2};
    assert_decode(tok, c, 2, " hello");
    tokenizer_close(tok);
}

static void test_tokenizer_encode_small_output(void **state)
{
    (void)state;
    struct tokenizer *tok = open_model(unigram_pieces, 10, &plain_unigram);
    int32_t ids[2];
    int n = 0;
    struct stf_error err = {0};
    assert_int_equal(tokenizer_encode(tok, "ababab", 6, ids, 2, &n, &err), STF_ERR_ARG);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 3);
    assert_int_equal(tokenizer_piece_to_id(tok, "bc", 2), 6);
    assert_int_equal(tokenizer_piece_to_id(tok, "zz", 2), 0);
    size_t plen;
    assert_string_equal(tokenizer_piece(tok, 4, &plen), "abc");
    assert_null(tokenizer_piece(tok, 10, &plen));
    tokenizer_close(tok);
}

/* A fresh tokenizer whose model has a denormaliser decodes an empty line to "" (its output
 * buffer has no storage yet: the append of zero bytes must not memcpy from NULL, which
 * UBSan reports in the sanitize build). */
static void test_tokenizer_decode_empty_with_denormalizer(void **state)
{
    (void)state;
    struct stf_error err = {0};
    struct tokenizer *tok = NULL;
    char path[4096];
    const char *src = getenv("STF_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/tokenizer/unigram_custom_rules.model", src ? src : ".");
    if (tokenizer_open_file(path, &tok, &err) != STF_OK) fail_msg("%s", err.msg);
    const char *text = NULL;
    size_t len = 1;
    int32_t none[1] = {0};
    assert_int_equal(tokenizer_decode(tok, none, 0, &text, &len, &err), STF_OK);
    assert_int_equal(len, 0);
    assert_string_equal(text, "");
    int n = -1;
    assert_int_equal(tokenizer_encode(tok, "", 0, none, 1, &n, &err), STF_OK);
    assert_int_equal(n, 0);
    tokenizer_close(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer_parser_rejects_empty_and_garbage),
        cmocka_unit_test(test_tokenizer_parser_truncated_real_model),
        cmocka_unit_test(test_tokenizer_parser_bit_flips_do_not_crash),
        cmocka_unit_test(test_tokenizer_parser_semantic_errors),
        cmocka_unit_test(test_tokenizer_normalizer_whitespace_rules),
        cmocka_unit_test(test_tokenizer_normalizer_nfkc_charsmap),
        cmocka_unit_test(test_tokenizer_unigram_viterbi),
        cmocka_unit_test(test_tokenizer_unigram_ties_keep_first),
        cmocka_unit_test(test_tokenizer_byte_fallback),
        cmocka_unit_test(test_tokenizer_bpe_merges_by_score),
        cmocka_unit_test(test_tokenizer_bpe_ties_merge_leftmost),
        cmocka_unit_test(test_tokenizer_bpe_unused_pieces_split_back),
        cmocka_unit_test(test_tokenizer_large_vocabulary_lookup),
        cmocka_unit_test(test_tokenizer_decode_rules),
        cmocka_unit_test(test_tokenizer_encode_small_output),
        cmocka_unit_test(test_tokenizer_decode_empty_with_denormalizer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
