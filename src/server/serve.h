/*
 * serve: `sparsetf-dist --serve [ADDR:]PORT` — rank 0's main loop when it serves HTTP. It
 * takes the requests the HTTP threads queued (server.h), tokenizes them, submits them to the
 * engine as sessions (at most one per cache slot; the rest wait, up to --max-queue), steps
 * the engine, and turns each sampled token into released text (stop strings matched on the
 * decoded text, stop.h) for the request's connection to send. The stages (ranks 1..N-1) run
 * as for any job; the server changes nothing on them.
 *
 * It returns on SIGINT/SIGTERM (requests still open get 503) or when the engine fails (every
 * open request gets 503 with the reason; the caller then ends the job as any failure).
 */
#ifndef STF_SERVER_SERVE_H
#define STF_SERVER_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/sampler.h"
#include "util/status.h"

struct engine;

struct serve_options {
    const char *listen;             /* "[ADDR:]PORT" (ADDR default 127.0.0.1; [v6]:PORT) */
    const char *api_key;            /* NULL: no authentication */
    uint32_t max_queue;             /* requests waiting beyond the slots before 429 */
    size_t max_body;                /* request body bytes */
    uint32_t max_prompt_bytes;      /* text prompt / rendered chat bytes */
    unsigned client_timeout;        /* seconds without progress before a client is dropped */
    uint32_t default_max_tokens;    /* when a request gives no max_tokens */
    struct sampler_params defaults; /* when a request gives no temperature/top_p/top_k/seed */
    const char *model_path;         /* its file name (without .stf) is the model's id */
    int n_ranks;
    uint32_t slots, ctx;
    bool quiet;
};

/* Splits "[ADDR:]PORT" into addr (cap bytes; "" when not given) and port. */
enum stf_status serve_parse_listen(const char *listen, char *addr, size_t cap, uint16_t *port,
                                   struct stf_error *err);

/* Serves until a signal or a failure (see above). e is open on rank 0; nothing else may use
 * it meanwhile. On a failure the engine is left as it is for the caller to abort the job. */
enum stf_status serve_run(struct engine *e, const struct serve_options *o, struct stf_error *err);

#endif
