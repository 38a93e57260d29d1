/* metrics: see metrics.h. */
#include "server/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* upper bounds in seconds; per-token decode on the bundled model is ~2 ms */
static const double bucket_le[METRICS_BUCKETS] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
                                                  0.1,    0.2,   0.5,   1,     2,    5,    10};
static const char *const endpoint_name[METRICS_ENDPOINTS] = {
    "/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "other"};
static const int codes[METRICS_CODES] = {200, 400, 401, 404, 405, 413, 429, 500, 503, 0};

int metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof *m);
    return pthread_mutex_init(&m->mu, NULL);
}

void metrics_destroy(struct metrics *m)
{
    pthread_mutex_destroy(&m->mu);
}

void metrics_count_request(struct metrics *m, enum metrics_endpoint e, int http_status)
{
    int c = METRICS_CODES - 1; /* 0: any other code */
    for (int i = 0; i < METRICS_CODES - 1; i++)
        if (codes[i] == http_status) c = i;
    pthread_mutex_lock(&m->mu);
    m->requests[e][c]++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_count_tokens(struct metrics *m, uint32_t prompt, uint32_t completion)
{
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += prompt;
    m->completion_tokens += completion;
    pthread_mutex_unlock(&m->mu);
}

static void observe(struct metrics *m, struct metrics_histogram *h, double s)
{
    int b = 0;
    while (b < METRICS_BUCKETS && s > bucket_le[b])
        b++;
    pthread_mutex_lock(&m->mu);
    h->counts[b]++;
    h->sum += s;
    h->n++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_observe_token(struct metrics *m, double seconds)
{
    observe(m, &m->token_latency, seconds);
}

void metrics_observe_ttft(struct metrics *m, double seconds)
{
    observe(m, &m->ttft, seconds);
}

void metrics_set_ranks(struct metrics *m, int n, const double *compute_s, const double *wait_s)
{
    if (n > METRICS_MAX_RANKS) n = METRICS_MAX_RANKS;
    pthread_mutex_lock(&m->mu);
    m->n_ranks = n;
    memcpy(m->rank_compute_s, compute_s, (size_t)n * sizeof *compute_s);
    memcpy(m->rank_wait_s, wait_s, (size_t)n * sizeof *wait_s);
    pthread_mutex_unlock(&m->mu);
}

static void write_histogram(FILE *f, const char *name, const char *help,
                            const struct metrics_histogram *h)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b < METRICS_BUCKETS; b++) {
        cum += h->counts[b];
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_le[b], (unsigned long long)cum);
    }
    cum += h->counts[METRICS_BUCKETS];
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
            (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->n);
}

char *metrics_render(struct metrics *m, uint32_t running, uint32_t queued, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return NULL;
    pthread_mutex_lock(&m->mu);
    fprintf(f, "# HELP sparsetf_requests_total HTTP requests answered, by endpoint and status.\n"
               "# TYPE sparsetf_requests_total counter\n");
    for (int e = 0; e < METRICS_ENDPOINTS; e++)
        for (int c = 0; c < METRICS_CODES; c++)
            if (m->requests[e][c] || (c == 0 && e < 2)) {
                char code[16];
                snprintf(code, sizeof code, codes[c] ? "%d" : "other", codes[c]);
                fprintf(f, "sparsetf_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n",
                        endpoint_name[e], code, (unsigned long long)m->requests[e][c]);
            }
    fprintf(f,
            "# HELP sparsetf_prompt_tokens_total Prompt tokens of accepted requests.\n"
            "# TYPE sparsetf_prompt_tokens_total counter\nsparsetf_prompt_tokens_total %llu\n"
            "# HELP sparsetf_completion_tokens_total Generated tokens.\n"
            "# TYPE sparsetf_completion_tokens_total counter\n"
            "sparsetf_completion_tokens_total %llu\n",
            (unsigned long long)m->prompt_tokens, (unsigned long long)m->completion_tokens);
    write_histogram(f, "sparsetf_token_latency_seconds",
                    "Time between consecutive generated tokens of a request.", &m->token_latency);
    write_histogram(f, "sparsetf_time_to_first_token_seconds",
                    "Time from a request's arrival to its first generated token.", &m->ttft);
    fprintf(f,
            "# HELP sparsetf_requests_running Requests holding a pipeline session.\n"
            "# TYPE sparsetf_requests_running gauge\nsparsetf_requests_running %u\n"
            "# HELP sparsetf_queue_depth Requests waiting for a session (--max-queue bounds it).\n"
            "# TYPE sparsetf_queue_depth gauge\nsparsetf_queue_depth %u\n",
            running, queued);
    fprintf(f, "# HELP sparsetf_rank_compute_seconds CPU time of each pipeline rank in the engine "
               "(live: rank 0).\n"
               "# TYPE sparsetf_rank_compute_seconds counter\n");
    for (int r = 0; r < m->n_ranks; r++)
        fprintf(f, "sparsetf_rank_compute_seconds{rank=\"%d\"} %.6f\n", r, m->rank_compute_s[r]);
    fprintf(f, "# HELP sparsetf_rank_wait_seconds Time each pipeline rank spent in the engine "
               "beyond its CPU time: waiting for peers or for a core (live: rank 0).\n"
               "# TYPE sparsetf_rank_wait_seconds counter\n");
    for (int r = 0; r < m->n_ranks; r++)
        fprintf(f, "sparsetf_rank_wait_seconds{rank=\"%d\"} %.6f\n", r, m->rank_wait_s[r]);
    pthread_mutex_unlock(&m->mu);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    if (len) *len = n;
    return buf;
}
