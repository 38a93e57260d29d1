/* server: see server.h. */
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/timer.h"

#define WAIT_SLICE_MS 100 /* how often a waiting connection looks at the server closing */

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED };

struct server_job {
    struct server *srv;
    atomic_int refs;         /* the connection's and the main loop's */
    struct server_job *next; /* the incoming queue */
    struct api_request req;  /* read-only once queued */
    char id[64];
    long long created;
    double arrival;
    /* Written by the main loop, read by the connection. The main loop never waits for a
     * lock the connection holds: it appends beyond the published lengths and then publishes
     * them (release); only growing a buffer takes mu, under which the connection copies. A
     * wake-up is a write to the eventfd, so none is lost. */
    pthread_mutex_t mu;
    int efd;
    atomic_int state;       /* enum job_state */
    atomic_bool accepted;   /* headers may go out */
    struct api_error error; /* set before state becomes JOB_FAILED */
    char *text;             /* released completion text */
    size_t text_cap;
    atomic_size_t text_len;
    uint32_t *ids; /* generated token ids */
    uint32_t ids_cap;
    atomic_uint n_ids;
    enum api_finish finish; /* set before state becomes JOB_DONE */
    struct api_usage usage;
    atomic_bool cancelled; /* the client left */
    /* the connection's reading position (its thread only) */
    size_t text_read;
    uint32_t ids_read;
    bool first_sent;
};

struct server {
    struct server_config cfg;
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    pthread_cond_t cv_main; /* the main loop waits here for jobs and cancellations */
    struct server_job *in_head, *in_tail;
    uint32_t n_jobs;      /* queued or taken and not yet released by the main loop */
    uint32_t n_answering; /* connections with a job, until libmicrohttpd is done with them */
    atomic_uint running, queued;
    atomic_bool closing;
    char close_msg[256]; /* written before closing is set */
    atomic_uint events;  /* bumped on new jobs and cancellations */
    struct metrics metrics;
    long long started;
    uint16_t port;
    atomic_ullong seq;
};

/* One per connection (MHD's con_cls). */
struct conn {
    struct server *srv;
    struct MHD_Connection *mc;
    enum metrics_endpoint endpoint;
    char *body;
    size_t len, cap;
    bool responded; /* a response was queued on the first call */
    bool too_big;   /* the body passed max_body: answered with 413 at its end */
    size_t dropped; /* body bytes dropped since */
    struct server_job *job;
    int fd;
    char *out; /* the SSE bytes being written */
    size_t out_len, out_off;
    bool ended; /* the last event is in out */
};

/* ---- jobs ---- */

static void job_unref(struct server_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1) return;
    api_request_free(&j->req);
    free(j->text);
    free(j->ids);
    if (j->efd >= 0) close(j->efd);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

