/*
 * libFuzzer target: arbitrary bytes as a SentencePiece .model. Loading must either
 * succeed or fail with a message; a model that loads must encode and decode without
 * memory errors. Built only with -DSTF_FUZZ=ON and clang.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct stf_error err = {0};
    struct tokenizer *tok = NULL;
    if (tokenizer_open_bytes(data, size, "fuzz", &tok, &err) != STF_OK) {
        if (err.msg[0] == '\0') __builtin_trap(); /* every failure must explain itself */
        return 0;
    }
    static const char *const texts[] = {
        "Hello world", "  a  b  ",       "\xe2\x96\x81x", "ＡＢＣ ① ﬁ", "\xff\xc3(\x80",
        "<s><unk>",    "日本語テキスト", "e\xcc\x81",     "",
    };
    int32_t ids[4096];
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; ++t) {
        int n = 0;
        if (tokenizer_encode(tok, texts[t], strlen(texts[t]), ids, 4096, &n, &err) == STF_OK) {
            const char *out;
            size_t len;
            tokenizer_decode(tok, ids, n, &out, &len, &err);
        }
    }
    const int n_pieces = tokenizer_piece_count(tok);
    for (int i = 0; i < 64; ++i)
        ids[i] = n_pieces > 0 ? (int32_t)((i * 7919) % n_pieces) : 0;
    const char *out;
    size_t len;
    tokenizer_decode(tok, ids, 64, &out, &len, &err);
    tokenizer_bos_id(tok);
    tokenizer_eos_id(tok);
    tokenizer_pad_id(tok);
    tokenizer_unk_id(tok);
    tokenizer_close(tok);
    return 0;
}
