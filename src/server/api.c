/* api: see api.h. jansson is used because it parses strictly (RFC 8259, duplicate keys
 * rejected on request, line/column in every error), keeps integers apart from reals and
 * writes compact UTF-8-checked output; it is packaged by Debian (libjansson-dev). */
#include "server/api.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int api_error_set(struct api_error *e, int http_status, const char *type, const char *param,
                  const char *fmt, ...)
{
    e->http_status = http_status;
    e->type = type;
    e->code = NULL;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return http_status;
}

static int bad(struct api_error *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(struct api_error *e, const char *param, const char *fmt, ...)
{
    char msg[sizeof e->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return api_error_set(e, 400, "invalid_request_error", param, "%s", msg);
}

void api_request_free(struct api_request *r)
{
    free(r->prompt_text);
    free(r->prompt_ids);
    for (uint32_t i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

const char *api_finish_name(enum api_finish f)
{
    return f == API_FINISH_LENGTH ? "length" : "stop";
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when invalid. */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (len > n) return 0;
    unsigned cp = c & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

char *api_utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
    char *out = malloc(3 * len + 1); /* each bad byte becomes 3 bytes */
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_valid_len((const unsigned char *)s + i, len - i);
        if (k && !(k == 1 && s[i] == 0)) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    return out;
}

/* ---- parsing ---- */

static bool is_int(const json_t *v)
{
    /* 3.0 is accepted as an integer, as JSON does not tell them apart */
    if (json_is_integer(v)) return true;
    if (!json_is_real(v)) return false;
    double d = json_real_value(v);
    return d == floor(d) && fabs(d) < 9.0e15;
}

static long long int_value(const json_t *v)
{
    return json_is_integer(v) ? (long long)json_integer_value(v) : (long long)json_real_value(v);
}

static bool get_int(const json_t *root, const char *key, long long lo, long long hi, long long *out,
                    bool *given, struct api_error *e, int *status)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return true;
    if (!is_int(v)) {
        *status = bad(e, key, "`%s` must be an integer", key);
        return false;
    }
    long long x = int_value(v);
    if (x < lo || x > hi) {
        *status = bad(e, key, "`%s` must be in %lld..%lld, got %lld", key, lo, hi, x);
        return false;
    }
    *out = x;
    if (given) *given = true;
    return true;
}

/* lo_open: the lower bound is excluded. */
static bool get_num(const json_t *root, const char *key, double lo, bool lo_open, double hi,
                    float *out, struct api_error *e, int *status)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_number(v)) {
        *status = bad(e, key, "`%s` must be a number", key);
        return false;
    }
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || (lo_open && x == lo) || x > hi) {
        *status =
            bad(e, key, "`%s` must be in %s%g, %g], got %g", key, lo_open ? "(" : "[", lo, hi, x);
        return false;
    }
    *out = (float)x;
    return true;
}

