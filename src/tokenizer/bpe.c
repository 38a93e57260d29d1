/*
 * bpe: SentencePiece's BPE segmentation (bpe_model.cc, no dropout).
 *
 * The normalised text starts as one symbol per UTF-8 character, except that a
 * user-defined symbol is one frozen symbol that never merges. Every adjacent pair
 * whose concatenation is a normal piece goes on an agenda ordered by that piece's
 * score, highest first, ties to the leftmost pair. Popping a pair that is still
 * current merges it and offers the two new neighbouring pairs. Afterwards each
 * symbol gets its id by PieceToId; a symbol that is an UNUSED piece is split back
 * into the two symbols it was merged from, recursively.
 */
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

struct bpe_symbol {
    int32_t prev; /* index of the previous live symbol, -1 at the start */
    int32_t next; /* index of the next live symbol, -1 at the end */
    uint32_t begin;
    uint32_t len; /* 0 once merged into its left neighbour */
    int32_t frozen;
    int32_t node; /* trie node spelling this symbol, -1 if no piece starts with it */
};

struct bpe_pair {
    float score;
    int32_t left;
    int32_t right;
    uint32_t len; /* bytes of the merged piece when the pair was offered */
    int32_t node; /* trie node of the merged piece */
};

/* How a merged UNUSED piece splits back: the last merge that produced it. */
struct bpe_unmerge {
    int32_t id;
    uint32_t begin;
    uint32_t left_len;
    uint32_t right_len;
};

struct bpe_state {
    struct tokenizer *tok;
    const uint8_t *s;
    struct bpe_symbol *sym;
    struct tok_buf *heap;   /* struct bpe_pair, a binary max-heap */
    struct tok_buf unmerge; /* struct bpe_unmerge, usually empty */
};

/* a before b on the agenda: higher score, then smaller left */
static inline int pair_before(const struct bpe_pair *a, const struct bpe_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(struct tok_buf *heap, struct bpe_pair p)
{
    if (tok_buf_reserve(heap, sizeof p) != 0) return -1;
    struct bpe_pair *h = (struct bpe_pair *)(void *)heap->data;
    size_t i = heap->len / sizeof p;
    heap->len += sizeof p;
    while (i > 0) {
        const size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = p;
    return 0;
}

static struct bpe_pair heap_pop(struct tok_buf *heap)
{
    struct bpe_pair *h = (struct bpe_pair *)(void *)heap->data;
    const size_t n = heap->len / sizeof *h - 1;
    const struct bpe_pair top = h[0];
    const struct bpe_pair last = h[n];
    heap->len -= sizeof *h;
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && pair_before(&h[child + 1], &h[child])) ++child;
        if (!pair_before(&h[child], &last)) break;
        h[i] = h[child];
        i = child;
    }
    if (n > 0) h[i] = last;
    return top;
}

/* Offers the pair (left, right) if both exist, neither is frozen and their
 * concatenation is a normal piece. */
static int offer_pair(struct bpe_state *st, int32_t left, int32_t right)
{
    if (left < 0 || right < 0 || st->sym[left].frozen || st->sym[right].frozen) return 0;
    const struct bpe_symbol *l = &st->sym[left];
    const struct bpe_symbol *r = &st->sym[right];
    /* continue the trie walk of the left symbol over the right one's bytes */
    const struct piece_trie *trie = &st->tok->normal_trie;
    int32_t node = l->node;
    for (uint32_t k = 0; node >= 0 && k < r->len; ++k)
        node = piece_trie_next(trie, node, st->s[r->begin + k]);
    if (node < 0) return 0;
    const int32_t id = trie->units[node].value;
    if (id < 0) return 0;
    const uint32_t len = l->len + r->len;
    const struct bpe_pair p = {st->tok->piece_score[id], left, right, len, node};
    if (heap_push(st->heap, p) != 0) return -1;
    if (st->tok->piece_type[id] == SPM_PIECE_UNUSED) {
        const struct bpe_unmerge u = {id, l->begin, l->len, st->sym[right].len};
        if (tok_buf_append(&st->unmerge, &u, sizeof u) != 0) return -1;
    }
    return 0;
}

static int emit_segment(struct tokenizer *tok, uint32_t begin, uint32_t len, int32_t id)
{
    const struct tok_segment seg = {begin, len, id};
    return tok_buf_append(&tok->segments, &seg, sizeof seg);
}

