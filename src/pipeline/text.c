/* text: see text.h. */
#include "pipeline/text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef STF_HAVE_TOKENIZER
#include "tokenizer/tokenizer.h"

struct dist_text {
    struct tokenizer *tok;
    int32_t *ids; /* decode scratch */
    uint32_t cap;
};

enum stf_status dist_text_open(const struct model *m, struct dist_text **out, struct stf_error *err)
{
    *out = NULL;
    if (!m->tokenizer || !m->tokenizer_len)
        return stf_fail(err, STF_ERR_ARG,
                        "%s embeds no tokenizer: use --prompt-tokens / --prompts-tokens, or "
                        "regenerate it with sparsetf-gen --tokenizer FILE",
                        m->path);
    struct dist_text *t = calloc(1, sizeof *t);
    if (!t) return stf_fail(err, STF_ERR_NOMEM, "out of memory for the tokenizer");
    char what[300];
    snprintf(what, sizeof what, "%s: tokenizer", m->path);
    enum stf_status st = tokenizer_open_bytes(m->tokenizer, m->tokenizer_len, what, &t->tok, err);
    if (st) {
        free(t);
        return st;
    }
    *out = t;
    return STF_OK;
}

void dist_text_close(struct dist_text *t)
{
    if (!t) return;
    tokenizer_close(t->tok);
    free(t->ids);
    free(t);
}

enum stf_status dist_text_encode(struct dist_text *t, const char *text, uint32_t bos,
                                 uint32_t vocab, uint32_t **ids, uint32_t *n, struct stf_error *err)
{
    *ids = NULL;
    *n = 0;
    size_t len = strlen(text);
    if (len > (size_t)INT32_MAX / 8)
        return stf_fail(err, STF_ERR_ARG, "the prompt is %zu bytes, more than this engine takes",
                        len);
    /* A first guess of one id per byte; normalisation can expand text (NFKC turns U+337F
     * into four letters, U+FDFA into 18), so when the tokenizer says it needs more ids the
     * buffer grows to exactly that and the text is encoded again. */
    int max = (int)len + 2, got = 0;
    int32_t *raw = malloc((size_t)max * sizeof *raw);
    uint32_t *out = NULL;
    enum stf_status st = STF_OK;
    if (!raw) {
        st = stf_fail(err, STF_ERR_NOMEM, "out of memory for the prompt");
        goto done;
    }
    st = tokenizer_encode(t->tok, text, len, raw, max, &got, err);
    if (st == STF_ERR_ARG && got > max) {
        int32_t *grown = realloc(raw, (size_t)got * sizeof *grown);
        if (!grown) {
            st = stf_fail(err, STF_ERR_NOMEM, "out of memory for the prompt's %d ids", got);
            goto done;
        }
        raw = grown;
        max = got;
        st = tokenizer_encode(t->tok, text, len, raw, max, &got, err);
    }
    if (st) goto done;
    out = malloc(((size_t)got + 1) * sizeof *out);
    if (!out) {
        st = stf_fail(err, STF_ERR_NOMEM, "out of memory for the prompt");
        goto done;
    }
    out[0] = bos;
    for (int i = 0; i < got; i++) {
        if (raw[i] < 0 || (uint32_t)raw[i] >= vocab) {
            st = stf_fail(err, STF_ERR_ARG,
                          "the tokenizer produced id %d, outside the model's vocabulary of %u",
                          raw[i], vocab);
            goto done;
        }
        out[i + 1] = (uint32_t)raw[i];
    }
    *ids = out;
    *n = (uint32_t)got + 1;
    out = NULL;
done:
    free(raw);
    free(out);
    return st;
}

enum stf_status dist_text_decode(struct dist_text *t, const uint32_t *ids, uint32_t n,
                                 const char **text, struct stf_error *err)
{
    if (n > t->cap) {
        int32_t *grown = realloc(t->ids, (size_t)n * sizeof *grown);
        if (!grown) return stf_fail(err, STF_ERR_NOMEM, "out of memory decoding text");
        t->ids = grown;
        t->cap = n;
    }
    for (uint32_t i = 0; i < n; i++)
        t->ids[i] = (int32_t)ids[i];
    size_t len;
    return tokenizer_decode(t->tok, t->ids, (int)n, text, &len, err);
}

/* The byte a byte-fallback piece ("<0xHH>") stands for, or -1. */
static int byte_piece(const struct tokenizer *tok, uint32_t id)
{
    size_t len;
    const char *p = tokenizer_piece(tok, (int32_t)id, &len);
    if (!p || len != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    unsigned v;
    if (sscanf(p + 3, "%2X", &v) != 1) return -1;
    return (int)v;
}

/* How many of the last ids are byte pieces that begin a UTF-8 character not yet complete. */
static uint32_t incomplete_tail(const struct tokenizer *tok, const uint32_t *ids, uint32_t n)
{
    for (uint32_t k = 1; k <= 4 && k <= n; k++) {
        int b = byte_piece(tok, ids[n - k]);
        if (b < 0) return 0;              /* a normal piece: complete text */
        if ((b & 0xC0) == 0x80) continue; /* continuation byte: look further back */
        uint32_t need = b >= 0xF0 && b <= 0xF7 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
        return k < need ? k : 0;
    }
    return 0;
}

enum stf_status dist_text_stream(struct dist_text *t, struct text_stream *ts, const uint32_t *ids,
                                 uint32_t n, bool final, const char **piece, size_t *len,
                                 struct stf_error *err)
{
    *piece = "";
    *len = 0;
    uint32_t upto = final ? n : n - incomplete_tail(t->tok, ids, n);
    const char *text;
    enum stf_status st = dist_text_decode(t, ids, upto, &text, err);
    if (st) return st;
    size_t total = strlen(text);
    if (total > ts->emitted) {
        *piece = text + ts->emitted;
        *len = total - ts->emitted;
        ts->emitted = total;
    }
    return STF_OK;
}

#else /* no tokenizer library in this build */

enum stf_status dist_text_open(const struct model *m, struct dist_text **out, struct stf_error *err)
{
    *out = NULL;
    return stf_fail(err, STF_ERR_UNSUPPORTED,
                    "%s: text prompts need the tokenizer, which this build lacks; use "
                    "--prompt-tokens / --prompts-tokens",
                    m->path);
}

void dist_text_close(struct dist_text *t)
{
    (void)t;
}

enum stf_status dist_text_encode(struct dist_text *t, const char *text, uint32_t bos,
                                 uint32_t vocab, uint32_t **ids, uint32_t *n, struct stf_error *err)
{
    (void)t, (void)text, (void)bos, (void)vocab, (void)ids, (void)n;
    return stf_fail(err, STF_ERR_UNSUPPORTED, "no tokenizer in this build");
}

enum stf_status dist_text_decode(struct dist_text *t, const uint32_t *ids, uint32_t n,
                                 const char **text, struct stf_error *err)
{
    (void)t, (void)ids, (void)n, (void)text;
    return stf_fail(err, STF_ERR_UNSUPPORTED, "no tokenizer in this build");
}

enum stf_status dist_text_stream(struct dist_text *t, struct text_stream *ts, const uint32_t *ids,
                                 uint32_t n, bool final, const char **piece, size_t *len,
                                 struct stf_error *err)
{
    (void)t, (void)ts, (void)ids, (void)n, (void) final, (void)piece, (void)len;
    return stf_fail(err, STF_ERR_UNSUPPORTED, "no tokenizer in this build");
}
#endif