static bool get_bool(const json_t *root, const char *key, bool *out, struct api_error *e,
                     int *status)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) {
        *status = bad(e, key, "`%s` must be true or false", key);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

/* Fields OpenAI defines that this server does not implement: accepted only at their
 * default (absent, null, or the value below), otherwise a 400 naming them. */
enum unsupported_default { DEFAULT_FALSE, DEFAULT_ZERO, DEFAULT_ONE, DEFAULT_EMPTY };
static const struct {
    const char *key;
    enum unsupported_default def;
} unsupported[] = {
    {"echo", DEFAULT_FALSE},
    {"logprobs", DEFAULT_FALSE},
    {"top_logprobs", DEFAULT_ZERO},
    {"best_of", DEFAULT_ONE},
    {"suffix", DEFAULT_EMPTY},
    {"presence_penalty", DEFAULT_ZERO},
    {"frequency_penalty", DEFAULT_ZERO},
    {"logit_bias", DEFAULT_EMPTY},
    {"tools", DEFAULT_EMPTY},
    {"functions", DEFAULT_EMPTY},
    {"n", DEFAULT_ONE},
};

static bool at_default(const json_t *v, enum unsupported_default def)
{
    if (json_is_null(v)) return true;
    switch (def) {
    case DEFAULT_FALSE:
        return json_is_false(v) || (is_int(v) && int_value(v) == 0);
    case DEFAULT_ZERO:
        return json_is_number(v) && json_number_value(v) == 0;
    case DEFAULT_ONE:
        return json_is_number(v) && json_number_value(v) == 1;
    case DEFAULT_EMPTY:
        return (json_is_string(v) && !json_string_length(v)) ||
               (json_is_object(v) && !json_object_size(v)) ||
               (json_is_array(v) && !json_array_size(v));
    }
    return false;
}

static int check_unsupported(const json_t *root, struct api_error *e)
{
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        json_t *v = json_object_get(root, unsupported[i].key);
        if (v && !at_default(v, unsupported[i].def)) {
            if (strcmp(unsupported[i].key, "n") == 0)
                return bad(e, "n", "`n` must be 1: one completion per request");
            return bad(e, unsupported[i].key,
                       "`%s` is not supported by this server (leave it out or at its default)",
                       unsupported[i].key);
        }
    }
    json_t *rf = json_object_get(root, "response_format");
    if (rf && !json_is_null(rf)) {
        json_t *t = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
        if (!json_is_string(t) || strcmp(json_string_value(t), "text") != 0)
            return bad(e, "response_format", "only `{\"type\": \"text\"}` is supported");
    }
    return 0;
}

static int copy_text(const json_t *s, const char *param, const struct api_limits *lim, char **out,
                     struct api_error *e)
{
    size_t n = json_string_length(s);
    if (n > lim->max_prompt_bytes)
        return bad(e, param, "`%s` is %zu bytes; the limit is %u", param, n, lim->max_prompt_bytes);
    if (memchr(json_string_value(s), 0, n))
        return bad(e, param, "`%s` contains a NUL character", param);
    if (!(*out = strndup(json_string_value(s), n)))
        return api_error_set(e, 500, "server_error", "", "out of memory");
    return 0;
}

static int parse_ids(const json_t *arr, const struct api_limits *lim, struct api_request *r,
                     struct api_error *e)
{
    size_t n = json_array_size(arr);
    if (n == 0) return bad(e, "prompt", "`prompt` is an empty list of token ids");
    if (n > lim->ctx)
        return bad(e, "prompt", "`prompt` has %zu token ids; the context holds %u positions", n,
                   lim->ctx);
    if (!(r->prompt_ids = malloc(n * sizeof *r->prompt_ids)))
        return api_error_set(e, 500, "server_error", "", "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!is_int(v) || int_value(v) < 0 || int_value(v) >= (long long)lim->vocab)
            return bad(e, "prompt", "`prompt[%zu]` must be a token id in 0..%u", i, lim->vocab - 1);
        r->prompt_ids[i] = (uint32_t)int_value(v);
    }
    r->n_prompt_ids = (uint32_t)n;
    return 0;
}

/* prompt: "text" | [ids] | ["text"] | [[ids]] (one prompt per request). */
static int parse_prompt(const json_t *root, const struct api_limits *lim, struct api_request *r,
                        struct api_error *e)
{
    json_t *p = json_object_get(root, "prompt");
    if (!p || json_is_null(p)) return bad(e, "prompt", "`prompt` is required");
    if (json_is_array(p) && json_array_size(p) == 1 &&
        (json_is_string(json_array_get(p, 0)) || json_is_array(json_array_get(p, 0))))
        p = json_array_get(p, 0);
    if (json_is_string(p)) return copy_text(p, "prompt", lim, &r->prompt_text, e);
    if (json_is_array(p)) {
        for (size_t i = 0; i < json_array_size(p); i++)
            if (!json_is_number(json_array_get(p, i)))
                return bad(e, "prompt",
                           "`prompt` must be a string or a list of token ids (one prompt per "
                           "request)");
        return parse_ids(p, lim, r, e);
    }
    return bad(e, "prompt", "`prompt` must be a string or a list of token ids");
}

