/*
 * libFuzzer target: the request bodies of `sparsetf-dist --serve` as a hostile client sends
 * them (-DSTF_FUZZ=ON, clang). libmicrohttpd parses the HTTP framing; what this program
 * parses is the body of POST /v1/completions and /v1/chat/completions (api.h). The first
 * byte picks the endpoint (bit 0), the limits (bits 1-2) and the prompt length the
 * tokenizer is said to give (bits 3-7); the rest is the body.
 *
 * A body is refused with an OpenAI-style error (400 naming the field, or 500 when memory
 * runs out) whose message and error bodies (JSON and SSE) can be written, or accepted as a
 * request that meets every limit the server and the engine rely on: one prompt, ids below
 * the vocabulary, text within max_prompt_bytes without NUL, max_tokens in 1..ctx, sampler
 * params that sampler_params_check accepts, top_k <= vocab, at most API_MAX_STOP stop
 * strings (+2 for chat) of 1..API_MAX_STOP_LEN bytes, include_usage only when streaming.
 * An accepted request is then fit to the prompt length and answered as the server would
 * (a whole body and a stream chunk carrying the prompt text as if generated, and the usage
 * chunk): every writer returns a NUL-terminated string of the length it reports, in valid
 * UTF-8 whatever bytes the text holds.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/sampler.h"
#include "server/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct api_limits limits[4] = {
    {.vocab = 8000, .ctx = 256, .max_prompt_bytes = 65536, .default_max_tokens = 64},
    {.vocab = 1, .ctx = 2, .max_prompt_bytes = 16, .default_max_tokens = 1},
    {.vocab = 64, .ctx = 16, .max_prompt_bytes = 40, .default_max_tokens = 100},
    {.vocab = 50000, .ctx = 4096, .max_prompt_bytes = 1024, .default_max_tokens = 4096},
};

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
    for (size_t i = 0; i < n;) {
        const unsigned c = s[i];
        const size_t k = c < 0x80             ? 0
                         : (c & 0xe0) == 0xc0 ? 1
                         : (c & 0xf0) == 0xe0 ? 2
                         : (c & 0xf8) == 0xf0 ? 3
                                              : 4;
        if (k == 4 || k >= n - i) return false; /* a bad lead byte, or cut short */
        uint32_t cp = k ? c & (0x3fu >> k) : c;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3fu);
        }
        if (cp < min_cp[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += k + 1;
    }
    return true;
}

/* A writer's result: not NULL (no allocation fails here), NUL-terminated at len, UTF-8. */
static void check_written(char *s, size_t len)
{
    if (!s || strlen(s) != len || !utf8_valid((const unsigned char *)s, len)) abort();
    free(s);
}

static void check_refusal(int status, const struct api_error *e)
{
    if ((status != 400 && status != 500) || e->http_status != status || !e->type || !e->message[0])
        abort();
    size_t len;
    check_written(api_write_error(e, false, &len), len);
    check_written(api_write_error(e, true, &len), len);
}

static void check_accepted(const struct api_request *r, const struct api_limits *lim)
{
    struct stf_error err;
    if (!r->prompt_text == !r->prompt_ids) abort(); /* exactly one prompt */
    if (r->kind == API_CHAT && !r->prompt_text) abort();
    if (r->prompt_ids) {
        if (r->n_prompt_ids == 0 || r->n_prompt_ids > lim->ctx) abort();
        for (uint32_t i = 0; i < r->n_prompt_ids; i++)
            if (r->prompt_ids[i] >= lim->vocab) abort();
    }
    if (r->prompt_text && strlen(r->prompt_text) > lim->max_prompt_bytes) abort();
    if (r->max_tokens_given && (r->max_tokens < 1 || r->max_tokens > lim->ctx)) abort();
    if (sampler_params_check(&r->sampling, &err) != STF_OK || r->sampling.top_k > lim->vocab)
        abort();
    if (r->n_stop > API_MAX_STOP + (r->kind == API_CHAT ? 2u : 0u)) abort();
    for (uint32_t i = 0; i < r->n_stop; i++)
        if (!r->stop[i] || !r->stop[i][0] || strlen(r->stop[i]) > API_MAX_STOP_LEN) abort();
    if (r->include_usage && !r->stream) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const enum api_kind kind = data[0] & 1 ? API_CHAT : API_COMPLETION;
    struct api_limits lim = limits[(data[0] >> 1) & 3];
    lim.defaults = (struct sampler_params){.temperature = 0.8f,
                                           .top_k = 40 < lim.vocab ? 40 : lim.vocab,
                                           .top_p = 0.95f,
                                           .seed = 42,
                                           .repeat_penalty = 1.0f,
                                           .repeat_last_n = 64};
    const uint32_t n_prompt = (uint32_t)(data[0] >> 3) * lim.ctx / 24; /* 0 .. past ctx */
    struct api_request r;
    struct api_error e;
    memset(&e, 0, sizeof e);
    int st = api_request_parse(kind, (const char *)data + 1, size - 1, &lim, &r, &e);
    if (st) {
        check_refusal(st, &e);
        api_request_free(&r);
        return 0;
    }
    check_accepted(&r, &lim);
    const uint32_t n = r.prompt_ids ? r.n_prompt_ids : (n_prompt ? n_prompt : 1);
    memset(&e, 0, sizeof e);
    st = api_request_fit(&r, n, &lim, &e);
    if (st) {
        if (st != 400) abort();
        check_refusal(st, &e);
    } else if (r.max_tokens < 1 || (uint64_t)n + r.max_tokens > lim.ctx) {
        abort();
    } else {
        /* answered with the prompt's bytes as the text (any bytes, sanitised to UTF-8) */
        const char *text = r.prompt_text ? r.prompt_text : "";
        const size_t text_len = strlen(text);
        const struct api_answer a = {
            .kind = kind, .id = "cmpl-fuzz", .created = 1700000000, .model = "m.stf"};
        const struct api_usage u = {.prompt_tokens = n, .completion_tokens = r.max_tokens};
        size_t len;
        check_written(api_write_answer(&a, text, text_len, API_FINISH_STOP, &u,
                                       r.return_token_ids ? r.prompt_ids : NULL,
                                       r.prompt_ids ? r.n_prompt_ids : 0, &len),
                      len);
        check_written(api_write_chunk(&a, text, text_len, r.prompt_ids, r.n_prompt_ids, true,
                                      r.stream ? "length" : NULL, &len),
                      len);
        if (r.include_usage) check_written(api_write_usage_chunk(&a, &u, &len), len);
    }
    api_request_free(&r);
    return 0;
}
