/* The HTTP server without the engine: request checks, answer bodies and SSE events (read
 * back with jansson), stop strings, metrics, and the HTTP layer on a local port driven by
 * raw sockets, with a stand-in main loop answering jobs. */
#include <arpa/inet.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/api.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/stop.h"

static const struct api_limits lim = {
    .vocab = 1000,
    .ctx = 64,
    .max_prompt_bytes = 256,
    .default_max_tokens = 16,
    .defaults = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 42},
};

/* ---- requests ---- */

static int parse(enum api_kind kind, const char *body, struct api_request *r, struct api_error *e)
{
    return api_request_parse(kind, body, strlen(body), &lim, r, e);
}

static void test_server_parse_completion_fields(void **state)
{
    (void)state;
    struct api_request r;
    struct api_error e;
    assert_int_equal(parse(API_COMPLETION,
                           "{\"model\":\"m\",\"prompt\":\"Hi there\",\"max_tokens\":5,"
                           "\"temperature\":0.5,\"top_p\":0.9,\"top_k\":7,\"seed\":123,"
                           "\"stop\":[\"a\",\"bc\"],\"stream\":true,\"n\":1,"
                           "\"stream_options\":{\"include_usage\":true},\"logprobs\":null}",
                           &r, &e),
                     0);
    assert_string_equal(r.prompt_text, "Hi there");
    assert_null(r.prompt_ids);
    assert_int_equal(r.max_tokens, 5);
    assert_true(r.max_tokens_given);
    assert_true(r.sampling.temperature == 0.5f && r.sampling.top_p == 0.9f);
    assert_int_equal(r.sampling.top_k, 7);
    assert_int_equal(r.sampling.seed, 123);
    assert_int_equal(r.n_stop, 2);
    assert_string_equal(r.stop[1], "bc");
    assert_true(r.stream && r.include_usage);
    api_request_free(&r);
    /* defaults, and token ids in the [[ids]] form */
    assert_int_equal(parse(API_COMPLETION, "{\"prompt\":[[1,2,999]]}", &r, &e), 0);
    assert_int_equal(r.n_prompt_ids, 3);
    assert_int_equal(r.prompt_ids[2], 999);
    assert_int_equal(r.max_tokens, lim.default_max_tokens);
    assert_false(r.max_tokens_given || r.stream);
    assert_int_equal(r.sampling.seed, 42);
    api_request_free(&r);
}

static void test_server_parse_chat_template(void **state)
{
    (void)state;
    struct api_request r;
    struct api_error e;
    assert_int_equal(parse(API_CHAT,
                           "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                           "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}],"
                           "\"max_completion_tokens\":3,\"stop\":\"x\"}",
                           &r, &e),
                     0);
    assert_string_equal(r.prompt_text, "System: Be brief.\nUser: Hi\nAssistant:");
    assert_int_equal(r.max_tokens, 3);
    assert_int_equal(r.n_stop, 3);
    assert_string_equal(r.stop[0], "x");
    assert_string_equal(r.stop[1], API_CHAT_STOP);
    assert_string_equal(r.stop[2], API_CHAT_STOP2);
    api_request_free(&r);
}