/* The chat template (api.h): one line per message, then "Assistant:". */
static const struct {
    const char *role, *prefix;
} chat_roles[] = {
    {"system", "System: "},
    {"developer", "System: "},
    {"user", "User: "},
    {"assistant", "Assistant: "},
};

static int parse_messages(const json_t *root, const struct api_limits *lim, struct api_request *r,
                          struct api_error *e)
{
    json_t *msgs = json_object_get(root, "messages");
    if (!json_is_array(msgs) || !json_array_size(msgs))
        return bad(e, "messages", "`messages` must be a non-empty list of messages");
    if (json_array_size(msgs) > API_MAX_MESSAGES)
        return bad(e, "messages", "`messages` has more than %d messages", API_MAX_MESSAGES);
    size_t cap = lim->max_prompt_bytes + 1, len = 0;
    char *out = malloc(cap + 1);
    if (!out) return api_error_set(e, 500, "server_error", "", "out of memory");
    char param[64];
    int st = 0;
#define APPEND(s, n)                                                                               \
    do {                                                                                           \
        size_t n_ = (n);                                                                           \
        if (len + n_ > lim->max_prompt_bytes) {                                                    \
            st = bad(e, "messages", "the rendered chat is over the limit of %u bytes",             \
                     lim->max_prompt_bytes);                                                       \
            goto done;                                                                             \
        }                                                                                          \
        memcpy(out + len, (s), n_);                                                                \
        len += n_;                                                                                 \
    } while (0)
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m)) {
            st = bad(e, param, "`%s` must be an object with `role` and `content`", param);
            goto done;
        }
        json_t *role = json_object_get(m, "role");
        const char *prefix = NULL;
        for (size_t k = 0; json_is_string(role) && k < sizeof chat_roles / sizeof chat_roles[0];
             k++)
            if (strcmp(json_string_value(role), chat_roles[k].role) == 0)
                prefix = chat_roles[k].prefix;
        if (!prefix) {
            snprintf(param, sizeof param, "messages[%zu].role", i);
            st = bad(e, param, "`%s` must be one of system, developer, user, assistant", param);
            goto done;
        }
        APPEND(prefix, strlen(prefix));
        json_t *content = json_object_get(m, "content");
        snprintf(param, sizeof param, "messages[%zu].content", i);
        if (json_is_string(content)) {
            APPEND(json_string_value(content), json_string_length(content));
        } else if (json_is_array(content)) {
            /* content parts: [{"type": "text", "text": "..."}] */
            for (size_t k = 0; k < json_array_size(content); k++) {
                json_t *part = json_array_get(content, k);
                json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
                if (!json_is_string(type) || strcmp(json_string_value(type), "text") ||
                    !json_is_string(text)) {
                    st = bad(e, param, "`%s[%zu]` must be {\"type\": \"text\", \"text\": string}",
                             param, k);
                    goto done;
                }
                APPEND(json_string_value(text), json_string_length(text));
            }
        } else if (!json_is_null(content)) {
            st = bad(e, param, "`%s` must be a string or a list of text parts", param);
            goto done;
        }
        APPEND("\n", 1);
    }
    APPEND("Assistant:", strlen("Assistant:"));
#undef APPEND
    out[len] = 0;
    if (memchr(out, 0, len)) {
        st = bad(e, "messages", "`messages` contain a NUL character");
        goto done;
    }
    r->prompt_text = out;
    out = NULL;
done:
    free(out);
    return st;
}

