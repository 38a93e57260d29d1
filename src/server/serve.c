/* serve: see serve.h. */
#include "server/serve.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model_file.h"
#include "pipeline/engine.h"
#include "pipeline/text.h"
#include "server/server.h"
#include "server/stop.h"
#include "util/timer.h"

#define STEP_WAIT_S 0.002 /* the longest engine_step waits before new requests are looked at */
#define IDLE_WAIT_S 0.05  /* the longest an idle loop sleeps (signals are checked between) */

static volatile sig_atomic_t stop_signal;

static double cpu_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double thread_cpu(void)
{
    return cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
}

static void on_signal(int sig)
{
    stop_signal = sig;
}

enum req_state { REQ_FREE, REQ_WAITING, REQ_RUNNING };

/* One request as rank 0's loop sees it (a fixed pool of slots + max_queue entries). */
struct serve_req {
    enum req_state state;
    struct server_job *job;
    const struct api_request *r;
    uint64_t session;
    uint64_t order; /* arrival order: the oldest waiting request is submitted first */
    uint32_t *prompt;
    uint32_t n_prompt;
    uint32_t *ctx_ids; /* (1 + max_tokens): the prompt's last token, then the generated ids */
    uint32_t n_gen;
    size_t prefix_len; /* bytes decode(ctx_ids[0]) gives, not part of the completion */
    size_t sent;       /* completion bytes released */
    uint32_t ids_sent;
    bool stop_hit, cancel_sent;
    double t_last;
    struct serve *sv;
};

struct serve {
    const struct serve_options *o;
    struct engine *e;
    const struct model *m;
    struct server *srv;
    struct dist_text *text; /* NULL when the model embeds no tokenizer */
    struct api_limits lim;
    struct serve_req *reqs;
    uint32_t n_reqs, running, waiting;
    uint64_t arrivals;
    struct engine_callbacks cb;
    /* CPU time (immune to the host's other load): the engine's on this thread (inside
     * engine_step, callbacks excluded), and the serving work on it (the callbacks: decoding,
     * stop strings, hand-over; the loop: taking jobs, cancelling, submitting) */
    double cpu_engine, cpu_callbacks;
    double wall_engine; /* wall time inside engine_step, callbacks excluded */
    uint64_t tokens;
};

enum stf_status serve_parse_listen(const char *listen, char *addr, size_t cap, uint16_t *port,
                                   struct stf_error *err)
{
    addr[0] = 0;
    const char *p = listen;
    if (listen[0] == '[') { /* [v6]:PORT */
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':' || (size_t)(end - listen) > cap)
            return stf_fail(err, STF_ERR_ARG, "--serve `%s`: expected [ADDR]:PORT", listen);
        snprintf(addr, cap, "%.*s", (int)(end - listen - 1), listen + 1);
        p = end + 2;
    } else if (strchr(listen, ':')) {
        const char *colon = strrchr(listen, ':');
        if ((size_t)(colon - listen) >= cap)
            return stf_fail(err, STF_ERR_ARG, "--serve `%s`: address too long", listen);
        snprintf(addr, cap, "%.*s", (int)(colon - listen), listen);
        p = colon + 1;
    }
    char *end;
    unsigned long v = strtoul(p, &end, 10);
    if (!*p || *end || p[0] == '-' || v > 65535)
        return stf_fail(err, STF_ERR_ARG,
                        "--serve `%s`: expected [ADDR:]PORT with PORT in 0..65535 (0 = any free "
                        "port)",
                        listen);
    *port = (uint16_t)v;
    return STF_OK;
}

/* ---- requests ---- */

static void req_free(struct serve *sv, struct serve_req *q)
{
    if (q->state == REQ_RUNNING) sv->running--;
    if (q->state == REQ_WAITING) sv->waiting--;
    if (q->job) server_job_release(q->job);
    free(q->prompt);
    free(q->ctx_ids);
    memset(q, 0, sizeof *q);
}