/* Every bad request is a 400 naming its field. */
static void test_server_parse_rejects(void **state)
{
    (void)state;
    static const struct {
        enum api_kind kind;
        const char *body, *param;
    } cases[] = {
        {API_COMPLETION, "{\"prompt\":", ""},
        {API_COMPLETION, "[1,2]", ""},
        {API_COMPLETION, "{\"prompt\":\"a\",\"prompt\":\"b\"}", ""},
        {API_COMPLETION, "{}", "prompt"},
        {API_COMPLETION, "{\"prompt\":7}", "prompt"},
        {API_COMPLETION, "{\"prompt\":[]}", "prompt"},
        {API_COMPLETION, "{\"prompt\":[1,1000]}", "prompt"},
        {API_COMPLETION, "{\"prompt\":[1,-1]}", "prompt"},
        {API_COMPLETION, "{\"prompt\":[1,\"a\"]}", "prompt"},
        {API_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":0}", "max_tokens"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":65}", "max_tokens"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":\"5\"}", "max_tokens"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":2.5}", "max_tokens"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"temperature\":-0.1}", "temperature"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"temperature\":\"hot\"}", "temperature"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"top_p\":0}", "top_p"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"top_p\":1.5}", "top_p"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"top_k\":-2}", "top_k"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"seed\":-1}", "seed"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"stop\":5}", "stop"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"\"]}", "stop"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\"]}", "stop"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"stream\":1}", "stream"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"n\":2}", "n"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"echo\":true}", "echo"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":3}", "logprobs"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"presence_penalty\":0.5}", "presence_penalty"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"model\":5}", "model"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":true}}",
         "stream_options"},
        {API_COMPLETION,
         "{\"prompt\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\":3}}",
         "stream_options.include_usage"},
        {API_COMPLETION,
         "{\"prompt\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", ""},
        {API_CHAT, "{\"prompt\":\"a\"}", "messages"},
        {API_CHAT, "{\"messages\":[]}", "messages"},
        {API_CHAT, "{\"messages\":[5]}", "messages[0]"},
        {API_CHAT, "{\"messages\":[{\"role\":\"robot\",\"content\":\"a\"}]}", "messages[0].role"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":7}]}", "messages[0].content"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
         "messages[0].content"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct api_request r;
        struct api_error e;
        int st = parse(cases[i].kind, cases[i].body, &r, &e);
        if (st != 400 || strcmp(e.param, cases[i].param) != 0)
            fail_msg("case %zu `%s`: status %d, param `%s` (%s); expected 400 `%s`", i,
                     cases[i].body, st, e.param, e.message, cases[i].param);
        assert_true(e.message[0] != 0);
        api_request_free(&r);
    }
}

static void test_server_parse_size_limits(void **state)
{
    (void)state;
    struct api_request r;
    struct api_error e;
    char body[1024];
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    snprintf(body, sizeof body, "{\"prompt\":\"%s\"}", big);
    assert_int_equal(parse(API_COMPLETION, body, &r, &e), 400);
    assert_string_equal(e.param, "prompt");
    api_request_free(&r);
    snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", big);
    assert_int_equal(parse(API_CHAT, body, &r, &e), 400);
    assert_string_equal(e.param, "messages");
    api_request_free(&r);
    /* 65 ids do not fit a context of 64 */
    char *p = body + snprintf(body, sizeof body, "{\"prompt\":[");
    for (int i = 0; i < 65; i++)
        p += sprintf(p, "%s1", i ? "," : "");
    strcpy(p, "]}");
    assert_int_equal(parse(API_COMPLETION, body, &r, &e), 400);
    assert_string_equal(e.param, "prompt");
    api_request_free(&r);
}

static void test_server_fit_context(void **state)
{
    (void)state;
    struct api_request r;
    struct api_error e;
    assert_int_equal(parse(API_COMPLETION, "{\"prompt\":\"a\"}", &r, &e), 0);
    assert_int_equal(api_request_fit(&r, 60, &lim, &e), 0);
    assert_int_equal(r.max_tokens, 4); /* the default, cut to what the context leaves */
    assert_int_equal(api_request_fit(&r, 64, &lim, &e), 400);
    assert_string_equal(e.param, "prompt");
    api_request_free(&r);
    assert_int_equal(parse(API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":10}", &r, &e), 0);
    assert_int_equal(api_request_fit(&r, 54, &lim, &e), 0);
    assert_int_equal(api_request_fit(&r, 55, &lim, &e), 400);
    assert_string_equal(e.param, "max_tokens");
    api_request_free(&r);
}

/* ---- answers ---- */

static json_t *load(const char *s)
{
    json_error_t je;
    json_t *v = json_loads(s, 0, &je);
    if (!v) fail_msg("not JSON (%s): %s", je.text, s);
    return v;
}

static void test_server_write_answer(void **state)
{
    (void)state;
    struct api_answer a = {.kind = API_COMPLETION, .id = "cmpl-1", .created = 7, .model = "m"};
    struct api_usage u = {.prompt_tokens = 3, .completion_tokens = 4};
    uint32_t ids[2] = {5, 6};
    size_t len;
    char *s = api_write_answer(&a, "h\"i\xff", 4, API_FINISH_LENGTH, &u, ids, 2, &len);
    assert_int_equal(len, strlen(s));
    json_t *v = load(s);
    assert_string_equal(json_string_value(json_object_get(v, "object")), "text_completion");
    json_t *c = json_array_get(json_object_get(v, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "text")), "h\"i\xef\xbf\xbd");
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "length");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(c, "token_ids"), 1)), 6);
    json_t *us = json_object_get(v, "usage");
    assert_int_equal(json_integer_value(json_object_get(us, "total_tokens")), 7);
    json_decref(v);
    free(s);
    a.kind = API_CHAT;
    s = api_write_answer(&a, "ok", 2, API_FINISH_STOP, &u, NULL, 0, NULL);
    v = load(s);
    assert_string_equal(json_string_value(json_object_get(v, "object")), "chat.completion");
    c = json_array_get(json_object_get(v, "choices"), 0);
    json_t *m = json_object_get(c, "message");
    assert_string_equal(json_string_value(json_object_get(m, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(m, "content")), "ok");
    assert_null(json_object_get(c, "token_ids"));
    json_decref(v);
    free(s);
}