struct server_job *server_take(struct server *s)
{
    pthread_mutex_lock(&s->mu);
    struct server_job *j = s->in_head;
    if (j) {
        s->in_head = j->next;
        if (!s->in_head) s->in_tail = NULL;
        j->next = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    return j;
}

void server_wait(struct server *s, double timeout)
{
    unsigned seen = atomic_load(&s->events);
    pthread_mutex_lock(&s->mu);
    if (!s->in_head && atomic_load(&s->events) == seen) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = ts.tv_nsec + (long long)(timeout * 1e9);
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&s->cv_main, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
}

const struct api_request *server_job_request(const struct server_job *j)
{
    return &j->req;
}

double server_job_arrival(const struct server_job *j)
{
    return j->arrival;
}

/* Wakes the job's connection. */
static void notify(struct server_job *j)
{
    uint64_t one = 1;
    ssize_t n = write(j->efd, &one, sizeof one);
    (void)n; /* fails only when the counter is saturated: the connection is awake anyway */
}

void server_job_accept(struct server_job *j, uint32_t n_prompt)
{
    size_t text_cap = 16 * (size_t)j->req.max_tokens + 256;
    char *text = malloc(text_cap);
    uint32_t *ids = malloc(((size_t)j->req.max_tokens + 1) * sizeof *ids);
    pthread_mutex_lock(&j->mu);
    j->text = text;
    j->text_cap = text ? text_cap : 0;
    j->ids = ids;
    j->ids_cap = ids ? j->req.max_tokens + 1 : 0;
    j->usage.prompt_tokens = n_prompt;
    atomic_store(&j->state, JOB_RUNNING);
    pthread_mutex_unlock(&j->mu);
    atomic_store(&j->accepted, true);
    notify(j);
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return false;
    *p = q;
    *cap = n;
    return true;
}

void server_job_emit(struct server_job *j, const char *text, size_t len, const uint32_t *ids,
                     uint32_t n_ids)
{
    size_t t_len = atomic_load_explicit(&j->text_len, memory_order_relaxed);
    uint32_t i_len = atomic_load_explicit(&j->n_ids, memory_order_relaxed);
    bool locked = false;
    if (t_len + len + 1 > j->text_cap || (size_t)i_len + n_ids > j->ids_cap) {
        /* the rare path: the connection must not copy while a buffer moves */
        pthread_mutex_lock(&j->mu);
        locked = true;
        size_t ids_cap = j->ids_cap;
        bool ok = grow((void **)&j->text, &j->text_cap, t_len + len + 1, 1) &&
                  grow((void **)&j->ids, &ids_cap, (size_t)i_len + n_ids, sizeof *ids);
        j->ids_cap = (uint32_t)ids_cap;
        if (!ok) {
            pthread_mutex_unlock(&j->mu);
            return; /* out of memory: this text is lost, the answer goes on */
        }
    }
    memcpy(j->text + t_len, text, len);
    j->text[t_len + len] = 0;
    memcpy(j->ids + i_len, ids, n_ids * sizeof *ids);
    atomic_store_explicit(&j->text_len, t_len + len, memory_order_release);
    atomic_store_explicit(&j->n_ids, i_len + n_ids, memory_order_release);
    if (locked) pthread_mutex_unlock(&j->mu);
    notify(j);
}

void server_job_finish(struct server_job *j, enum api_finish finish, const struct api_usage *u)
{
    metrics_count_tokens(&j->srv->metrics, u->prompt_tokens, u->completion_tokens);
    j->finish = finish;
    j->usage = *u;
    atomic_store(&j->state, JOB_DONE);
    notify(j);
}

void server_job_fail(struct server_job *j, const struct api_error *e)
{
    j->error = *e;
    atomic_store(&j->state, JOB_FAILED);
    notify(j);
}

bool server_job_cancelled(const struct server_job *j)
{
    return atomic_load(&((struct server_job *)j)->cancelled);
}

void server_job_release(struct server_job *j)
{
    struct server *s = j->srv;
    pthread_mutex_lock(&s->mu);
    s->n_jobs--;
    pthread_mutex_unlock(&s->mu);
    job_unref(j);
}

void server_set_load(struct server *s, uint32_t running, uint32_t queued)
{
    atomic_store(&s->running, running);
    atomic_store(&s->queued, queued);
}

struct metrics *server_metrics(struct server *s)
{
    return &s->metrics;
}

uint16_t server_port(const struct server *s)
{
    return s->port;
}

/* ---- responses ---- */

static enum MHD_Result respond(struct conn *c, struct MHD_Connection *mc, int status,
                               const char *type, char *body, size_t len)
{
    if (!body) {
        status = 500;
        type = "application/json";
        body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                      "\"param\":null,\"code\":null}}");
        len = body ? strlen(body) : 0;
        if (!body) return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == 405) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
                                c->endpoint <= METRICS_CHAT ? "POST" : "GET");
    }
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 503 || status == 429)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result ok = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    metrics_count_request(&c->srv->metrics, c->endpoint, status);
    c->responded = true;
    return ok;
}

static enum MHD_Result respond_error(struct conn *c, struct MHD_Connection *mc,
                                     const struct api_error *e)
{
    size_t len = 0;
    char *body = api_write_error(e, false, &len);
    return respond(c, mc, e->http_status, "application/json", body, len);
}