static void req_fail(struct serve *sv, struct serve_req *q, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void req_fail(struct serve *sv, struct serve_req *q, int status, const char *fmt, ...)
{
    struct api_error e;
    char msg[sizeof e.message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_error_set(&e, status, status >= 500 ? "server_error" : "invalid_request_error", NULL, "%s",
                  msg);
    server_job_fail(q->job, &e);
    req_free(sv, q);
}

/* Releases the completion text decided so far (final: nothing more will come). */
static void release_text(struct serve_req *q, bool final)
{
    struct serve *sv = q->sv;
    const char *full = "";
    size_t len = 0;
    struct stf_error err;
    if (sv->text && !dist_text_decode(sv->text, q->ctx_ids, 1 + q->n_gen, &full, &err)) {
        len = strlen(full);
        if (len >= q->prefix_len) {
            full += q->prefix_len;
            len -= q->prefix_len;
        }
    }
    bool hit = false;
    size_t upto = stop_release((const char *const *)q->r->stop, q->r->n_stop, full, len, q->sent,
                               final, &hit);
    if (upto > q->sent || q->n_gen > q->ids_sent)
        server_job_emit(q->job, full + q->sent, upto - q->sent, q->ctx_ids + 1 + q->ids_sent,
                        q->n_gen - q->ids_sent);
    q->sent = upto;
    q->ids_sent = q->n_gen;
    if (hit) q->stop_hit = true;
}

static int on_token(void *user, uint64_t session, uint32_t token, const float *logits, bool last)
{
    (void)session, (void)logits;
    struct serve_req *q = user;
    if (q->state != REQ_RUNNING) return 1; /* already answered (the server is stopping) */
    double now = stf_now(), cpu0 = thread_cpu();
    q->sv->tokens++;
    struct metrics *mx = server_metrics(q->sv->srv);
    if (q->n_gen == 0)
        metrics_observe_ttft(mx, now - server_job_arrival(q->job));
    else
        metrics_observe_token(mx, now - q->t_last);
    q->t_last = now;
    q->ctx_ids[1 + q->n_gen++] = token;
    release_text(q, last);
    q->sv->cpu_callbacks += thread_cpu() - cpu0;
    return q->stop_hit && !last; /* a stop string ends the session here */
}

static void on_end(void *user, uint64_t session, enum engine_end reason)
{
    (void)session;
    struct serve_req *q = user;
    if (q->state != REQ_RUNNING) return; /* already answered (the server is stopping) */
    struct serve *sv = q->sv;
    struct api_usage u = {.prompt_tokens = q->n_prompt, .completion_tokens = q->n_gen};
    switch (reason) {
    case ENGINE_END_LENGTH:
    case ENGINE_END_EOS:
        if (!q->stop_hit) release_text(q, true);
        server_job_finish(
            q->job,
            reason == ENGINE_END_LENGTH && !q->stop_hit ? API_FINISH_LENGTH : API_FINISH_STOP, &u);
        break;
    case ENGINE_END_CANCELLED:
        if (q->stop_hit) server_job_finish(q->job, API_FINISH_STOP, &u);
        /* else its client left: nobody to answer */
        break;
    case ENGINE_END_ERROR:
        if (engine_end_message(sv->e)[0]) /* this request alone */
            req_fail(sv, q, 500, "generation stopped: %s", engine_end_message(sv->e));
        else
            req_fail(sv, q, 503, "the pipeline failed before the answer was complete");
        return;
    }
    req_free(sv, q);
}

/* A new job: tokenize, check against the context, accept (or answer 400). */
static void admit(struct serve *sv, struct server_job *j)
{
    struct serve_req *q = NULL;
    for (uint32_t i = 0; i < sv->n_reqs && !q; i++)
        if (sv->reqs[i].state == REQ_FREE) q = &sv->reqs[i];
    const struct api_request *r = server_job_request(j);
    if (!q) { /* cannot happen: the HTTP side admits at most n_reqs jobs */
        struct api_error e;
        api_error_set(&e, 429, "rate_limit_error", NULL, "the server is busy; retry later");
        server_job_fail(j, &e);
        server_job_release(j);
        return;
    }
    memset(q, 0, sizeof *q);
    q->job = j;
    q->r = r;
    q->sv = sv;
    q->state = REQ_WAITING;
    sv->waiting++;
    q->order = sv->arrivals++;
    struct stf_error err = {0};
    const struct model_config *cfg = &sv->m->cfg;
    if (r->prompt_text) {
        if (!sv->text) {
            req_fail(sv, q, 400,
                     "this model embeds no tokenizer: give the prompt as a list of token ids");
            return;
        }
        if (dist_text_encode(sv->text, r->prompt_text, cfg->bos_id, cfg->vocab_size, &q->prompt,
                             &q->n_prompt, &err)) {
            req_fail(sv, q, 400, "the prompt cannot be tokenized: %s", err.msg);
            return;
        }
    } else {
        q->n_prompt = r->n_prompt_ids;
        if (!(q->prompt = malloc(q->n_prompt * sizeof *q->prompt))) {
            req_fail(sv, q, 500, "out of memory");
            return;
        }
        memcpy(q->prompt, r->prompt_ids, q->n_prompt * sizeof *q->prompt);
    }
    struct api_error e;
    if (api_request_fit((struct api_request *)r, q->n_prompt, &sv->lim, &e)) {
        server_job_fail(j, &e);
        req_free(sv, q);
        return;
    }
    if (!(q->ctx_ids = malloc(((size_t)r->max_tokens + 1) * sizeof *q->ctx_ids))) {
        req_fail(sv, q, 500, "out of memory");
        return;
    }
    q->ctx_ids[0] = q->prompt[q->n_prompt - 1];
    const char *pre;
    if (sv->text && !dist_text_decode(sv->text, q->ctx_ids, 1, &pre, &err))
        q->prefix_len = strlen(pre);
    server_job_accept(j, q->n_prompt);
}

/* Submits the oldest waiting requests while slots are free. */
static void submit_waiting(struct serve *sv)
{
    while (sv->waiting && sv->running < sv->o->slots) {
        struct serve_req *q = NULL;
        for (uint32_t i = 0; i < sv->n_reqs; i++)
            if (sv->reqs[i].state == REQ_WAITING && (!q || sv->reqs[i].order < q->order))
                q = &sv->reqs[i];
        struct engine_request er = {.prompt = q->prompt,
                                    .n_prompt = q->n_prompt,
                                    .max_tokens = q->r->max_tokens,
                                    .sampling = q->r->sampling};
        struct stf_error serr = {0};
        if (engine_submit(sv->e, &er, &sv->cb, q, &q->session, &serr)) {
            /* nothing was queued: this request fails, the others go on */
            req_fail(sv, q, serr.status == STF_ERR_ARG ? 400 : 503, "%s", serr.msg);
            continue;
        }
        q->state = REQ_RUNNING;
        sv->waiting--;
        sv->running++;
    }
}

/* Clients that left: a waiting request is dropped, a running one cancelled in the engine
 * (its on_end frees it). */
static void reap_cancelled(struct serve *sv)
{
    for (uint32_t i = 0; i < sv->n_reqs; i++) {
        struct serve_req *q = &sv->reqs[i];
        if (q->state == REQ_FREE || !server_job_cancelled(q->job)) continue;
        if (q->state == REQ_WAITING) {
            req_free(sv, q);
        } else if (!q->cancel_sent) {
            q->cancel_sent = true;
            engine_cancel(sv->e, q->session);
        }
    }
}

static void fail_all(struct serve *sv, const char *msg)
{
    for (uint32_t i = 0; i < sv->n_reqs; i++) {
        struct serve_req *q = &sv->reqs[i];
        if (q->state == REQ_FREE) continue;
        if (q->state == REQ_RUNNING) engine_cancel(sv->e, q->session);
        req_fail(sv, q, 503, "%s", msg);
    }
}

static const char *model_id(const char *path, char *buf, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".stf") == 0) n -= 4;
    snprintf(buf, cap, "%.*s", (int)n, base);
    return buf;
}