static json_t *load_event(const char *s)
{
    assert_memory_equal(s, "data: ", 6);
    size_t n = strlen(s);
    assert_true(n > 8 && s[n - 1] == '\n' && s[n - 2] == '\n');
    char *body = strndup(s + 6, n - 8);
    json_t *v = load(body);
    free(body);
    return v;
}

static void test_server_write_chunks(void **state)
{
    (void)state;
    /* the hand-written chunk: escapes, invalid UTF-8, ids, every shape, read back by jansson */
    static const struct {
        enum api_kind kind;
        const char *text;
        bool ids, first;
        const char *finish;
    } shapes[] = {
        {API_COMPLETION, "plain", false, false, NULL},
        {API_COMPLETION, "q\"b\\s\n\t\x01 \xc3\xa9 \xff end", true, false, NULL},
        {API_COMPLETION, "", true, false, "length"},
        {API_CHAT, "hi", false, true, NULL},
        {API_CHAT, "", false, true, "stop"},
        {API_CHAT, "x\r", true, false, NULL},
    };
    struct api_answer q = {.kind = API_COMPLETION, .id = "c\"1", .created = 9, .model = "m\\o"};
    uint32_t some[3] = {0, 7, 4294967295u};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        q.kind = shapes[i].kind;
        size_t n;
        char *c =
            api_write_chunk(&q, shapes[i].text, strlen(shapes[i].text), shapes[i].ids ? some : NULL,
                            3, shapes[i].first, shapes[i].finish, &n);
        assert_int_equal(n, strlen(c));
        json_t *v = load_event(c);
        assert_string_equal(json_string_value(json_object_get(v, "id")), "c\"1");
        assert_string_equal(json_string_value(json_object_get(v, "model")), "m\\o");
        assert_int_equal(json_integer_value(json_object_get(v, "created")), 9);
        json_t *ch = json_array_get(json_object_get(v, "choices"), 0);
        json_t *t = q.kind == API_CHAT ? json_object_get(json_object_get(ch, "delta"), "content")
                                       : json_object_get(ch, "text");
        size_t clean_len;
        char *clean = api_utf8_sanitize(shapes[i].text, strlen(shapes[i].text), &clean_len);
        if (t)
            assert_string_equal(json_string_value(t), clean);
        else
            assert_true(q.kind == API_CHAT && !clean_len);
        free(clean);
        json_t *fr = json_object_get(ch, "finish_reason");
        if (shapes[i].finish)
            assert_string_equal(json_string_value(fr), shapes[i].finish);
        else
            assert_true(json_is_null(fr));
        json_t *ids = json_object_get(ch, "token_ids");
        assert_true(shapes[i].ids ? json_array_size(ids) == 3 &&
                                        json_integer_value(json_array_get(ids, 2)) == 4294967295LL
                                  : ids == NULL);
        json_decref(v);
        free(c);
    }
    struct api_answer a = {.kind = API_CHAT, .id = "chatcmpl-1", .created = 7, .model = "m"};
    char *s = api_write_chunk(&a, "", 0, NULL, 0, true, NULL, NULL);
    json_t *v = load_event(s);
    json_t *d = json_object_get(json_array_get(json_object_get(v, "choices"), 0), "delta");
    assert_string_equal(json_string_value(json_object_get(d, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(d, "content")), "");
    json_decref(v);
    free(s);
    s = api_write_chunk(&a, "", 0, NULL, 0, false, "stop", NULL);
    v = load_event(s);
    json_t *c = json_array_get(json_object_get(v, "choices"), 0);
    assert_int_equal(json_object_size(json_object_get(c, "delta")), 0);
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "stop");
    json_decref(v);
    free(s);
    struct api_usage u = {2, 3};
    s = api_write_usage_chunk(&a, &u, NULL);
    v = load_event(s);
    assert_int_equal(json_array_size(json_object_get(v, "choices")), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(v, "usage"), "completion_tokens")), 3);
    json_decref(v);
    free(s);
    struct api_error e;
    api_error_set(&e, 400, "invalid_request_error", "top_p", "bad %s", "top_p");
    s = api_write_error(&e, false, NULL);
    v = load(s);
    json_t *err = json_object_get(v, "error");
    assert_string_equal(json_string_value(json_object_get(err, "param")), "top_p");
    assert_string_equal(json_string_value(json_object_get(err, "message")), "bad top_p");
    assert_true(json_is_null(json_object_get(err, "code")));
    json_decref(v);
    free(s);
}

