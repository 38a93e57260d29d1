/* The front ends' tokenizer hook: streaming decode gives only whole UTF-8 characters, also
 * when a character is spelled with several byte-fallback pieces, and its pieces joined equal
 * the decode of all the ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/model_file.h"
#include "pipeline/text.h"

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Length of the complete UTF-8 prefix of s[0..n) that is valid; n when all of it is. */
static size_t valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t need = c < 0x80             ? 1
                      : (c & 0xE0) == 0xC0 ? 2
                      : (c & 0xF0) == 0xE0 ? 3
                      : (c & 0xF8) == 0xF0 ? 4
                                           : 0;
        if (!need || i + need > n) return i;
        for (size_t k = 1; k < need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += need;
    }
    return n;
}

static void test_text_stream_whole_characters(void **state)
{
    (void)state;
    const char *src = getenv("STF_SOURCE_DIR");
    assert_non_null(src);
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/tokenizer/unigram_nfkc_bytes.model", src);
    struct model m = {0};
    m.path = path;
    m.tokenizer = read_file(path, &m.tokenizer_len);
    struct dist_text *t;
    struct stf_error err = {0};
    assert_int_equal(dist_text_open(&m, &t, &err), STF_OK);
    /* characters outside the small vocabulary come out as byte-fallback pieces */
    const char *text =
        "Ein Fa\xC3\x9F voll \xE6\xBC\xA2\xE5\xAD\x97 und \xF0\x9F\x99\x82 caf\xC3\xA9.";
    uint32_t *ids, n;
    assert_int_equal(dist_text_encode(t, text, 1, 1u << 20, &ids, &n, &err), STF_OK);
    assert_true(n > 8);
    const char *full;
    assert_int_equal(dist_text_decode(t, ids, n, &full, &err), STF_OK);
    char *want = strdup(full);
    assert_non_null(strstr(want, "\xF0\x9F\x99\x82")); /* the 4-byte character survived */
    char got[4096] = "";
    size_t got_len = 0;
    uint32_t held = 0; /* steps where a partial character was held back */
    struct text_stream ts = {0};
    for (uint32_t i = 1; i <= n; i++) {
        const char *piece;
        size_t len;
        assert_int_equal(dist_text_stream(t, &ts, ids, i, i == n, &piece, &len, &err), STF_OK);
        /* every piece is whole characters */
        assert_int_equal(valid_utf8((const unsigned char *)piece, len), len);
        memcpy(got + got_len, piece, len);
        got_len += len;
        got[got_len] = 0;
        const char *prefix;
        assert_int_equal(dist_text_decode(t, ids, i, &prefix, &err), STF_OK);
        if (strlen(prefix) > got_len) held++;
    }
    assert_string_equal(got, want);
    assert_true(held >= 3); /* the test went through byte-fallback sequences */
    free(want);
    free(ids);
    dist_text_close(t);
    free((void *)m.tokenizer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_stream_whole_characters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
