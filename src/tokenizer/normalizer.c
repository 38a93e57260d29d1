#include "tokenizer/normalizer.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/utf8.h"

static const uint8_t space_symbol[3] = {0xE2, 0x96, 0x81};     /* U+2581 "▁" */
static const uint8_t replacement_char[3] = {0xEF, 0xBF, 0xBD}; /* U+FFFD */

/* SentencePiece's NormalizePrefix stores at most this many trie matches per position
 * (its builder guarantees no more exist); we look no further either. */
#define CHARSMAP_MAX_MATCHES 32

enum stf_status normalizer_init(struct normalizer *nz, const uint8_t *charsmap, size_t charsmap_len,
                                const char *what, struct stf_error *err)
{
    nz->charsmap_units = NULL;
    nz->n_units = 0;
    nz->charsmap_outputs = NULL;
    nz->outputs_len = 0;
    if (charsmap_len == 0) return STF_OK;

    /* <uint32 LE trie size in bytes><trie units><replacement strings> */
    if (charsmap_len <= 4)
        return stf_fail(err, STF_ERR_FORMAT,
                        "%s: precompiled_charsmap is %zu bytes, expected a 4-byte trie size "
                        "followed by a trie and its strings",
                        what, charsmap_len);
    const uint32_t trie_bytes = (uint32_t)charsmap[0] | (uint32_t)charsmap[1] << 8 |
                                (uint32_t)charsmap[2] << 16 | (uint32_t)charsmap[3] << 24;
    if ((uint64_t)trie_bytes + 4 > charsmap_len)
        return stf_fail(err, STF_ERR_FORMAT,
                        "%s: precompiled_charsmap says its trie has %u bytes but only %zu follow",
                        what, trie_bytes, charsmap_len - 4);
    nz->n_units = trie_bytes / 4;
    nz->outputs_len = charsmap_len - 4 - trie_bytes;
    nz->charsmap_units = malloc((size_t)nz->n_units * 4 + 4);
    nz->charsmap_outputs = malloc(nz->outputs_len + 1);
    if (!nz->charsmap_units || !nz->charsmap_outputs) {
        normalizer_free(nz);
        return stf_fail(err, STF_ERR_NOMEM, "%s: out of memory for the charsmap", what);
    }
    const uint8_t *p = charsmap + 4;
    for (uint32_t i = 0; i < nz->n_units; ++i, p += 4)
        nz->charsmap_units[i] =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    memcpy(nz->charsmap_outputs, charsmap + 4 + trie_bytes, nz->outputs_len);
    nz->charsmap_outputs[nz->outputs_len] = '\0'; /* a last string without NUL ends here */
    return STF_OK;
}

void normalizer_free(struct normalizer *nz)
{
    free(nz->charsmap_units);
    free(nz->charsmap_outputs);
    nz->charsmap_units = NULL;
    nz->charsmap_outputs = NULL;
    nz->n_units = 0;
    nz->outputs_len = 0;
}

/* darts-clone unit fields */
static inline uint32_t unit_offset(uint32_t u)
{
    return (u >> 10) << ((u & (1u << 9)) >> 6);
}
static inline uint32_t unit_label(uint32_t u)
{
    return u & ((1u << 31) | 0xFF);
}
static inline int unit_has_leaf(uint32_t u)
{
    return (u >> 8) & 1;
}
static inline uint32_t unit_value(uint32_t u)
{
    return u & ((1u << 31) - 1);
}

/* darts-clone commonPrefixSearch from the root, keeping the longest of the first
 * CHARSMAP_MAX_MATCHES matches. Every index is bounds-checked: a corrupt array ends
 * the search instead of reading outside it. */
static size_t charsmap_longest(const struct normalizer *nz, const uint8_t *s, size_t len,
                               uint32_t *value)
{
    const uint32_t *units = nz->charsmap_units;
    const uint32_t n = nz->n_units;
    size_t best = 0;
    int matches = 0;
    if (n == 0) return 0;
    uint32_t node = unit_offset(units[0]);
    for (size_t i = 0; i < len; ++i) {
        node ^= s[i];
        if (node >= n) break;
        const uint32_t u = units[node];
        if (unit_label(u) != s[i]) break;
        node ^= unit_offset(u);
        if (unit_has_leaf(u)) {
            if (node >= n) break;
            if (matches < CHARSMAP_MAX_MATCHES) {
                best = i + 1;
                *value = unit_value(units[node]);
            }
            ++matches;
        }
    }
    return best;
}