static int parse_stop(const json_t *root, struct api_request *r, struct api_error *e)
{
    json_t *s = json_object_get(root, "stop");
    if (!s || json_is_null(s)) return 0;
    json_t *one = json_is_string(s) ? s : NULL;
    size_t n = one ? 1 : json_array_size(s);
    if (!one && !json_is_array(s))
        return bad(e, "stop", "`stop` must be a string or a list of strings");
    if (n > API_MAX_STOP) return bad(e, "stop", "`stop` has more than %d strings", API_MAX_STOP);
    for (size_t i = 0; i < n; i++) {
        json_t *v = one ? one : json_array_get(s, i);
        if (!json_is_string(v) || !json_string_length(v))
            return bad(e, "stop", "`stop` entries must be non-empty strings");
        if (json_string_length(v) > API_MAX_STOP_LEN)
            return bad(e, "stop", "`stop` strings are limited to %d bytes", API_MAX_STOP_LEN);
        if (!(r->stop[r->n_stop++] = strndup(json_string_value(v), json_string_length(v))))
            return api_error_set(e, 500, "server_error", "", "out of memory");
    }
    return 0;
}

/* The deepest nesting of [ and { outside strings (the parser recurses per level). */
static int nesting_depth(const char *s, size_t n)
{
    int depth = 0, max = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max) max = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

int api_request_parse(enum api_kind kind, const char *body, size_t len,
                      const struct api_limits *lim, struct api_request *r, struct api_error *e)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->sampling = lim->defaults;
    if (nesting_depth(body, len) > API_MAX_DEPTH)
        return bad(e, "", "the body nests arrays/objects more than %d deep", API_MAX_DEPTH);
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return bad(e, "", "the body is not valid JSON: %s (line %d, column %d)", jerr.text,
                   jerr.line, jerr.column);
    int st = 0;
    long long x;
    if (!json_is_object(root)) {
        st = bad(e, "", "the body must be a JSON object");
        goto done;
    }
    json_t *model = json_object_get(root, "model");
    if (model && !json_is_null(model) && !json_is_string(model)) {
        st = bad(e, "model", "`model` must be a string");
        goto done;
    }
    if ((st = check_unsupported(root, e))) goto done;
    if ((st = kind == API_CHAT ? parse_messages(root, lim, r, e) : parse_prompt(root, lim, r, e)))
        goto done;
    /* max_completion_tokens is the chat API's newer name for max_tokens */
    const char *mt = json_object_get(root, "max_tokens") || kind != API_CHAT
                         ? "max_tokens"
                         : "max_completion_tokens";
    x = 0;
    if (!get_int(root, mt, 1, lim->ctx, &x, &r->max_tokens_given, e, &st)) goto done;
    r->max_tokens = r->max_tokens_given ? (uint32_t)x : lim->default_max_tokens;
    if (!get_num(root, "temperature", 0, false, 2, &r->sampling.temperature, e, &st) ||
        !get_num(root, "top_p", 0, true, 1, &r->sampling.top_p, e, &st))
        goto done;
    x = r->sampling.top_k;
    if (!get_int(root, "top_k", -1, lim->vocab, &x, NULL, e, &st)) goto done;
    r->sampling.top_k = x < 0 ? 0 : (uint32_t)x; /* -1 = off, as vLLM spells it */
    x = (long long)r->sampling.seed;
    if (!get_int(root, "seed", 0, 0x7fffffffffffffffLL, &x, NULL, e, &st)) goto done;
    r->sampling.seed = (uint64_t)x;
    if ((st = parse_stop(root, r, e))) goto done;
    if (kind == API_CHAT && (!(r->stop[r->n_stop++] = strdup(API_CHAT_STOP)) ||
                             !(r->stop[r->n_stop++] = strdup(API_CHAT_STOP2)))) {
        st = api_error_set(e, 500, "server_error", "", "out of memory");
        goto done;
    }
    if (!get_bool(root, "stream", &r->stream, e, &st) ||
        !get_bool(root, "return_token_ids", &r->return_token_ids, e, &st))
        goto done;
    json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so) || !r->stream) {
            st = bad(e, "stream_options",
                     "`stream_options` must be an object, and only with `stream`: true");
            goto done;
        }
        if (!get_bool(so, "include_usage", &r->include_usage, e, &st)) {
            snprintf(e->param, sizeof e->param, "stream_options.include_usage");
            goto done;
        }
    }
