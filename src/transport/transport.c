/* transport: the back-end independent part — argument checks, deadlines and polling with
 * back-off, and the traffic counters. */
#include "transport/transport_internal.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "util/timer.h"

int transport_rank(const struct transport *t)
{
    return t->rank;
}
int transport_size(const struct transport *t)
{
    return t->size;
}
const char *transport_kind(const struct transport *t)
{
    return t->ops->kind;
}

const struct transport_counters *transport_counters(const struct transport *t)
{
    return &t->counters;
}

const char *transport_host(void)
{
    static char host[256];
    if (!host[0] && gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "unknown-host");
    return host;
}

enum stf_status transport_split(struct transport *t, int color, int key, struct transport **out,
                                struct stf_error *err)
{
    *out = NULL;
    if (!t->ops->split)
        return stf_fail(err, STF_ERR_UNSUPPORTED, "%s transport cannot split communicators",
                        t->ops->kind);
    return t->ops->split(t, color, key, out, err);
}

void transport_close(struct transport *t)
{
    if (t) t->ops->close(t);
}

static enum stf_status check_peer(const struct transport *t, int peer, bool any_ok,
                                  const char *what, struct stf_error *err)
{
    if ((any_ok && peer == TRANSPORT_ANY_SOURCE) || (peer >= 0 && peer < t->size)) return STF_OK;
    return stf_fail(err, STF_ERR_ARG, "rank %d: %s rank %d outside 0..%d", t->rank, what, peer,
                    t->size - 1);
}

enum stf_status transport_isend(struct transport *t, int dest, int tag, const void *buf, size_t len,
                                int *req, struct stf_error *err)
{
    enum stf_status st = check_peer(t, dest, false, "send to", err);
    if (st) return st;
    if (len > (size_t)0x7fffffff)
        return stf_fail(err, STF_ERR_ARG, "rank %d: message of %zu bytes is too large", t->rank,
                        len);
    double t0 = stf_now();
    st = t->ops->isend(t, dest, tag, buf, len, req, err);
    t->counters.send_seconds += stf_now() - t0;
    if (!st) {
        t->counters.bytes_sent += len;
        t->counters.msgs_sent++;
    }
    return st;
}

enum stf_status transport_test(struct transport *t, int req, bool *done, struct stf_error *err)
{
    if (req < 0 || req >= TRANSPORT_MAX_REQUESTS)
        return stf_fail(err, STF_ERR_ARG, "rank %d: bad request %d", t->rank, req);
    return t->ops->test(t, req, done, err);
}

/* Polling back-off: spin briefly (lowest latency), then yield the core (ranks may share
 * cores), then sleep 100 us at a time (an idle rank costs almost nothing). */
struct backoff {
    double start;
};

static void backoff_pause(const struct backoff *b, double now)
{
    transport_pause(now - b->start);
}

void transport_pause(double waited)
{
    if (waited < 50e-6) return;
    if (waited < 2e-3) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
}

enum stf_status transport_wait(struct transport *t, int req, double timeout, struct stf_error *err)
{
    struct backoff b = {stf_now()};
    for (;;) {
        bool done = false;
        enum stf_status st = transport_test(t, req, &done, err);
        double now = stf_now();
        if (st || done) {
            t->counters.wait_seconds += now - b.start;
            return st;
        }
        if (now - b.start > timeout) {
            t->counters.wait_seconds += now - b.start;
            return stf_fail(err, STF_ERR_TRANSPORT,
                            "rank %d: a send did not complete within %.0f s (the receiving rank "
                            "is stuck or gone)",
                            t->rank, timeout);
        }
        backoff_pause(&b, now);
    }
}

enum stf_status transport_send(struct transport *t, int dest, int tag, const void *buf, size_t len,
                               double timeout, struct stf_error *err)
{
    int req;
    enum stf_status st = transport_isend(t, dest, tag, buf, len, &req, err);
    if (st) return st;
    st = transport_wait(t, req, timeout, err);
    if (st) stf_wrap(err, "sending %zu bytes to rank %d", len, dest);
    return st;
}