enum stf_status serve_run(struct engine *e, const struct serve_options *o, struct stf_error *err)
{
    struct serve sv = {.o = o, .e = e, .m = engine_model(e)};
    sv.cb = (struct engine_callbacks){.on_token = on_token, .on_end = on_end};
    const struct model_config *cfg = &sv.m->cfg;
    char addr[256], name[128];
    uint16_t port;
    enum stf_status st = serve_parse_listen(o->listen, addr, sizeof addr, &port, err);
    if (st) return st;
    struct stf_error terr;
    if (dist_text_open(sv.m, &sv.text, &terr)) sv.text = NULL; /* ids-only prompts then */
    sv.lim = (struct api_limits){.vocab = cfg->vocab_size,
                                 .ctx = o->ctx,
                                 .max_prompt_bytes = o->max_prompt_bytes,
                                 .default_max_tokens = o->default_max_tokens,
                                 .defaults = o->defaults};
    sv.n_reqs = o->slots + o->max_queue;
    if (!(sv.reqs = calloc(sv.n_reqs, sizeof *sv.reqs))) {
        dist_text_close(sv.text);
        return stf_fail(err, STF_ERR_NOMEM, "out of memory");
    }
    struct server_config sc = {.addr = addr,
                               .port = port,
                               .api_key = o->api_key,
                               .slots = o->slots,
                               .max_queue = o->max_queue,
                               .max_body = o->max_body,
                               .client_timeout = o->client_timeout,
                               .model_name = model_id(o->model_path, name, sizeof name),
                               .lim = sv.lim};
    if ((st = server_open(&sc, &sv.srv, err))) {
        free(sv.reqs);
        dist_text_close(sv.text);
        return st;
    }
    stop_signal = 0;
    double last_metrics = 0; /* when rank 0's metrics were last set; -1: up to date */
    const double cpu_main0 = thread_cpu(), cpu_proc0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    fprintf(stderr,
            "sparsetf-dist: serving %s on http://%s%s%s:%u/v1 (%d rank%s, %u slots, queue %u, "
            "context %u)\n",
            name, strchr(addr, ':') ? "[" : "", addr[0] ? addr : "127.0.0.1",
            strchr(addr, ':') ? "]" : "", server_port(sv.srv), o->n_ranks,
            o->n_ranks == 1 ? "" : "s", o->slots, o->max_queue, o->ctx);
    fflush(stderr);
    while (!stop_signal) {
        struct server_job *j;
        while ((j = server_take(sv.srv)))
            admit(&sv, j);
        reap_cancelled(&sv);
        submit_waiting(&sv);
        server_set_load(sv.srv, sv.running, sv.waiting);
        if (engine_idle(e)) {
            if (last_metrics >= 0) { /* the last step's numbers, once */
                double wait = sv.wall_engine - sv.cpu_engine;
                metrics_set_ranks(server_metrics(sv.srv), 1, &sv.cpu_engine, &wait);
                last_metrics = -1;
            }
            server_wait(sv.srv, IDLE_WAIT_S);
            /* an idle multi-rank engine sends its keep-alive round the ring when due */
            if ((st = engine_step(e, 0, err))) break;
            continue;
        }
        double c0 = thread_cpu(), cb0 = sv.cpu_callbacks, w0 = stf_now();
        if ((st = engine_step(e, STEP_WAIT_S, err))) break;
        double w1 = stf_now(), cpu = thread_cpu() - c0 - (sv.cpu_callbacks - cb0);
        sv.cpu_engine += cpu;
        /* rank 0's wall time in the engine beyond its CPU: waiting for the stages (or for
         * the host's CPU) */
        sv.wall_engine += w1 - w0 - (sv.cpu_callbacks - cb0);
        if (last_metrics < 0) last_metrics = w1; /* busy again */
        if (w1 - last_metrics > 0.25) {
            double wait = sv.wall_engine - sv.cpu_engine;
            metrics_set_ranks(server_metrics(sv.srv), 1, &sv.cpu_engine, &wait);
            last_metrics = w1;
        }
    }
    char msg[1100];
    if (st)
        snprintf(msg, sizeof msg, "the pipeline failed: %s", err->msg);
    else
        snprintf(msg, sizeof msg, "the server is shutting down (signal %d)", (int)stop_signal);
    fail_all(&sv, msg);
    if (!st) {
        /* cancelled sessions come back from the stages before the job can end */
        st = engine_run_until_idle(e, err);
    }
    server_close(sv.srv, msg);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (!o->quiet && !st) {
        /* everything this thread did besides the engine is serving; so is all the CPU of the
         * HTTP threads (the process's less this thread's) */
        double main_cpu = thread_cpu() - cpu_main0;
        double http_cpu = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu_proc0 - main_cpu;
        double loop_cpu = main_cpu - sv.cpu_engine, n = sv.tokens ? (double)sv.tokens : 1;
        fprintf(stderr,
                "sparsetf-dist: stopped serving (%s); %llu tokens; CPU per token: engine %.1f "
                "us, serving %.1f us on rank 0's thread + %.1f us in the HTTP threads (%.2f %% "
                "of the engine's)\n",
                msg, (unsigned long long)sv.tokens, 1e6 * sv.cpu_engine / n, 1e6 * loop_cpu / n,
                1e6 * http_cpu / n,
                sv.cpu_engine > 0 ? 100 * (loop_cpu + http_cpu) / sv.cpu_engine : 0.0);
    }
    free(sv.reqs);
    dist_text_close(sv.text);
    return st;
}
