/*
 * api: the OpenAI-style request and response bodies of the HTTP server, as plain structs —
 * parsing and checking `POST /v1/completions` and `POST /v1/chat/completions` bodies, and
 * writing completion bodies, server-sent-event chunks, `/v1/models` and error objects.
 * Pure functions (no sockets, no engine, no threads), so every rule here is unit-tested.
 *
 * Only this module and the rest of src/server include the JSON library (jansson); callers
 * see plain structs and malloc'd strings. docs/server.md lists the fields and their rules.
 *
 * The chat template (these are base models, trained on plain text): every message becomes
 * "<Role>: <content>\n" with Role one of System, User, Assistant, then "Assistant:" is
 * appended and generation continues from there; "\nUser:" and " User:" are always stop
 * strings so the model does not write the user's next turn (tokenizers that normalise
 * newlines to spaces, like the bundled model's, decode "\n" as " ").
 */
#ifndef STF_SERVER_API_H
#define STF_SERVER_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/sampler.h"

#define API_MAX_STOP     4   /* stop strings per request (as OpenAI) */
#define API_MAX_STOP_LEN 256 /* bytes per stop string */
#define API_CHAT_STOP    "\nUser:"
#define API_CHAT_STOP2   " User:"
#define API_MAX_MESSAGES 256
#define API_MAX_DEPTH    32 /* nesting of arrays/objects in a body */

enum api_kind { API_COMPLETION, API_CHAT };

/* What a request may ask, fixed when the server starts. */
struct api_limits {
    uint32_t vocab;              /* token ids must be < vocab */
    uint32_t ctx;                /* positions per session: prompt + max_tokens <= ctx */
    uint32_t max_prompt_bytes;   /* text prompt (or rendered chat) bytes */
    uint32_t default_max_tokens; /* when the request gives none (capped by the context) */
    struct sampler_params defaults;
};

/* A checked generation request. */
struct api_request {
    enum api_kind kind;
    char *prompt_text;    /* malloc'd UTF-8 (chat: the rendered template); NULL if ids given */
    uint32_t *prompt_ids; /* malloc'd; NULL when the prompt is text */
    uint32_t n_prompt_ids;
    uint32_t max_tokens;
    bool max_tokens_given; /* false: default_max_tokens, cut to what the context leaves */
    struct sampler_params sampling;
    char *stop[API_MAX_STOP + 2]; /* malloc'd; chat adds API_CHAT_STOP and API_CHAT_STOP2 */
    uint32_t n_stop;
    bool stream;
    bool include_usage;    /* stream_options.include_usage: a last chunk with usage */
    bool return_token_ids; /* extension: "token_ids" of the generated tokens in the answer */
};

/* An OpenAI-style error: {"error": {"message", "type", "param", "code"}}. */
struct api_error {
    int http_status;
    const char *type; /* "invalid_request_error", "authentication_error", ... */
    char param[64];   /* the offending field ("" = null) */
    const char *code; /* NULL = null */
    char message[512];
};

/* Fills e and returns its http_status. */
int api_error_set(struct api_error *e, int http_status, const char *type, const char *param,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Parses and checks a request body; 0 on success, else the HTTP status with *e filled
 * (400 naming the field). *r is freed by api_request_free (also after a failure). */
int api_request_parse(enum api_kind kind, const char *body, size_t len,
                      const struct api_limits *lim, struct api_request *r, struct api_error *e);
void api_request_free(struct api_request *r);

/* Checks a prompt of n tokens against the context and settles r->max_tokens; 0 or 400. */
int api_request_fit(struct api_request *r, uint32_t n_prompt, const struct api_limits *lim,
                    struct api_error *e);

/* Why a generation ended, as OpenAI names it. */
enum api_finish { API_FINISH_LENGTH, API_FINISH_STOP };
const char *api_finish_name(enum api_finish f);

struct api_usage {
    uint32_t prompt_tokens, completion_tokens;
};

/* What every body and chunk of one answer shares. */
struct api_answer {
    enum api_kind kind;
    const char *id; /* "cmpl-…" / "chatcmpl-…" */
    long long created;
    const char *model;
};

/* Every writer returns a malloc'd NUL-terminated string (NULL when out of memory) and, via
 * len when not NULL, its length. Texts are UTF-8; invalid bytes are replaced by U+FFFD. */

/* The whole non-streaming body. ids may be NULL (not returned). */
char *api_write_answer(const struct api_answer *a, const char *text, size_t text_len,
                       enum api_finish finish, const struct api_usage *u, const uint32_t *ids,
                       uint32_t n_ids, size_t *len);
/* One SSE event "data: {...}\n\n" carrying text (and ids when not NULL). first: the chat
 * stream's first chunk also carries the role; finish: NULL while running. */
char *api_write_chunk(const struct api_answer *a, const char *text, size_t text_len,
                      const uint32_t *ids, uint32_t n_ids, bool first, const char *finish,
                      size_t *len);
/* The usage chunk (stream_options.include_usage) "data: {... "choices": [], usage}\n\n". */
char *api_write_usage_chunk(const struct api_answer *a, const struct api_usage *u, size_t *len);
/* An error object as a body, or as an SSE event when sse. */
char *api_write_error(const struct api_error *e, bool sse, size_t *len);
/* GET /v1/models. */
char *api_write_models(const char *model, long long created, size_t *len);

#define API_SSE_DONE "data: [DONE]\n\n"

/* Replaces invalid UTF-8 in s[0..len) by U+FFFD; the result is malloc'd (NULL: no memory). */
char *api_utf8_sanitize(const char *s, size_t len, size_t *out_len);

#endif