enum stf_status transport_iprobe(struct transport *t, int source, bool *found,
                                 struct transport_msg *msg, struct stf_error *err)
{
    *found = false;
    enum stf_status st = check_peer(t, source, true, "probe of", err);
    if (st) return st;
    return t->ops->iprobe(t, source, found, msg, err);
}

enum stf_status transport_probe(struct transport *t, int source, double timeout,
                                const char *waiting_for, struct transport_msg *msg,
                                struct stf_error *err)
{
    struct backoff b = {stf_now()};
    for (;;) {
        bool found = false;
        enum stf_status st = transport_iprobe(t, source, &found, msg, err);
        double now = stf_now();
        if (st || found) {
            t->counters.wait_seconds += now - b.start;
            return st;
        }
        if (now - b.start > timeout) {
            t->counters.wait_seconds += now - b.start;
            char who[32];
            if (source == TRANSPORT_ANY_SOURCE)
                snprintf(who, sizeof who, "any rank");
            else
                snprintf(who, sizeof who, "rank %d", source);
            return stf_fail(err, STF_ERR_TRANSPORT,
                            "rank %d: timed out after %.0f s waiting for %s%s%s", t->rank, timeout,
                            who, waiting_for ? " to send " : "", waiting_for ? waiting_for : "");
        }
        backoff_pause(&b, now);
    }
}

enum stf_status transport_recv(struct transport *t, const struct transport_msg *msg, void *buf,
                               size_t cap, struct stf_error *err)
{
    enum stf_status st = check_peer(t, msg->source, false, "receive from", err);
    if (st) return st;
    if (msg->len > cap)
        return stf_fail(err, STF_ERR_PROTOCOL,
                        "rank %d: message of %zu bytes from rank %d exceeds the largest valid "
                        "frame (%zu bytes)",
                        t->rank, msg->len, msg->source, cap);
    st = t->ops->recv(t, msg, buf, err);
    if (!st) {
        t->counters.bytes_recv += msg->len;
        t->counters.msgs_recv++;
    }
    return st;
}

enum stf_status transport_gather(struct transport *t, int root, const void *send, size_t len,
                                 void *recv, struct stf_error *err)
{
    enum stf_status st = check_peer(t, root, false, "gather at", err);
    if (st) return st;
    double t0 = stf_now();
    st = t->ops->gather(t, root, send, len, recv, err);
    t->counters.collective_seconds += stf_now() - t0;
    return st;
}

enum stf_status transport_bcast(struct transport *t, int root, void *buf, size_t len,
                                struct stf_error *err)
{
    enum stf_status st = check_peer(t, root, false, "broadcast from", err);
    if (st) return st;
    double t0 = stf_now();
    st = t->ops->bcast(t, root, buf, len, err);
    t->counters.collective_seconds += stf_now() - t0;
    return st;
}

enum stf_status transport_allgather(struct transport *t, const void *send, size_t len, void *recv,
                                    double timeout, struct stf_error *err)
{
    if (len > (size_t)0x7fffffff / (size_t)t->size)
        return stf_fail(err, STF_ERR_ARG, "rank %d: allgather of %zu bytes per rank is too large",
                        t->rank, len);
    double t0 = stf_now();
    enum stf_status st = t->ops->allgather(t, send, len, recv, timeout, err);
    t->counters.collective_seconds += stf_now() - t0;
    if (!st) {
        t->counters.collectives++;
        t->counters.collective_bytes += (uint64_t)len * (uint64_t)t->size;
    }
    return st;
}

enum stf_status transport_barrier(struct transport *t, struct stf_error *err)
{
    double t0 = stf_now();
    enum stf_status st = t->ops->barrier(t, err);
    t->counters.collective_seconds += stf_now() - t0;
    return st;
}

_Noreturn void transport_abort(struct transport *t, int code)
{
    fflush(stdout);
    fflush(stderr);
    t->ops->abort(t, code);
    abort(); /* back ends do not return; this is belt and braces */
}