done:
    json_decref(root);
    return st;
}

int api_request_fit(struct api_request *r, uint32_t n_prompt, const struct api_limits *lim,
                    struct api_error *e)
{
    const char *param = r->kind == API_CHAT ? "messages" : "prompt";
    if (n_prompt >= lim->ctx)
        return bad(e, param,
                   "the prompt is %u tokens; the context holds %u positions (at most %u prompt "
                   "tokens, leaving room for one generated token)",
                   n_prompt, lim->ctx, lim->ctx - 1);
    uint32_t room = lim->ctx - n_prompt;
    if (!r->max_tokens_given) {
        if (r->max_tokens > room) r->max_tokens = room;
    } else if (r->max_tokens > room) {
        return bad(e, "max_tokens",
                   "the prompt (%u tokens) + `max_tokens` (%u) exceeds the context of %u "
                   "positions",
                   n_prompt, r->max_tokens, lim->ctx);
    }
    return 0;
}

/* ---- writing ---- */

static char *dump(json_t *root, size_t *len)
{
    if (!root) return NULL;
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (s && len) *len = strlen(s);
    return s;
}

static char *sse(char *json, size_t *len)
{
    if (!json) return NULL;
    size_t n = strlen(json);
    char *out = malloc(n + 9);
    if (out) {
        memcpy(out, "data: ", 6);
        memcpy(out + 6, json, n);
        memcpy(out + 6 + n, "\n\n", 3);
        if (len) *len = n + 8;
    }
    free(json);
    return out;
}

static json_t *text_value(const char *text, size_t len)
{
    json_t *v = json_stringn(text, len);
    if (v) return v;
    size_t n;
    char *clean = api_utf8_sanitize(text, len, &n);
    if (!clean) return NULL;
    v = json_stringn(clean, n);
    free(clean);
    return v;
}

static json_t *ids_value(const uint32_t *ids, uint32_t n)
{
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static json_t *usage_value(const struct api_usage *u)
{
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)u->prompt_tokens,
                     "completion_tokens", (json_int_t)u->completion_tokens, "total_tokens",
                     (json_int_t)u->prompt_tokens + u->completion_tokens);
}

static json_t *head(const struct api_answer *a, const char *object)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", a->id, "object", object, "created",
                     (json_int_t)a->created, "model", a->model);
}

char *api_write_answer(const struct api_answer *a, const char *text, size_t text_len,
                       enum api_finish finish, const struct api_usage *u, const uint32_t *ids,
                       uint32_t n_ids, size_t *len)
{
    bool chat = a->kind == API_CHAT;
    json_t *root = head(a, chat ? "chat.completion" : "text_completion");
    json_t *choice =
        chat ? json_pack("{s:i, s:{s:s, s:o}, s:n, s:s}", "index", 0, "message", "role",
                         "assistant", "content", text_value(text, text_len), "logprobs",
                         "finish_reason", api_finish_name(finish))
             : json_pack("{s:i, s:o, s:n, s:s}", "index", 0, "text", text_value(text, text_len),
                         "logprobs", "finish_reason", api_finish_name(finish));
    if (!root || !choice) {
        json_decref(root);
        json_decref(choice);
        return NULL;
    }
    if (ids) json_object_set_new(choice, "token_ids", ids_value(ids, n_ids));
    json_object_set_new(root, "choices", json_pack("[o]", choice));
    json_object_set_new(root, "usage", usage_value(u));
    return dump(root, len);
}

/* Appends s[0..n) as the inside of a JSON string at out (room for 6 bytes per input byte):
 * escapes as RFC 8259 requires, invalid UTF-8 becomes U+FFFD. Returns the new end. */
