/*
 * libFuzzer target: arbitrary bytes as text for the committed test models. The first
 * byte picks the model; the rest is encoded, the ids decoded, and the text
 * normalised. Built only with -DSTF_FUZZ=ON and clang.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const model_names[] = {
    "unigram_nfkc",  "unigram_nfkc_bytes", "unigram_identity",     "unigram_identity_bytes",
    "bpe_nfkc",      "bpe_nfkc_bytes",     "bpe_identity",         "bpe_identity_bytes",
    "char_identity", "word_identity",      "unigram_custom_rules",
};
#define N_MODELS (sizeof model_names / sizeof model_names[0])

static struct tokenizer *models[N_MODELS];

static void load_models(void)
{
    for (size_t i = 0; i < N_MODELS; ++i) {
        char path[4096];
        struct stf_error err = {0};
        snprintf(path, sizeof path, "%s/%s.model", STF_TOKENIZER_TEST_MODELS, model_names[i]);
        if (tokenizer_open_file(path, &models[i], &err) != STF_OK) {
            fprintf(stderr, "fuzz_tok_encode: %s\n", err.msg);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!models[0]) load_models();
    if (size == 0) return 0;
    struct tokenizer *tok = models[data[0] % N_MODELS];
    const char *text = (const char *)data + 1;
    const size_t len = size - 1;
    static int32_t ids[1 << 16];
    struct stf_error err = {0};
    int n = 0;
    if (tokenizer_encode(tok, text, len, ids, 1 << 16, &n, &err) != STF_OK)
        __builtin_trap(); /* any text must encode (the buffer is large enough) */
    for (int i = 0; i < n; ++i)
        if (ids[i] < 0 || ids[i] >= tokenizer_piece_count(tok)) __builtin_trap();
    const char *out;
    size_t out_len;
    if (tokenizer_decode(tok, ids, n, &out, &out_len, &err) != STF_OK) __builtin_trap();
    if (tokenizer_normalize(tok, text, len, &out, &out_len, &err) != STF_OK) __builtin_trap();
    return 0;
}