/* ---- stop strings ---- */

static void test_server_stop_release(void **state)
{
    (void)state;
    const char *stops[] = {"END", "\nUser:"};
    bool hit;
    const char *t = "Hello E";
    assert_int_equal(stop_release(stops, 2, t, strlen(t), 0, false, &hit), 6);
    assert_false(hit);
    t = "Hello ENDING";
    assert_int_equal(stop_release(stops, 2, t, strlen(t), 6, false, &hit), 6);
    assert_true(hit);
    t = "a\nUse";
    assert_int_equal(stop_release(stops, 2, t, strlen(t), 0, false, &hit), 1);
    assert_int_equal(stop_release(stops, 2, t, strlen(t), 0, true, &hit), strlen(t));
    assert_false(hit);
    /* incomplete UTF-8 and a trailing U+FFFD are held until more comes */
    t = "ab\xc3";
    assert_int_equal(stop_release(NULL, 0, t, strlen(t), 0, false, &hit), 2);
    t = "ab\xef\xbf\xbd";
    assert_int_equal(stop_release(NULL, 0, t, strlen(t), 0, false, &hit), 2);
    t = "ab\xc3\xa9";
    assert_int_equal(stop_release(NULL, 0, t, strlen(t), 0, false, &hit), 4);
    /* released text is never taken back */
    assert_int_equal(stop_release(stops, 2, "xEN", 3, 3, false, &hit), 3);
}

/* ---- metrics ---- */

