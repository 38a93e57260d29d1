/*
 * piece_trie: a byte-wise double-array trie from piece strings to vocabulary ids.
 *
 * The tokenizer builds one at load time for each set of pieces it must find inside
 * text (normal pieces, user-defined symbols, reserved pieces) and then walks it one
 * byte at a time on the encode path: a step is one array read and one compare, and
 * nothing is allocated. Layout: node s has a child labelled c at t = base[s] + c iff
 * check[t] == s; value[t] >= 0 when the path to t spells a whole key. The root is
 * node 0. The trie owns its unit array; free it with piece_trie_free.
 */
#ifndef STF_TOKENIZER_PIECE_TRIE_H
#define STF_TOKENIZER_PIECE_TRIE_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

struct piece_trie_unit {
    int32_t base;  /* children of this node live at base + byte */
    int32_t check; /* index of the parent node; -1 for a free slot */
    int32_t value; /* id of the key ending here, or -1 */
};

struct piece_trie {
    struct piece_trie_unit *units; /* (size): owned */
    uint32_t size;
    int n_keys;
};

/* One key to insert: len bytes at bytes, mapped to value (>= 0). */
struct piece_trie_key {
    const uint8_t *bytes;
    uint32_t len;
    int32_t value;
};

/* Builds the trie from n keys (sorted in place; order does not matter to the caller).
 * Empty keys are ignored. Two equal keys are a format error naming both values; what
 * names the model and the piece set in messages. */
enum stf_status piece_trie_build(struct piece_trie *trie, struct piece_trie_key *keys, int n,
                                 const char *what, struct stf_error *err);
void piece_trie_free(struct piece_trie *trie);

/* The child of node labelled c, or -1. */
static inline int32_t piece_trie_next(const struct piece_trie *trie, int32_t node, uint8_t c)
{
    const uint32_t t = (uint32_t)trie->units[node].base + c;
    if (t >= trie->size || trie->units[t].check != node) return -1;
    return (int32_t)t;
}

/* The value stored for exactly the len bytes at s, or -1. */
int32_t piece_trie_find(const struct piece_trie *trie, const uint8_t *s, size_t len);

/* Length of the longest key that is a prefix of s[0..len), 0 if none; *value gets its
 * value. */
size_t piece_trie_longest_prefix(const struct piece_trie *trie, const uint8_t *s, size_t len,
                                 int32_t *value);

#endif
