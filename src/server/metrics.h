/*
 * metrics: the server's counters for `GET /metrics`, in the Prometheus text format
 * (version 0.0.4). Rank 0's main loop records, HTTP threads render; one mutex guards all.
 *
 *   sparsetf_requests_total{endpoint,code}   answered requests
 *   sparsetf_prompt_tokens_total, sparsetf_completion_tokens_total
 *   sparsetf_token_latency_seconds           histogram: time between a request's tokens
 *   sparsetf_time_to_first_token_seconds     histogram: request arrival to first token
 *   sparsetf_requests_running, sparsetf_queue_depth   gauges (read from the server)
 *   sparsetf_rank_compute_seconds{rank}, sparsetf_rank_wait_seconds{rank}: rank 0's, live
 *     (the stages report their own only at the end of the job, in the shutdown summary)
 */
#ifndef STF_SERVER_METRICS_H
#define STF_SERVER_METRICS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_BUCKETS   14
#define METRICS_ENDPOINTS 5
#define METRICS_CODES     10
#define METRICS_MAX_RANKS 256

enum metrics_endpoint {
    METRICS_COMPLETIONS,
    METRICS_CHAT,
    METRICS_MODELS,
    METRICS_HEALTH,
    METRICS_OTHER
};

struct metrics_histogram {
    uint64_t counts[METRICS_BUCKETS + 1]; /* the last is +Inf */
    double sum;
    uint64_t n;
};

struct metrics {
    pthread_mutex_t mu;
    uint64_t requests[METRICS_ENDPOINTS][METRICS_CODES];
    uint64_t prompt_tokens, completion_tokens;
    struct metrics_histogram token_latency, ttft;
    int n_ranks;
    double rank_compute_s[METRICS_MAX_RANKS], rank_wait_s[METRICS_MAX_RANKS];
};

int metrics_init(struct metrics *m);
void metrics_destroy(struct metrics *m);
void metrics_count_request(struct metrics *m, enum metrics_endpoint e, int http_status);
void metrics_count_tokens(struct metrics *m, uint32_t prompt, uint32_t completion);
void metrics_observe_token(struct metrics *m, double seconds);
void metrics_observe_ttft(struct metrics *m, double seconds);
/* Per-rank compute and wait seconds so far (n <= METRICS_MAX_RANKS). */
void metrics_set_ranks(struct metrics *m, int n, const double *compute_s, const double *wait_s);
/* The whole page, malloc'd; running/queued are the gauges' current values. */
char *metrics_render(struct metrics *m, uint32_t running, uint32_t queued, size_t *len);

#endif