static void test_server_metrics_render(void **state)
{
    (void)state;
    struct metrics m;
    assert_int_equal(metrics_init(&m), 0);
    metrics_count_request(&m, METRICS_COMPLETIONS, 200);
    metrics_count_request(&m, METRICS_COMPLETIONS, 429);
    metrics_count_tokens(&m, 5, 7);
    metrics_observe_token(&m, 0.0015);
    metrics_observe_token(&m, 0.3);
    double c[2] = {1.5, 2.5}, w[2] = {0.25, 0.5};
    metrics_set_ranks(&m, 2, c, w);
    char *s = metrics_render(&m, 3, 4, NULL);
    assert_non_null(
        strstr(s, "sparsetf_requests_total{endpoint=\"/v1/completions\",code=\"429\"} 1\n"));
    assert_non_null(strstr(s, "sparsetf_completion_tokens_total 7\n"));
    assert_non_null(strstr(s, "sparsetf_token_latency_seconds_bucket{le=\"0.001\"} 0\n"));
    assert_non_null(strstr(s, "sparsetf_token_latency_seconds_bucket{le=\"0.002\"} 1\n"));
    assert_non_null(strstr(s, "sparsetf_token_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(s, "sparsetf_token_latency_seconds_count 2\n"));
    assert_non_null(strstr(s, "sparsetf_queue_depth 4\n"));
    assert_non_null(strstr(s, "sparsetf_rank_wait_seconds{rank=\"1\"} 0.500000\n"));
    free(s);
    metrics_destroy(&m);
}

/* ---- the HTTP layer with a stand-in main loop ---- */

/* Answers each job: prompt "hold" is kept until its client leaves (then counted in
 * `cancelled`); any other prompt gets "Hello" + " world" (ids 11, 12) and ends by length. */
struct fake_loop {
    struct server *srv;
    atomic_bool stop;
    atomic_int cancelled, answered;
    pthread_t thread;
};

static void *fake_main(void *arg)
{
    struct fake_loop *f = arg;
    struct server_job *held[8];
    int n_held = 0;
    while (!atomic_load(&f->stop)) {
        struct server_job *j;
        while ((j = server_take(f->srv))) {
            const struct api_request *r = server_job_request(j);
            if (r->prompt_text && strcmp(r->prompt_text, "hold") == 0 && n_held < 8) {
                server_job_accept(j, 1);
                held[n_held++] = j;
                continue;
            }
            server_job_accept(j, 2);
            uint32_t a = 11, b = 12;
            server_job_emit(j, "Hello", 5, &a, 1);
            server_job_emit(j, " world", 6, &b, 1);
            struct api_usage u = {2, 2};
            server_job_finish(j, API_FINISH_LENGTH, &u);
            server_job_release(j);
            atomic_fetch_add(&f->answered, 1);
        }
        for (int i = 0; i < n_held; i++)
            if (server_job_cancelled(held[i])) {
                server_job_release(held[i]);
                held[i--] = held[--n_held];
                atomic_fetch_add(&f->cancelled, 1);
            }
        server_wait(f->srv, 0.02);
    }
    for (int i = 0; i < n_held; i++) {
        struct api_error e;
        api_error_set(&e, 503, "server_error", NULL, "test over");
        server_job_fail(held[i], &e);
        server_job_release(held[i]);
    }
    return NULL;
}

static int setup_http(void **state)
{
    struct fake_loop *f = calloc(1, sizeof *f);
    struct server_config cfg = {.addr = "127.0.0.1",
                                .port = 0,
                                .api_key = "sekret",
                                .slots = 1,
                                .max_queue = 1,
                                .max_body = 4096,
                                .client_timeout = 5,
                                .model_name = "fake",
                                .lim = lim};
    struct stf_error err = {0};
    if (server_open(&cfg, &f->srv, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    pthread_create(&f->thread, NULL, fake_main, f);
    *state = f;
    return 0;
}

static int teardown_http(void **state)
{
    struct fake_loop *f = *state;
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    server_close(f->srv, NULL);
    free(f);
    return 0;
}

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Sends raw bytes and reads the answer until the server closes (Connection: close). */
static char *exchange(uint16_t port, const char *raw, size_t len)
{
    int fd = dial(port);
    assert_int_equal(send(fd, raw, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    ssize_t got;
    while ((got = recv(fd, out + n, cap - 1 - n, 0)) > 0)
        n += (size_t)got;
    out[n] = 0;
    close(fd);
    return out;
}

static char *post(uint16_t port, const char *path, const char *auth, const char *body)
{
    char raw[8192];
    int n = snprintf(raw, sizeof raw,
                     "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     path, auth ? "Authorization: Bearer " : "", auth ? auth : "",
                     auth ? "\r\n" : "", strlen(body), body);
    return exchange(port, raw, (size_t)n);
}

static int status_of(const char *answer)
{
    int code = 0;
    sscanf(answer, "HTTP/1.%*d %d", &code);
    return code;
}

static void test_server_http_answers(void **state)
{
    struct fake_loop *f = *state;
    uint16_t port = server_port(f->srv);
    char *a =
        post(port, "/v1/completions", "sekret", "{\"prompt\":\"hi\",\"return_token_ids\":true}");
    assert_int_equal(status_of(a), 200);
    json_t *v = load(strstr(a, "\r\n\r\n") + 4);
    json_t *c = json_array_get(json_object_get(v, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "text")), "Hello world");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(c, "token_ids"), 0)), 11);
    json_decref(v);
    free(a);
    /* streaming: the events carry the same text, then [DONE] */
    a = post(port, "/v1/chat/completions", "sekret",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}");
    assert_int_equal(status_of(a), 200);
    assert_non_null(strstr(a, "text/event-stream"));
    if (!strstr(a, "\"role\":\"assistant\"")) fail_msg("no role in %s", a);
    assert_non_null(strstr(a, "\"finish_reason\":\"length\""));
    assert_non_null(strstr(a, "data: [DONE]\n\n"));
    char text[64] = "";
    for (const char *p = a; (p = strstr(p, "\"content\":\"")); p += 11)
        strncat(text, p + 11, strcspn(p + 11, "\""));
    assert_string_equal(text, "Hello world");
    free(a);
}

static void test_server_http_errors(void **state)
{
    struct fake_loop *f = *state;
    uint16_t port = server_port(f->srv);
    static const struct {
        const char *raw;
        int status;
    } cases[] = {
        {"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404},
        {"GET /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405},
        {"POST /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
         405},
        {"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 401},
        {"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer "
         "sekrez\r\n\r\n",
         401},
        {"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer "
         "sekret\r\n\r\n",
         200},
        {"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200},
        {"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
         "Bearer sekret\r\nContent-Length: 100000\r\n\r\n{",
         413},
        {"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
         "Bearer sekret\r\nContent-Length: 5\r\n\r\n{\"a\":",
         400},
        {"BREW /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405},
        {"garbage\r\n\r\n", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *a = exchange(port, cases[i].raw, strlen(cases[i].raw));
        /* -1: answered with 400 or just closed, as libmicrohttpd sees fit */
        if (cases[i].status < 0 && (status_of(a) == 400 || !a[0])) {
            free(a);
            continue;
        }
        if (status_of(a) != cases[i].status)
            fail_msg("case %zu: got `%.80s`, expected %d", i, a, cases[i].status);
        free(a);
    }
    /* a chunked body over the limit */
    char raw[16384];
    int n = snprintf(raw, sizeof raw,
                     "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Authorization: Bearer sekret\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int k = 0; k < 3; k++) {
        n += snprintf(raw + n, sizeof raw - (size_t)n, "800\r\n");
        memset(raw + n, ' ', 0x800);
        n += 0x800;
        n += snprintf(raw + n, sizeof raw - (size_t)n, "\r\n");
    }
    n += snprintf(raw + n, sizeof raw - (size_t)n, "0\r\n\r\n");
    char *a = exchange(port, raw, (size_t)n);
    assert_int_equal(status_of(a), 413);
    free(a);
    /* /metrics counted what happened */
    a = exchange(port,
                 "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
                 "Bearer sekret\r\n\r\n",
                 strlen("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
                        "Bearer sekret\r\n\r\n"));
    assert_int_equal(status_of(a), 200);
    assert_non_null(strstr(a, "code=\"413\"} 2"));
    free(a);
}

/* Slots 1 + queue 1: a third request is refused with 429; a client that leaves cancels its
 * job. */
static void test_server_http_queue_and_cancel(void **state)
{
    struct fake_loop *f = *state;
    uint16_t port = server_port(f->srv);
    char raw[512];
    const char *body = "{\"prompt\":\"hold\",\"stream\":true}";
    int n = snprintf(raw, sizeof raw,
                     "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    int fds[2];
    for (int i = 0; i < 2; i++) {
        fds[i] = dial(port);
        assert_int_equal(send(fds[i], raw, (size_t)n, MSG_NOSIGNAL), n);
        char head[256];
        assert_true(recv(fds[i], head, sizeof head, 0) > 0); /* the streaming headers */
        assert_int_equal(status_of(head), 200);
    }
    char *a = post(port, "/v1/completions", "sekret", "{\"prompt\":\"x\"}");
    assert_int_equal(status_of(a), 429);
    assert_non_null(strstr(a, "rate_limit_error"));
    free(a);
    close(fds[0]);
    close(fds[1]);
    for (int t = 0; t < 100 && atomic_load(&f->cancelled) < 2; t++)
        usleep(20000);
    assert_int_equal(atomic_load(&f->cancelled), 2);
    a = post(port, "/v1/completions", "sekret", "{\"prompt\":\"x\"}");
    assert_int_equal(status_of(a), 200);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_parse_completion_fields),
        cmocka_unit_test(test_server_parse_chat_template),
        cmocka_unit_test(test_server_parse_rejects),
        cmocka_unit_test(test_server_parse_size_limits),
        cmocka_unit_test(test_server_fit_context),
        cmocka_unit_test(test_server_write_answer),
        cmocka_unit_test(test_server_write_chunks),
        cmocka_unit_test(test_server_stop_release),
        cmocka_unit_test(test_server_metrics_render),
        cmocka_unit_test_setup_teardown(test_server_http_answers, setup_http, teardown_http),
        cmocka_unit_test_setup_teardown(test_server_http_errors, setup_http, teardown_http),
        cmocka_unit_test_setup_teardown(test_server_http_queue_and_cancel, setup_http,
                                        teardown_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
