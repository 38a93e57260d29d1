#include "tokenizer/piece_trie.h"

#include <stdlib.h>
#include <string.h>

/*
 * Construction follows darts: sort the keys, then place the children of each node
 * (a contiguous range of sorted keys sharing a prefix of `depth` bytes) at the first
 * base where every child slot is free. A byte map of used slots and a moving
 * "first free slot" keep the search short.
 */

struct trie_builder {
    struct piece_trie_unit *units;
    uint8_t *used_base; /* (cap): 1 when some node already uses this base value */
    uint32_t cap;
    uint32_t size;       /* one past the highest slot in use */
    uint32_t first_free; /* every slot below this is taken */
};

static int compare_keys(const void *pa, const void *pb)
{
    const struct piece_trie_key *a = pa, *b = pb;
    const uint32_t n = a->len < b->len ? a->len : b->len;
    const int c = memcmp(a->bytes, b->bytes, n);
    if (c) return c;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    /* equal keys: the smaller value (the earlier id) first, so it wins */
    return (a->value > b->value) - (a->value < b->value);
}

static int builder_reserve(struct trie_builder *b, uint32_t need)
{
    if (need <= b->cap) return 0;
    uint32_t cap = b->cap ? b->cap : 1024;
    while (cap < need) {
        if (cap > (UINT32_MAX >> 2)) return -1;
        cap *= 2;
    }
    struct piece_trie_unit *units = realloc(b->units, (size_t)cap * sizeof *units);
    if (!units) return -1;
    b->units = units;
    uint8_t *used = realloc(b->used_base, cap);
    if (!used) return -1;
    b->used_base = used;
    for (uint32_t i = b->cap; i < cap; ++i) {
        units[i].base = 0;
        units[i].check = -1;
        units[i].value = -1;
        used[i] = 0;
    }
    b->cap = cap;
    return 0;
}

struct trie_task {
    int lo, hi; /* sorted keys [lo, hi) share their first depth bytes */
    uint32_t depth;
    int32_t node; /* the node those depth bytes lead to */
};

/* Places the children of one node and queues their subtrees on the task stack. */
static int builder_place(struct trie_builder *b, const struct piece_trie_key *keys,
                         struct trie_task task, struct trie_task *stack, int *n_stack)
{
    int lo = task.lo;
    const int hi = task.hi;
    const uint32_t depth = task.depth;
    const int32_t node = task.node;

    /* a key that ends at this node sorts first in its range */
    while (lo < hi && keys[lo].len == depth) {
        if (b->units[node].value < 0) b->units[node].value = keys[lo].value;
        ++lo;
    }
    if (lo >= hi) return 0;

    uint8_t labels[256];
    int n_labels = 0;
    for (int i = lo; i < hi; ++i) {
        const uint8_t c = keys[i].bytes[depth];
        if (n_labels == 0 || labels[n_labels - 1] != c) labels[n_labels++] = c;
    }

    /* first base >= 1 such that all base + label slots are free */
    uint32_t base = b->first_free > labels[0] ? b->first_free - labels[0] : 1;
    for (;; ++base) {
        if (builder_reserve(b, base + 256 + 1) != 0) return -1;
        if (b->used_base[base]) continue;
        int ok = 1;
        for (int k = 0; k < n_labels; ++k) {
            if (b->units[base + labels[k]].check != -1) {
                ok = 0;
                break;
            }
        }
        if (ok) break;
    }
    b->used_base[base] = 1;
    b->units[node].base = (int32_t)base;
    for (int k = 0; k < n_labels; ++k) {
        const uint32_t t = base + labels[k];
        b->units[t].check = node;
        if (t + 1 > b->size) b->size = t + 1;
    }
    while (b->first_free < b->cap && b->units[b->first_free].check != -1)
        ++b->first_free;

    int start = lo;
    for (int k = 0; k < n_labels; ++k) {
        int end = start;
        while (end < hi && keys[end].bytes[depth] == labels[k])
            ++end;
        stack[(*n_stack)++] =
            (struct trie_task){start, end, depth + 1, (int32_t)(base + labels[k])};
        start = end;
    }
    return 0;
}

enum stf_status piece_trie_build(struct piece_trie *trie, struct piece_trie_key *keys, int n,
                                 const char *what, struct stf_error *err)
{
    struct trie_builder b = {0};
    struct trie_task *stack = NULL;
    memset(trie, 0, sizeof *trie);

    /* drop empty keys, then sort */
    int m = 0;
    for (int i = 0; i < n; ++i)
        if (keys[i].len > 0) keys[m++] = keys[i];
    qsort(keys, (size_t)m, sizeof *keys, compare_keys);
    for (int i = 1; i < m; ++i) {
        if (keys[i].len == keys[i - 1].len &&
            memcmp(keys[i].bytes, keys[i - 1].bytes, keys[i].len) == 0) {
            const int shown = keys[i].len > 64 ? 64 : (int)keys[i].len;
            return stf_fail(err, STF_ERR_FORMAT,
                            "%s: piece \"%.*s\" is already defined (ids %d and %d)", what, shown,
                            (const char *)keys[i].bytes, keys[i - 1].value, keys[i].value);
        }
    }

    if (builder_reserve(&b, 512) != 0) goto nomem;
    b.units[0].check = -2; /* the root is never free and never a child */
    b.size = 1;
    b.first_free = 1;
    /* every task covers a distinct non-empty key range below a distinct node, and
     * the stack holds at most one task per key plus the root */
    stack = malloc(((size_t)m + 1) * sizeof *stack);
    if (!stack) goto nomem;
    int n_stack = 0;
    stack[n_stack++] = (struct trie_task){0, m, 0, 0};
    while (n_stack > 0) {
        const struct trie_task task = stack[--n_stack];
        if (builder_place(&b, keys, task, stack, &n_stack) != 0) goto nomem;
    }
    free(stack);

    /* keep 256 slots of slack so that base + c never needs a bounds check to be safe */
    trie->size = b.size;
    trie->units = realloc(b.units, (size_t)(b.size + 256) * sizeof *trie->units);
    if (!trie->units) {
        trie->units = b.units;
        b.units = NULL;
    }
    free(b.used_base);
    trie->n_keys = m;
    return STF_OK;

nomem:
    free(stack);
    free(b.units);
    free(b.used_base);
    return stf_fail(err, STF_ERR_NOMEM, "%s: out of memory building a trie of %d pieces", what, n);
}

void piece_trie_free(struct piece_trie *trie)
{
    free(trie->units);
    memset(trie, 0, sizeof *trie);
}

int32_t piece_trie_find(const struct piece_trie *trie, const uint8_t *s, size_t len)
{
    if (!trie->units || len == 0) return -1;
    int32_t node = 0;
    for (size_t i = 0; i < len; ++i) {
        node = piece_trie_next(trie, node, s[i]);
        if (node < 0) return -1;
    }
    return trie->units[node].value;
}

size_t piece_trie_longest_prefix(const struct piece_trie *trie, const uint8_t *s, size_t len,
                                 int32_t *value)
{
    size_t best = 0;
    *value = -1;
    if (!trie->units) return 0;
    int32_t node = 0;
    for (size_t i = 0; i < len; ++i) {
        node = piece_trie_next(trie, node, s[i]);
        if (node < 0) break;
        if (trie->units[node].value >= 0) {
            best = i + 1;
            *value = trie->units[node].value;
        }
    }
    return best;
}