static enum MHD_Result fail(struct conn *c, struct MHD_Connection *mc, int status, const char *type,
                            const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static enum MHD_Result fail(struct conn *c, struct MHD_Connection *mc, int status, const char *type,
                            const char *param, const char *fmt, ...)
{
    struct api_error e;
    char msg[sizeof e.message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_error_set(&e, status, type, param, "%s", msg);
    return respond_error(c, mc, &e);
}

/* ---- waiting for the main loop ---- */

static void mark_cancelled(struct server *s, struct server_job *j)
{
    if (!atomic_exchange(&j->cancelled, true)) {
        pthread_mutex_lock(&s->mu);
        atomic_fetch_add(&s->events, 1);
        pthread_mutex_unlock(&s->mu);
        pthread_cond_signal(&s->cv_main);
    }
}

/* libmicrohttpd counts the time a connection's thread spent waiting for the main loop as
 * the client's idleness; after a wait, restart its timeout clock (setting the timeout from 0
 * restarts it, as documented for MHD_CONNECTION_OPTION_TIMEOUT). */
static void touch(struct conn *c)
{
    MHD_set_connection_option(c->mc, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    MHD_set_connection_option(c->mc, MHD_CONNECTION_OPTION_TIMEOUT, c->srv->cfg.client_timeout);
}

enum wait_result { WAIT_READY, WAIT_GONE, WAIT_CLOSING };

/* Waits until ready(j) holds, the client leaves (its socket closes) or the server closes. */
static enum wait_result wait_for(struct server *s, struct server_job *j, int fd,
                                 bool (*ready)(const struct server_job *))
{
    while (!ready(j)) {
        if (atomic_load(&s->closing)) return WAIT_CLOSING;
        struct pollfd p[2] = {{.fd = j->efd, .events = POLLIN}, {.fd = fd, .events = POLLRDHUP}};
        int n = poll(p, fd >= 0 ? 2 : 1, WAIT_SLICE_MS);
        if (n > 0 && (p[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t got = read(j->efd, &v, sizeof v);
            (void)got; /* resets the counter; nothing else to learn */
        }
        if (ready(j)) break;
        if (n > 0 && fd >= 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
            mark_cancelled(s, j);
            return WAIT_GONE;
        }
    }
    return WAIT_READY;
}

static bool is_accepted(const struct server_job *j)
{
    return atomic_load(&j->accepted) || atomic_load(&j->state) >= JOB_DONE;
}

static bool is_ended(const struct server_job *j)
{
    return atomic_load(&j->state) >= JOB_DONE;
}

static bool has_news(const struct server_job *j)
{
    return atomic_load(&j->state) >= JOB_DONE || atomic_load(&j->text_len) > j->text_read ||
           atomic_load(&j->n_ids) > j->ids_read;
}

static void closing_error(const struct server *s, struct api_error *e)
{
    api_error_set(e, 503, "server_error", NULL, "%s", s->close_msg);
}

/* ---- streaming ---- */

static struct api_answer answer_of(const struct server_job *j)
{
    return (struct api_answer){
        .kind = j->req.kind, .id = j->id, .created = j->created, .model = j->srv->cfg.model_name};
}

static bool append(struct conn *c, char *piece, size_t len)
{
    if (!piece) return false;
    char *out = realloc(c->out, c->out_len + len + 1);
    if (!out) {
        free(piece);
        return false;
    }
    memcpy(out + c->out_len, piece, len);
    c->out = out;
    c->out_len += len;
    free(piece);
    return true;
}

/* Waits for the job's next news and turns it into SSE bytes in c->out. Returns false when
 * the client is gone (or memory ran out): the stream ends with an error. */
static bool next_events(struct conn *c)
{
    struct server *s = c->srv;
    struct server_job *j = c->job;
    struct api_answer a = answer_of(j);
    enum wait_result w = wait_for(s, j, c->fd, has_news);
    if (w == WAIT_GONE) return false;
    /* the state first: what was published before it became final is all there is */
    enum job_state state = w == WAIT_CLOSING ? JOB_FAILED : atomic_load(&j->state);
    pthread_mutex_lock(&j->mu);
    size_t n_text = atomic_load(&j->text_len) - j->text_read;
    uint32_t n_ids = atomic_load(&j->n_ids) - j->ids_read;
    char *text = malloc(n_text + 1);
    uint32_t *ids = malloc(((size_t)n_ids + 1) * sizeof *ids);
    if (!text || !ids) {
        pthread_mutex_unlock(&j->mu);
        free(text);
        free(ids);
        return false;
    }
    memcpy(text, j->text + j->text_read, n_text);
    memcpy(ids, j->ids + j->ids_read, n_ids * sizeof *ids);
    j->text_read += n_text;
    j->ids_read += n_ids;
    pthread_mutex_unlock(&j->mu);
    /* the end's details were written before the state said so */
    struct api_error e = {0};
    enum api_finish finish = API_FINISH_LENGTH;
    struct api_usage usage = {0};
    if (w == WAIT_CLOSING)
        closing_error(s, &e);
    else if (state == JOB_FAILED)
        e = j->error;
    if (state == JOB_DONE) {
        finish = j->finish;
        usage = j->usage;
    }

    const uint32_t *ret_ids = j->req.return_token_ids ? ids : NULL;
    bool ok = true;
    size_t len = 0;
    char *piece;
    bool first = !j->first_sent;
    if (n_text || n_ids || (first && j->req.kind == API_CHAT)) {
        piece = api_write_chunk(&a, text, n_text, ret_ids, n_ids, first, NULL, &len);
        ok = append(c, piece, len);
        j->first_sent = true;
    }
    if (ok && state == JOB_DONE) {
        piece = api_write_chunk(&a, "", 0, ret_ids, 0, false, api_finish_name(finish), &len);
        ok = append(c, piece, len);
        if (ok && j->req.include_usage) {
            piece = api_write_usage_chunk(&a, &usage, &len);
            ok = append(c, piece, len);
        }
        if (ok) ok = append(c, strdup(API_SSE_DONE), strlen(API_SSE_DONE));
        c->ended = true;
    } else if (ok && state == JOB_FAILED) {
        piece = api_write_error(&e, true, &len);
        ok = append(c, piece, len);
        c->ended = true;
    }
    free(text);
    free(ids);
    return ok;
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct conn *c = cls;
    while (c->out_off == c->out_len) {
        if (c->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        c->out_len = c->out_off = 0;
        if (!next_events(c)) return MHD_CONTENT_READER_END_WITH_ERROR;
        touch(c);
    }
    size_t n = c->out_len - c->out_off;
    if (n > max) n = max;
    memcpy(buf, c->out + c->out_off, n);
    c->out_off += n;
    return (ssize_t)n;
}

/* ---- generation requests ---- */

static enum MHD_Result handle_generate(struct conn *c, struct MHD_Connection *mc,
                                       enum api_kind kind)
{
    struct server *s = c->srv;
    struct server_job *j = calloc(1, sizeof *j);
    if (!j) return fail(c, mc, 500, "server_error", NULL, "out of memory");
    struct api_error e;
    if (api_request_parse(kind, c->body ? c->body : "", c->len, &s->cfg.lim, &j->req, &e)) {
        api_request_free(&j->req);
        free(j);
        return respond_error(c, mc, &e);
    }
    j->srv = s;
    j->refs = 2;
    j->arrival = stf_now();
    j->created = (long long)time(NULL);
    snprintf(j->id, sizeof j->id, "%s-%llx%06llx", kind == API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)s->started, (unsigned long long)atomic_fetch_add(&s->seq, 1));
    pthread_mutex_init(&j->mu, NULL);
    if ((j->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        j->refs = 1;
        job_unref(j);
        return fail(c, mc, 500, "server_error", NULL, "cannot create an eventfd: %s",
                    strerror(errno));
    }
    pthread_mutex_lock(&s->mu);
    int refuse = atomic_load(&s->closing)                       ? 503
                 : s->n_jobs >= s->cfg.slots + s->cfg.max_queue ? 429
                                                                : 0;
    if (refuse) {
        uint32_t n_jobs = s->n_jobs;
        pthread_mutex_unlock(&s->mu);
        j->refs = 1;
        job_unref(j);
        if (refuse == 503) return fail(c, mc, 503, "server_error", NULL, "%s", s->close_msg);
        return fail(c, mc, 429, "rate_limit_error", NULL,
                    "the server is busy: %u requests are running or queued (--slots %u + "
                    "--max-queue %u); retry later",
                    n_jobs, s->cfg.slots, s->cfg.max_queue);
    }
    s->n_jobs++;
    s->n_answering++;
    if (s->in_tail)
        s->in_tail->next = j;
    else
        s->in_head = j;
    s->in_tail = j;
    c->job = j;
    atomic_fetch_add(&s->events, 1);
    pthread_mutex_unlock(&s->mu);
    pthread_cond_signal(&s->cv_main);
    enum wait_result w = wait_for(s, j, c->fd, j->req.stream ? is_accepted : is_ended);
    touch(c);
    if (w != WAIT_READY) {
        if (w == WAIT_GONE) return MHD_NO; /* nobody to answer */
        closing_error(s, &e);
        return respond_error(c, mc, &e);
    }
    if (atomic_load(&j->state) == JOB_FAILED) {
        e = j->error;
        return respond_error(c, mc, &e);
    }
    if (!j->req.stream) { /* JOB_DONE: the main loop writes nothing more */
        struct api_answer a = answer_of(j);
        size_t len = 0;
        char *body = api_write_answer(&a, j->text ? j->text : "", atomic_load(&j->text_len),
                                      j->finish, &j->usage, j->req.return_token_ids ? j->ids : NULL,
                                      atomic_load(&j->n_ids), &len);
        return respond(c, mc, 200, "application/json", body, len);
    }
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, read_stream, c, NULL);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ok = MHD_queue_response(mc, 200, r);
    MHD_destroy_response(r);
    metrics_count_request(&s->metrics, c->endpoint, 200);
    c->responded = true;
    return ok;
}

/* ---- routing ---- */

static const struct {
    const char *path, *method;
    enum metrics_endpoint endpoint;
} routes[] = {
    {"/v1/completions", "POST", METRICS_COMPLETIONS},
    {"/v1/chat/completions", "POST", METRICS_CHAT},
    {"/v1/models", "GET", METRICS_MODELS},
    {"/health", "GET", METRICS_HEALTH},
    {"/metrics", "GET", METRICS_OTHER},
};

static bool authorized(const struct server *s, struct MHD_Connection *mc)
{
    if (!s->cfg.api_key) return true;
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    size_t n = strlen(s->cfg.api_key), m = strlen(h);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) /* the same time whatever the key's first mismatch */
        diff |= (unsigned)(s->cfg.api_key[i] ^ (i < m ? h[i] : 0));
    return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    struct server *s = cls;
    struct conn *c = *con_cls;
    if (!c) {
        /* headers are in: route, authenticate and check the announced size first */
        if (!(c = calloc(1, sizeof *c))) return MHD_NO;
        c->srv = s;
        c->mc = mc;
        c->fd = -1;
        *con_cls = c;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) c->fd = ci->connect_fd;
        int route = -1;
        for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
            if (strcmp(url, routes[i].path) == 0) route = (int)i;
        c->endpoint = route < 0 ? METRICS_OTHER : routes[route].endpoint;
        if (route < 0)
            return fail(c, mc, 404, "invalid_request_error", NULL,
                        "no such endpoint: %.200s (see docs/server.md)", url);
        if (strcmp(method, routes[route].method) != 0)
            return fail(c, mc, 405, "invalid_request_error", NULL, "%s needs %s, not %.20s",
                        routes[route].path, routes[route].method, method);
        if (c->endpoint != METRICS_HEALTH && !authorized(s, mc))
            return fail(c, mc, 401, "authentication_error", NULL,
                        "a valid `Authorization: Bearer <key>` header is required");
        const char *cl =
            MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body)
            return fail(c, mc, 413, "invalid_request_error", NULL,
                        "the body is larger than the limit of %zu bytes", s->cfg.max_body);
        return MHD_YES;
    }
    if (c->responded) { /* an early answer is queued: drop whatever else arrives */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (c->too_big || c->len + *upload_size > s->cfg.max_body) {
            /* libmicrohttpd answers only once the upload is over: drop the bytes, answer 413
             * then; a client that keeps sending far beyond the limit is disconnected */
            c->too_big = true;
            c->dropped += *upload_size;
            *upload_size = 0;
            return c->dropped > 4 * s->cfg.max_body + (1u << 20) ? MHD_NO : MHD_YES;
        }
        if (!grow((void **)&c->body, &c->cap, c->len + *upload_size + 1, 1)) return MHD_NO;
        memcpy(c->body + c->len, upload, *upload_size);
        c->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->too_big)
        return fail(c, mc, 413, "invalid_request_error", NULL,
                    "the body is larger than the limit of %zu bytes", s->cfg.max_body);
    switch (c->endpoint) {
    case METRICS_COMPLETIONS:
        return handle_generate(c, mc, API_COMPLETION);
    case METRICS_CHAT:
        return handle_generate(c, mc, API_CHAT);
    case METRICS_MODELS: {
        size_t len = 0;
        char *body = api_write_models(s->cfg.model_name, s->started, &len);
        return respond(c, mc, 200, "application/json", body, len);
    }
    case METRICS_HEALTH: {
        bool closing = atomic_load(&s->closing);
        char *body = strdup(closing ? "{\"status\":\"closing\"}" : "{\"status\":\"ok\"}");
        return respond(c, mc, closing ? 503 : 200, "application/json", body,
                       body ? strlen(body) : 0);
    }
    case METRICS_OTHER: {
        uint32_t running = atomic_load(&s->running), queued = atomic_load(&s->queued);
        size_t len = 0;
        char *body = metrics_render(&s->metrics, running, queued, &len);
        return respond(c, mc, 200, "text/plain; version=0.0.4", body, len);
    }
    }
    return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)mc;
    struct server *s = cls;
    struct conn *c = *con_cls;
    if (!c) return;
    if (c->job) {
        bool unfinished =
            atomic_load(&c->job->state) < JOB_DONE || (c->job->req.stream && !c->ended);
        if (code != MHD_REQUEST_TERMINATED_COMPLETED_OK && unfinished) mark_cancelled(s, c->job);
        job_unref(c->job);
        pthread_mutex_lock(&s->mu);
        s->n_answering--;
        pthread_mutex_unlock(&s->mu);
    }
    free(c->body);
    free(c->out);
    free(c);
    *con_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* a stream ended because its client left is not news */
    if (strstr(msg, "application error generating response")) return;
    fprintf(stderr, "sparsetf-dist: http: %s", msg);
}

/* ---- open/close ---- */

enum stf_status server_open(const struct server_config *cfg, struct server **out,
                            struct stf_error *err)
{
    *out = NULL;
    const char *addr = cfg->addr && cfg->addr[0] ? cfg->addr : "127.0.0.1";
    if (strcmp(addr, "localhost") == 0) addr = "127.0.0.1";
    /* numeric addresses only: no name lookup (which can hang) on start-up */
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST | AI_PASSIVE,
                             .ai_socktype = SOCK_STREAM},
                    *ai = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->port);
    int gai = getaddrinfo(addr, port, &hints, &ai);
    if (gai)
        return stf_fail(err, STF_ERR_ARG,
                        "--serve: cannot use address `%s` (an IPv4 or IPv6 address, or "
                        "localhost): %s",
                        addr, gai_strerror(gai));
    struct server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return stf_fail(err, STF_ERR_NOMEM, "out of memory");
    }
    s->cfg = *cfg;
    s->started = (long long)time(NULL);
    snprintf(s->close_msg, sizeof s->close_msg, "the server is shutting down");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_main, NULL);
    metrics_init(&s->metrics);
    signal(SIGPIPE, SIG_IGN);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | MHD_USE_POLL;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    unsigned limit = cfg->slots + cfg->max_queue + 64;
    s->d = MHD_start_daemon(
        flags, cfg->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->client_timeout, MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)512 * 1024, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        int e = errno;
        server_close(s, NULL);
        return stf_fail(err, STF_ERR_IO, "--serve: cannot listen on %s port %u: %s", addr,
                        cfg->port, strerror(e));
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    *out = s;
    return STF_OK;
}

void server_close(struct server *s, const char *message)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    if (message) snprintf(s->close_msg, sizeof s->close_msg, "%s", message);
    atomic_store(&s->closing, true);
    /* connections waiting for their jobs see `closing` within WAIT_SLICE_MS and answer (503,
     * or the answer the main loop gave): give them time to be sent before the sockets close */
    double t0 = stf_now();
    while (s->n_answering && stf_now() - t0 < 2.0) {
        pthread_mutex_unlock(&s->mu);
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    if (s->d) MHD_stop_daemon(s->d);
    struct server_job *j;
    while ((j = server_take(s)))
        server_job_release(j);
    metrics_destroy(&s->metrics);
    pthread_cond_destroy(&s->cv_main);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
