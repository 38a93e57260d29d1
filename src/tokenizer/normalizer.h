/*
 * normalizer: SentencePiece's text normalisation, the first step of encoding.
 *
 * It rewrites the input one prefix at a time. At each position the longest
 * user-defined symbol wins and is copied verbatim; otherwise the longest rule of the
 * model's precompiled charsmap (a darts-clone double-array trie over input bytes whose
 * values point into a blob of NUL-terminated replacement strings, which is how
 * `nmt_nfkc` and friends ship NFKC) replaces it; otherwise one UTF-8 character is
 * copied, a malformed byte becoming U+FFFD. Around that it applies the spec's flags:
 * drop leading, trailing and repeated spaces (remove_extra_whitespaces), add the dummy
 * prefix space (add_dummy_prefix; a suffix when treat_whitespace_as_suffix), and
 * write spaces as U+2581 "▁" (escape_whitespaces).
 *
 * The normalizer owns copies of the charsmap arrays; it borrows the user-symbol trie,
 * which must outlive it. Normalising allocates only when the output buffer grows.
 */
#ifndef STF_TOKENIZER_NORMALIZER_H
#define STF_TOKENIZER_NORMALIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/piece_trie.h"
#include "tokenizer/tok_buf.h"
#include "util/status.h"

struct normalizer {
    uint32_t *charsmap_units; /* (n_units): darts-clone double array, host order; owned */
    uint32_t n_units;
    char *charsmap_outputs; /* (outputs_len): NUL-terminated replacements; owned */
    size_t outputs_len;
    bool add_dummy_prefix;
    bool remove_extra_whitespaces;
    bool escape_whitespaces;
    bool treat_whitespace_as_suffix;
    const struct piece_trie *user_symbols; /* borrowed; NULL or empty: none */
};

/* Sets up a normalizer from a precompiled charsmap blob (empty: identity) and flags.
 * what names the model and field in error messages. */
enum stf_status normalizer_init(struct normalizer *nz, const uint8_t *charsmap, size_t charsmap_len,
                                const char *what, struct stf_error *err);
void normalizer_free(struct normalizer *nz);

/* Normalises text[0..len) into out (out->len is reset first). */
enum stf_status normalizer_run(const struct normalizer *nz, const uint8_t *text, size_t len,
                               struct tok_buf *out, struct stf_error *err);

/* The charsmap step alone, for tests: rewrites the prefix of s[0..len) (len >= 1).
 * Returns the number of input bytes consumed and points *rep at rep_len bytes. */
size_t normalizer_prefix(const struct normalizer *nz, const uint8_t *s, size_t len,
                         const uint8_t **rep, size_t *rep_len);

#endif
