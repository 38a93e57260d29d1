/*
 * unigram: SentencePiece's unigram segmentation (unigram_model.cc, the "optimized"
 * encoder that 0.1.97 uses by default).
 *
 * Viterbi over byte positions of the normalised text: best[e] is the best-scoring
 * segmentation of s[0..e) that ends with a piece, as (score, start of that piece,
 * its id). From every character boundary b, in increasing order, the trie yields all
 * pieces s[b..e); each proposes best[b].score + score(piece) for best[e] and replaces
 * it only when strictly greater, so among equal scores the first proposal (smaller b,
 * then shorter piece) stays. Piece scores: the model's score; a USER_DEFINED piece
 * gets len_bytes * max_score - 0.1 so it always wins; UNUSED pieces are skipped. When
 * no piece covers exactly the character at b, an unknown piece of that one character
 * with score min_score - 10 is proposed. The arithmetic mirrors the reference
 * bit-for-bit: piece proposals are summed and compared in double and stored as
 * float; unknown proposals are float throughout.
 */
#include <float.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

/* best path ending at a byte position */
struct best_path_end {
    float score;
    int32_t starts_at; /* -1: nothing ends here yet */
    int32_t id;
};

#define UNIGRAM_UNK_PENALTY 10.0f

enum stf_status unigram_segment(struct tokenizer *tok, const uint8_t *s, size_t n,
                                struct stf_error *err)
{
    tok->segments.len = 0;
    if (n == 0) return STF_OK;

    tok->work.len = 0;
    if (tok_buf_reserve(&tok->work, (n + 1) * sizeof(struct best_path_end)) != 0)
        return stf_fail(err, STF_ERR_NOMEM, "unigram: out of memory for %zu bytes", n);
    struct best_path_end *best = (struct best_path_end *)(void *)tok->work.data;
    for (size_t i = 0; i <= n; ++i) {
        best[i].score = 0.0f;
        best[i].starts_at = -1;
        best[i].id = -1;
    }

    const struct piece_trie *trie = &tok->normal_trie;
    const struct piece_trie_unit *units = trie->units;
    const uint8_t *type = tok->piece_type;
    const float *score = tok->piece_score;
    const float max_score = tok->max_score;
    const float unk_score = tok->min_score - UNIGRAM_UNK_PENALTY;
    const int32_t unk_id = tok->unk_id;

    size_t start = 0;
    while (start < n) {
        const float score_till_here = best[start].score;
        size_t mblen = utf8_char_len(s[start]);
        if (mblen > n - start) mblen = n - start;
        int has_single_node = 0;

        int32_t node = 0;
        for (size_t end = start; end < n;) {
            node = piece_trie_next(trie, node, s[end]);
            if (node < 0) break;
            ++end;
            const int32_t id = units[node].value;
            if (id < 0 || type[id] == SPM_PIECE_UNUSED) continue;
            const size_t length = end - start;
            const double piece_score = type[id] == SPM_PIECE_USER_DEFINED
                                           ? (double)((float)length * max_score) - 0.1
                                           : (double)score[id];
            const double candidate = piece_score + (double)score_till_here;
            struct best_path_end *target = &best[end];
            if (target->starts_at == -1 || candidate > (double)target->score) {
                target->score = (float)candidate;
                target->starts_at = (int32_t)start;
                target->id = id;
            }
            if (length == mblen) has_single_node = 1;
        }
        if (!has_single_node) {
            struct best_path_end *target = &best[start + mblen];
            const float candidate = unk_score + score_till_here;
            if (target->starts_at == -1 || candidate > target->score) {
                target->score = candidate;
                target->starts_at = (int32_t)start;
                target->id = unk_id;
            }
        }
        start += mblen;
    }

    /* backtrack from the end; count first so the segments come out in text order */
    size_t count = 0;
    for (size_t end = n; end > 0; end = (size_t)best[end].starts_at)
        ++count;
    if (tok_buf_reserve(&tok->segments, count * sizeof(struct tok_segment)) != 0)
        return stf_fail(err, STF_ERR_NOMEM, "unigram: out of memory for %zu pieces", count);
    struct tok_segment *seg = (struct tok_segment *)(void *)tok->segments.data;
    size_t k = count;
    for (size_t end = n; end > 0; end = (size_t)best[end].starts_at) {
        --k;
        seg[k].begin = (uint32_t)best[end].starts_at;
        seg[k].len = (uint32_t)(end - (size_t)best[end].starts_at);
        seg[k].id = best[end].id;
    }
    tok->segments.len = count * sizeof(struct tok_segment);
    return STF_OK;
}