size_t normalizer_prefix(const struct normalizer *nz, const uint8_t *s, size_t len,
                         const uint8_t **rep, size_t *rep_len)
{
    /* user-defined symbols are never normalised */
    /* (the inline first step rejects most positions without a call) */
    if (nz->user_symbols && nz->user_symbols->n_keys > 0 &&
        piece_trie_next(nz->user_symbols, 0, s[0]) >= 0) {
        int32_t id;
        const size_t n = piece_trie_longest_prefix(nz->user_symbols, s, len, &id);
        if (n > 0) {
            *rep = s;
            *rep_len = n;
            return n;
        }
    }
    uint32_t value = 0;
    const size_t matched = charsmap_longest(nz, s, len, &value);
    if (matched > 0) {
        if (value >= nz->outputs_len) { /* corrupt: points outside the strings */
            *rep = (const uint8_t *)"";
            *rep_len = 0;
        } else {
            *rep = (const uint8_t *)nz->charsmap_outputs + value;
            *rep_len = strlen(nz->charsmap_outputs + value);
        }
        return matched;
    }
    size_t mblen;
    if (!utf8_valid_prefix(s, len, &mblen)) {
        *rep = replacement_char;
        *rep_len = sizeof replacement_char;
        return 1;
    }
    *rep = s;
    *rep_len = mblen;
    return mblen;
}

static void put_space(const struct normalizer *nz, struct tok_buf *out)
{
    if (nz->escape_whitespaces)
        tok_buf_put(out, space_symbol, sizeof space_symbol);
    else
        tok_buf_put(out, " ", 1);
}

enum stf_status normalizer_run(const struct normalizer *nz, const uint8_t *text, size_t len,
                               struct tok_buf *out, struct stf_error *err)
{
    const uint8_t *rep;
    size_t rep_len;
    size_t pos = 0;
    out->len = 0;
    if (len == 0) return STF_OK;

    /* leading spaces (anything that normalises to exactly " ") go */
    if (nz->remove_extra_whitespaces) {
        while (pos < len) {
            const size_t used = normalizer_prefix(nz, text + pos, len - pos, &rep, &rep_len);
            if (!(rep_len == 1 && rep[0] == ' ')) break;
            pos += used;
        }
    }
    if (pos == len) return STF_OK;

    /* each input byte becomes at most 3 output bytes unless a charsmap rule expands
     * further, which reserves more below */
    if (tok_buf_reserve(out, (len - pos) * 3 + 8) != 0) goto nomem;
    if (!nz->treat_whitespace_as_suffix && nz->add_dummy_prefix) put_space(nz, out);

    bool prev_is_space = nz->remove_extra_whitespaces;
    while (pos < len) {
        const size_t used = normalizer_prefix(nz, text + pos, len - pos, &rep, &rep_len);
        /* a piece after a space loses its own leading spaces */
        while (prev_is_space && rep_len > 0 && rep[0] == ' ') {
            ++rep;
            --rep_len;
        }
        if (rep_len > 0) {
            if (tok_buf_reserve(out, rep_len * 3 + (len - pos) * 3 + 8) != 0) goto nomem;
            for (size_t k = 0; k < rep_len; ++k) {
                if (rep[k] == ' ' && nz->escape_whitespaces)
                    tok_buf_put(out, space_symbol, sizeof space_symbol);
                else
                    out->data[out->len++] = rep[k];
            }
            prev_is_space = rep[rep_len - 1] == ' ';
        }
        pos += used;
        if (!nz->remove_extra_whitespaces) prev_is_space = false;
    }

    if (nz->remove_extra_whitespaces) {
        const uint8_t *sp = nz->escape_whitespaces ? space_symbol : (const uint8_t *)" ";
        const size_t sp_len = nz->escape_whitespaces ? sizeof space_symbol : 1;
        while (out->len >= sp_len && memcmp(out->data + out->len - sp_len, sp, sp_len) == 0)
            out->len -= sp_len;
    }

    if (nz->treat_whitespace_as_suffix && nz->add_dummy_prefix) {
        if (tok_buf_reserve(out, 3) != 0) goto nomem;
        put_space(nz, out);
    }
    return STF_OK;

nomem:
    return stf_fail(err, STF_ERR_NOMEM, "normalizing %zu bytes: out of memory", len);
}