static char *escape_into(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *out++ = (char)c;
            i++;
        } else if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
            i++;
        } else if (c < 0x20) {
            *out++ = '\\';
            switch (c) {
            case '\n':
                *out++ = 'n';
                break;
            case '\t':
                *out++ = 't';
                break;
            case '\r':
                *out++ = 'r';
                break;
            default:
                memcpy(out, "u00", 3);
                out[3] = hex[c >> 4];
                out[4] = hex[c & 15];
                out += 5;
            }
            i++;
        } else {
            size_t k = utf8_valid_len((const unsigned char *)s + i, n - i);
            if (k) {
                memcpy(out, s + i, k);
                out += k;
                i += k;
            } else {
                memcpy(out, "\xef\xbf\xbd", 3);
                out += 3;
                i++;
            }
        }
    }
    return out;
}

/* The streaming chunk is written by hand, not through jansson: it is the one body written
 * per token (3 µs instead of 18 µs here); the unit tests read it back with jansson. */
char *api_write_chunk(const struct api_answer *a, const char *text, size_t text_len,
                      const uint32_t *ids, uint32_t n_ids, bool first, const char *finish,
                      size_t *len)
{
    bool chat = a->kind == API_CHAT;
    size_t cap = 256 + 6 * (strlen(a->id) + strlen(a->model) + text_len) + 12 * (size_t)n_ids +
                 (finish ? strlen(finish) : 0);
    char *buf = malloc(cap), *o = buf;
    if (!buf) return NULL;
    o += sprintf(o, "data: {\"id\":\"");
    o = escape_into(o, a->id, strlen(a->id));
    o += sprintf(o, "\",\"object\":\"%s\",\"created\":%lld,\"model\":\"",
                 chat ? "chat.completion.chunk" : "text_completion", a->created);
    o = escape_into(o, a->model, strlen(a->model));
    o += sprintf(o, "\",\"choices\":[{\"index\":0,");
    if (chat) {
        o += sprintf(o, "\"delta\":{");
        if (first) o += sprintf(o, "\"role\":\"assistant\"%s", text_len || !finish ? "," : "");
        if (text_len || (first && !finish)) {
            o += sprintf(o, "\"content\":\"");
            o = escape_into(o, text, text_len);
            *o++ = '"';
        }
        *o++ = '}';
    } else {
        o += sprintf(o, "\"text\":\"");
        o = escape_into(o, text, text_len);
        *o++ = '"';
    }
    o += sprintf(o, ",\"logprobs\":null,\"finish_reason\":");
    if (finish) {
        *o++ = '"';
        o = escape_into(o, finish, strlen(finish));
        *o++ = '"';
    } else {
        o += sprintf(o, "null");
    }
    if (ids) {
        o += sprintf(o, ",\"token_ids\":[");
        for (uint32_t i = 0; i < n_ids; i++)
            o += sprintf(o, "%s%u", i ? "," : "", ids[i]);
        *o++ = ']';
    }
    o += sprintf(o, "}]}\n\n");
    if (len) *len = (size_t)(o - buf);
    return buf;
}

char *api_write_usage_chunk(const struct api_answer *a, const struct api_usage *u, size_t *len)
{
    json_t *root = head(a, a->kind == API_CHAT ? "chat.completion.chunk" : "text_completion");
    if (!root) return NULL;
    json_object_set_new(root, "choices", json_array());
    json_object_set_new(root, "usage", usage_value(u));
    return sse(dump(root, NULL), len);
}

char *api_write_error(const struct api_error *e, bool as_sse, size_t *len)
{
    json_t *root = json_pack("{s:{s:o, s:s, s:o, s:o}}", "error", "message",
                             text_value(e->message, strlen(e->message)), "type",
                             e->type ? e->type : "server_error", "param",
                             e->param[0] ? json_string(e->param) : json_null(), "code",
                             e->code ? json_string(e->code) : json_null());
    char *s = dump(root, as_sse ? NULL : len);
    return as_sse ? sse(s, len) : s;
}

char *api_write_models(const char *model, long long created, size_t *len)
{
    return dump(json_pack("{s:s, s:[{s:s, s:s, s:I, s:s}]}", "object", "list", "data", "id", model,
                          "object", "model", "created", (json_int_t)created, "owned_by",
                          "sparsetf"),
                len);
}
