#include "tokenizer/piece_trie.h"

#include <stdlib.h>
#include <string.h>

/*
 * Construction follows darts: sort the keys, then place the children of each node
 * (a contiguous range of sorted keys sharing a prefix of `depth` bytes) at a base
 * where every child slot is free. Candidate bases come from a linked list of free
 * slots (the first child's slot), and a free slot that has been rejected many times
 * is dropped from the list, which keeps construction near-linear even for vocabularies
 * of hundreds of thousands of pieces at the cost of a few unused slots.
 */

#define TRIE_MAX_REJECTS 8 /* a free slot is no longer offered after this many misses */

struct trie_builder {
    struct piece_trie_unit *units;
    uint8_t *used_base; /* (cap): 1 when some node already uses this base value */
    int32_t *next_free; /* (cap): free-slot list, -1 ends it */
    int32_t *prev_free;
    uint8_t *rejects; /* (cap): misses of this free slot; TRIE_MAX_REJECTS: off the list */
    uint32_t cap;
    uint32_t size; /* one past the highest slot in use */
    int32_t head;  /* first free slot on the list, or -1 */
    int32_t tail;
};

static int compare_keys(const void *pa, const void *pb)
{
    const struct piece_trie_key *a = pa, *b = pb;
    const uint32_t n = a->len < b->len ? a->len : b->len;
    const int c = memcmp(a->bytes, b->bytes, n);
    if (c) return c;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    /* equal keys: the smaller value (the earlier id) first */
    return (a->value > b->value) - (a->value < b->value);
}

static int grow(void **p, size_t n, size_t elem)
{
    void *q = realloc(*p, n * elem);
    if (!q) return -1;
    *p = q;
    return 0;
}

/* Makes slots [0, need) exist; new slots are free and appended to the free list. */
static int builder_reserve(struct trie_builder *b, uint32_t need)
{
    if (need <= b->cap) return 0;
    uint32_t cap = b->cap ? b->cap : 1024;
    while (cap < need) {
        if (cap > (UINT32_MAX >> 3)) return -1;
        cap *= 2;
    }
    if (grow((void **)&b->units, cap, sizeof *b->units) != 0 ||
        grow((void **)&b->used_base, cap, 1) != 0 ||
        grow((void **)&b->next_free, cap, sizeof *b->next_free) != 0 ||
        grow((void **)&b->prev_free, cap, sizeof *b->prev_free) != 0 ||
        grow((void **)&b->rejects, cap, 1) != 0)
        return -1;
    for (uint32_t i = b->cap; i < cap; ++i) {
        b->units[i].base = 0;
        b->units[i].check = -1;
        b->units[i].value = -1;
        b->used_base[i] = 0;
        b->rejects[i] = 0;
        b->prev_free[i] = b->tail;
        b->next_free[i] = -1;
        if (b->tail >= 0)
            b->next_free[b->tail] = (int32_t)i;
        else
            b->head = (int32_t)i;
        b->tail = (int32_t)i;
    }
    b->cap = cap;
    return 0;
}

static void free_list_remove(struct trie_builder *b, uint32_t slot)
{
    if (b->rejects[slot] >= TRIE_MAX_REJECTS) return; /* already off the list */
    const int32_t prev = b->prev_free[slot], next = b->next_free[slot];
    if (prev >= 0)
        b->next_free[prev] = next;
    else
        b->head = next;
    if (next >= 0)
        b->prev_free[next] = prev;
    else
        b->tail = prev;
    b->rejects[slot] = TRIE_MAX_REJECTS;
}

/* Marks slot as a child of parent. */
static void builder_take(struct trie_builder *b, uint32_t slot, int32_t parent)
{
    free_list_remove(b, slot);
    b->units[slot].check = parent;
    if (slot + 1 > b->size) b->size = slot + 1;
}

/* A base >= 1 at which every label's slot is free and that no other node uses. */
static int builder_find_base(struct trie_builder *b, const uint8_t *labels, int n_labels,
                             uint32_t *base_out)
{
    int32_t pos = b->head;
    for (;;) {
        if (pos < 0) { /* list exhausted: new slots join the list */
            const uint32_t old_cap = b->cap;
            if (builder_reserve(b, b->cap + 1) != 0) return -1;
            pos = (int32_t)old_cap;
            continue;
        }
        const uint32_t slot = (uint32_t)pos;
        if (slot > labels[0]) {
            const uint32_t base = slot - labels[0];
            if (builder_reserve(b, base + 256 + 1) != 0) return -1;
            int ok = !b->used_base[base];
            for (int k = 1; ok && k < n_labels; ++k)
                ok = b->units[base + labels[k]].check == -1;
            if (ok) {
                *base_out = base;
                return 0;
            }
        }
        const int32_t next = b->next_free[slot];
        if (++b->rejects[slot] >= TRIE_MAX_REJECTS) {
            b->rejects[slot] = TRIE_MAX_REJECTS - 1;
            free_list_remove(b, slot);
        }
        pos = next;
    }
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

    uint32_t base;
    if (builder_find_base(b, labels, n_labels, &base) != 0) return -1;
    b->used_base[base] = 1;
    b->units[node].base = (int32_t)base;
    for (int k = 0; k < n_labels; ++k)
        builder_take(b, base + labels[k], node);

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

static void builder_free_lists(struct trie_builder *b)
{
    free(b->used_base);
    free(b->next_free);
    free(b->prev_free);
    free(b->rejects);
}

enum stf_status piece_trie_build(struct piece_trie *trie, struct piece_trie_key *keys, int n,
                                 const char *what, struct stf_error *err)
{
    struct trie_builder b = {0};
    b.head = b.tail = -1;
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
    free_list_remove(&b, 0);
    b.units[0].check = -2; /* the root is never free and never a child */
    b.size = 1;
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
    builder_free_lists(&b);
    trie->n_keys = m;
    return STF_OK;

nomem:
    free(stack);
    free(b.units);
    builder_free_lists(&b);
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
