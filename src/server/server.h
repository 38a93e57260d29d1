/*
 * server: the HTTP side of `sparsetf-dist --serve` — libmicrohttpd listening on rank 0,
 * routing, limits, authentication, and the hand-over of generation requests ("jobs") to
 * rank 0's main loop, which alone talks to the engine (serve.c).
 *
 * Threads. libmicrohttpd runs one thread per connection. Those threads parse and check a
 * request, then put a job on a queue and wait; they never call the engine or the
 * tokenizer. The main loop takes jobs (server_take), answers each through the
 * server_job_* calls below (text as it is released, then the end), and the connection's
 * thread writes it: a whole body, or server-sent events as text arrives (a content-reader
 * callback that waits on the job's condition variable). A client that goes away (closed
 * socket, or no progress for --client-timeout seconds) marks its job cancelled, which the
 * main loop sees with server_job_cancelled.
 *
 * Ownership: a job is shared by its connection and the main loop (a reference each);
 * server_job_release drops the main loop's. Pointers from server_job_request are valid
 * until then.
 */
#ifndef STF_SERVER_SERVER_H
#define STF_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/api.h"
#include "server/metrics.h"
#include "util/status.h"

struct server_config {
    const char *addr;        /* IPv4 or IPv6 literal, or "localhost"; default 127.0.0.1 */
    uint16_t port;           /* 0 = any free port (server_port tells which) */
    const char *api_key;     /* NULL = no authentication */
    uint32_t slots;          /* requests generating at once */
    uint32_t max_queue;      /* requests waiting beyond slots before 429 */
    size_t max_body;         /* request body bytes (413 beyond) */
    unsigned client_timeout; /* seconds without progress before a connection is dropped */
    const char *model_name;  /* the id in /v1/models and in answers */
    struct api_limits lim;
};

struct server;
struct server_job;

enum stf_status server_open(const struct server_config *cfg, struct server **out,
                            struct stf_error *err);
/* Answers every unfinished job with 503 (message), stops listening and waits for the
 * connections' threads. */
void server_close(struct server *s, const char *message);
uint16_t server_port(const struct server *s);
struct metrics *server_metrics(struct server *s);

/* ---- rank 0's main loop ---- */

/* The oldest job not yet taken, or NULL. */
struct server_job *server_take(struct server *s);
/* Blocks up to timeout seconds until a job arrives or a client leaves. */
void server_wait(struct server *s, double timeout);

const struct api_request *server_job_request(const struct server_job *j);
/* The request's arrival time (stf_now clock). */
double server_job_arrival(const struct server_job *j);
/* The prompt was checked (n_prompt tokens): a streaming answer's headers go out now. */
void server_job_accept(struct server_job *j, uint32_t n_prompt);
/* Appends released completion text and the generated token ids since the last call. */
void server_job_emit(struct server_job *j, const char *text, size_t len, const uint32_t *ids,
                     uint32_t n_ids);
void server_job_finish(struct server_job *j, enum api_finish finish, const struct api_usage *u);
/* Answers with e (before the headers went out: e->http_status; after: an error event). */
void server_job_fail(struct server_job *j, const struct api_error *e);
bool server_job_cancelled(const struct server_job *j);
/* The main loop is done with j (after finish/fail, or when it saw it cancelled). */
void server_job_release(struct server_job *j);

/* Gauges for /metrics: jobs taken and generating, and jobs waiting for a slot. */
void server_set_load(struct server *s, uint32_t running, uint32_t queued);

#endif