/* The latest recorded split of an UNUSED piece, or NULL. */
static const struct bpe_unmerge *find_unmerge(const struct bpe_state *st, int32_t id)
{
    const struct bpe_unmerge *u = (const struct bpe_unmerge *)(const void *)st->unmerge.data;
    for (size_t i = st->unmerge.len / sizeof *u; i > 0; --i)
        if (u[i - 1].id == id) return &u[i - 1];
    return NULL;
}

/* Emits s[begin..begin+len) as its id, splitting UNUSED pieces back into their parts
 * (left part first). An explicit stack keeps a hostile model from deep recursion. */
static int resegment(struct bpe_state *st, uint32_t begin, uint32_t len, struct tok_buf *stack)
{
    struct tok_segment top = {begin, len, 0};
    stack->len = 0;
    if (tok_buf_append(stack, &top, sizeof top) != 0) return -1;
    while (stack->len > 0) {
        stack->len -= sizeof top;
        memcpy(&top, stack->data + stack->len, sizeof top);
        const int32_t id = tok_lookup_id(st->tok, st->s + top.begin, top.len);
        const struct bpe_unmerge *u =
            st->tok->piece_type[id] == SPM_PIECE_UNUSED ? find_unmerge(st, id) : NULL;
        if (!u) {
            if (emit_segment(st->tok, top.begin, top.len, id) != 0) return -1;
            continue;
        }
        /* the recorded split has the same bytes as this piece: reuse its lengths here */
        const struct tok_segment right = {top.begin + u->left_len, u->right_len, 0};
        const struct tok_segment left = {top.begin, u->left_len, 0};
        if (tok_buf_append(stack, &right, sizeof right) != 0 ||
            tok_buf_append(stack, &left, sizeof left) != 0)
            return -1;
    }
    return 0;
}

enum stf_status bpe_segment(struct tokenizer *tok, const uint8_t *s, size_t n,
                            struct stf_error *err)
{
    tok->segments.len = 0;
    if (n == 0) return STF_OK;

    tok->work.len = 0;
    tok->work2.len = 0;
    struct bpe_state st = {tok, s, NULL, &tok->work2, {0}};
    if (tok_buf_reserve(&tok->work, n * sizeof(struct bpe_symbol)) != 0) goto nomem;
    st.sym = (struct bpe_symbol *)(void *)tok->work.data;

    /* one symbol per character, or per user-defined symbol (frozen) */
    int32_t n_sym = 0;
    const int has_user = tok->user_trie.n_keys > 0;
    for (size_t pos = 0; pos < n;) {
        size_t len = 0;
        int32_t user_id;
        if (has_user) len = piece_trie_longest_prefix(&tok->user_trie, s + pos, n - pos, &user_id);
        struct bpe_symbol *sym = &st.sym[n_sym];
        sym->frozen = len > 0;
        if (len == 0) {
            len = utf8_char_len(s[pos]);
            if (len > n - pos) len = n - pos;
        }
        sym->begin = (uint32_t)pos;
        sym->len = (uint32_t)len;
        sym->node = 0;
        for (size_t k = 0; sym->node >= 0 && k < len; ++k)
            sym->node = piece_trie_next(&tok->normal_trie, sym->node, s[pos + k]);
        sym->prev = n_sym - 1;
        pos += len;
        sym->next = pos < n ? n_sym + 1 : -1;
        ++n_sym;
    }

    for (int32_t i = 1; i < n_sym; ++i)
        if (offer_pair(&st, i - 1, i) != 0) goto nomem;

    while (st.heap->len > 0) {
        const struct bpe_pair top = heap_pop(st.heap);
        struct bpe_symbol *l = &st.sym[top.left];
        struct bpe_symbol *r = &st.sym[top.right];
        /* stale: one side was merged away or grew since the pair was offered */
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.len) continue;
        l->len += r->len;
        l->node = top.node;
        l->next = r->next;
        if (r->next >= 0) st.sym[r->next].prev = top.left;
        r->len = 0;
        if (offer_pair(&st, l->prev, top.left) != 0 || offer_pair(&st, top.left, l->next) != 0)
            goto nomem;
    }

    /* the heap is empty now: reuse its buffer as the resegmentation stack */
    for (int32_t i = 0; i != -1; i = st.sym[i].next)
        if (resegment(&st, st.sym[i].begin, st.sym[i].len, st.heap) != 0) goto nomem;
    tok_buf_free(&st.unmerge);
    return STF_OK;

nomem:
    tok_buf_free(&st.unmerge);
    return stf_fail(err, STF_ERR_NOMEM, "bpe: out of memory segmenting %zu bytes", n);
}
