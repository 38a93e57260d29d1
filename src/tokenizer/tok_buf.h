/*
 * tok_buf: a growable byte buffer used as reusable scratch space by the tokenizer.
 *
 * It grows geometrically and never shrinks, so once a tokenizer has seen its longest
 * input the encode path stops allocating. The buffer owns data; free with
 * tok_buf_free. Internal to the tokenizer module.
 */
#ifndef STF_TOKENIZER_TOK_BUF_H
#define STF_TOKENIZER_TOK_BUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct tok_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Makes room for `more` bytes past len; returns 0, or -1 when out of memory. */
static inline int tok_buf_reserve(struct tok_buf *b, size_t more)
{
    if (b->cap - b->len >= more) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    uint8_t *data = realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

/* Appends without checking; the caller reserved the room. */
static inline void tok_buf_put(struct tok_buf *b, const void *bytes, size_t n)
{
    if (!n) return; /* an empty buffer has no data pointer yet, and memcpy(NULL, .., 0) is UB */
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

static inline int tok_buf_append(struct tok_buf *b, const void *bytes, size_t n)
{
    if (tok_buf_reserve(b, n) != 0) return -1;
    tok_buf_put(b, bytes, n);
    return 0;
}

static inline void tok_buf_free(struct tok_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#endif
