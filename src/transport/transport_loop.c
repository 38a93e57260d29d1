/* transport_loop: n endpoints inside one process, for unit tests of code above the
 * transport. A send copies the bytes into the destination's queue at once (so every isend
 * completes immediately); probe and recv match the oldest queued message from a source, as
 * MPI's non-overtaking rule does. One mutex per communicator makes every call safe from
 * several threads; allgather and split are rendezvous of all endpoints, each in its own
 * thread (a tensor-parallel group in one process). Allocation here is not on a hot path. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "transport/transport_internal.h"

struct loop_msg {
    struct loop_msg *next;
    int source, tag;
    size_t len;
    unsigned char *bytes;
};

struct loop_hub {
    int n, open;
    struct loop_msg **queues; /* per destination, oldest first */
    unsigned char **gathered; /* per rank, the last gather contribution */
    unsigned char *bcast;     /* the root's last broadcast */
    size_t bcast_len;
    pthread_mutex_t lock; /* guards everything here */
    pthread_cond_t moved; /* a rendezvous changed phase */
    /* rendezvous of allgather and split: endpoints arrive (filling), the last one to arrive
     * completes it (draining), each leaves with its result, the last to leave resets */
    int arrived, left;
    bool draining;
    unsigned char *ag; /* n x ag_len bytes */
    size_t ag_len;
    int *split_color, *split_key; /* per rank */
    struct transport **split_out; /* per rank */
    enum stf_status split_status;
};

static void hub_free(struct loop_hub *hub)
{
    free(hub->queues);
    free(hub->gathered);
    free(hub->bcast);
    free(hub->ag);
    free(hub->split_color);
    free(hub->split_key);
    free(hub->split_out);
    pthread_mutex_destroy(&hub->lock);
    pthread_cond_destroy(&hub->moved);
    free(hub);
}

struct loop_impl {
    struct loop_hub *hub;
};

static const struct transport_ops loop_ops;

enum stf_status transport_loopback_create(int n, struct transport **endpoints,
                                          struct stf_error *err)
{
    if (n < 1) return stf_fail(err, STF_ERR_ARG, "loopback needs at least one endpoint, got %d", n);
    struct loop_hub *hub = calloc(1, sizeof *hub);
    if (!hub) goto fail;
    pthread_mutex_init(&hub->lock, NULL);
    pthread_cond_init(&hub->moved, NULL);
    if (!(hub->queues = calloc((size_t)n, sizeof *hub->queues)) ||
        !(hub->gathered = calloc((size_t)n, sizeof *hub->gathered)) ||
        !(hub->split_color = calloc((size_t)n, sizeof *hub->split_color)) ||
        !(hub->split_key = calloc((size_t)n, sizeof *hub->split_key)) ||
        !(hub->split_out = calloc((size_t)n, sizeof *hub->split_out)))
        goto fail;
    hub->n = n;
    for (int i = 0; i < n; i++) {
        struct transport *t = calloc(1, sizeof *t);
        struct loop_impl *li = calloc(1, sizeof *li);
        if (!t || !li) {
            free(t);
            free(li);
            for (int j = 0; j < i; j++)
                transport_close(endpoints[j]);
            if (i == 0) goto fail;
            return stf_fail(err, STF_ERR_NOMEM, "out of memory for loopback endpoints");
        }
        li->hub = hub;
        t->ops = &loop_ops;
        t->impl = li;
        t->rank = i;
        t->size = n;
        endpoints[i] = t;
        hub->open++;
    }
    return STF_OK;
fail:
    if (hub) hub_free(hub);
    return stf_fail(err, STF_ERR_NOMEM, "out of memory for loopback endpoints");
}

static void loop_close(struct transport *t)
{
    struct loop_impl *li = t->impl;
    struct loop_hub *hub = li->hub;
    pthread_mutex_lock(&hub->lock);
    struct loop_msg *m = hub->queues[t->rank];
    while (m) {
        struct loop_msg *next = m->next;
        free(m->bytes);
        free(m);
        m = next;
    }
    hub->queues[t->rank] = NULL;
    free(hub->gathered[t->rank]);
    hub->gathered[t->rank] = NULL;
    bool last = --hub->open == 0;
    pthread_mutex_unlock(&hub->lock);
    if (last) hub_free(hub);
    free(li);
    free(t);
}

static enum stf_status loop_isend(struct transport *t, int dest, int tag, const void *buf,
                                  size_t len, int *req, struct stf_error *err)
{
    struct loop_hub *hub = ((struct loop_impl *)t->impl)->hub;
    struct loop_msg *m = calloc(1, sizeof *m);
    if (!m || (len && !(m->bytes = malloc(len)))) {
        free(m);
        return stf_fail(err, STF_ERR_NOMEM, "loopback: out of memory for a message");
    }
    if (len) memcpy(m->bytes, buf, len);
    m->source = t->rank;
    m->tag = tag;
    m->len = len;
    pthread_mutex_lock(&hub->lock);
    struct loop_msg **tail = &hub->queues[dest];
    while (*tail)
        tail = &(*tail)->next;
    *tail = m;
    pthread_mutex_unlock(&hub->lock);
    *req = 0;
    return STF_OK;
}

static enum stf_status loop_test(struct transport *t, int req, bool *done, struct stf_error *err)
{
    (void)t, (void)req, (void)err;
    *done = true;
    return STF_OK;
}

static struct loop_msg **find(struct transport *t, int source, int tag)
{
    struct loop_hub *hub = ((struct loop_impl *)t->impl)->hub;
    for (struct loop_msg **m = &hub->queues[t->rank]; *m; m = &(*m)->next)
        if ((source == TRANSPORT_ANY_SOURCE || (*m)->source == source) &&
            (tag < 0 || (*m)->tag == tag))
            return m;
    return NULL;
}

static enum stf_status loop_iprobe(struct transport *t, int source, bool *found,
                                   struct transport_msg *msg, struct stf_error *err)
{
    (void)err;
    struct loop_hub *hub = ((struct loop_impl *)t->impl)->hub;
    pthread_mutex_lock(&hub->lock);
    struct loop_msg **m = find(t, source, -1);
    *found = m != NULL;
    if (m) *msg = (struct transport_msg){(*m)->source, (*m)->tag, (*m)->len};
    pthread_mutex_unlock(&hub->lock);
    return STF_OK;
}

static enum stf_status loop_recv(struct transport *t, const struct transport_msg *msg, void *buf,
                                 struct stf_error *err)
{
    struct loop_hub *hub = ((struct loop_impl *)t->impl)->hub;
    pthread_mutex_lock(&hub->lock);
    struct loop_msg **at = find(t, msg->source, msg->tag);
    struct loop_msg *m = at ? *at : NULL;
    if (m && m->len == msg->len) *at = m->next;
    pthread_mutex_unlock(&hub->lock);
    if (!m)
        return stf_fail(err, STF_ERR_TRANSPORT, "loopback rank %d: no message from rank %d",
                        t->rank, msg->source);
    if (m->len != msg->len)
        return stf_fail(err, STF_ERR_TRANSPORT, "loopback rank %d: message length changed",
                        t->rank);
    if (m->len) memcpy(buf, m->bytes, m->len);
    free(m->bytes);
    free(m);
    return STF_OK;
}

static enum stf_status loop_gather_locked(struct transport *t, int root, const void *send,
                                          size_t len, void *recv, struct stf_error *err)
{
    struct loop_hub *hub = ((struct loop_impl *)t->impl)->hub;
    if (t->rank != root) {
        free(hub->gathered[t->rank]);
        if (!(hub->gathered[t->rank] = malloc(len ? len : 1)))
            return stf_fail(err, STF_ERR_NOMEM, "loopback: out of memory in gather");
        memcpy(hub->gathered[t->rank], send, len);
        return STF_OK;
    }
    for (int i = 0; i < hub->n; i++) {
        const void *src = i == root ? send : hub->gathered[i];
        if (!src)
            return stf_fail(err, STF_ERR_TRANSPORT,
                            "loopback gather: rank %d has not contributed before the root", i);
        memcpy((unsigned char *)recv + (size_t)i * len, src, len);
    }
    return STF_OK;
}

static enum stf_status loop_bcast_locked(struct transport *t, int root, void *buf, size_t len,
                                         struct stf_error *err)
{
    struct loop_hub *hub = ((struct loop_impl *)t->impl)->hub;
    if (t->rank == root) {
        free(hub->bcast);
        if (!(hub->bcast = malloc(len ? len : 1)))
            return stf_fail(err, STF_ERR_NOMEM, "loopback: out of memory in broadcast");
        memcpy(hub->bcast, buf, len);
        hub->bcast_len = len;
        return STF_OK;
    }
    if (!hub->bcast || hub->bcast_len != len)
        return stf_fail(err, STF_ERR_TRANSPORT,
                        "loopback broadcast: the root has not broadcast %zu bytes", len);
    memcpy(buf, hub->bcast, len);
    return STF_OK;
}

static enum stf_status loop_gather(struct transport *t, int root, const void *send, size_t len,
                                   void *recv, struct stf_error *err)
{
    struct loop_hub *hub = ((struct loop_impl *)t->impl)->hub;
    pthread_mutex_lock(&hub->lock);
    enum stf_status st = loop_gather_locked(t, root, send, len, recv, err);
    pthread_mutex_unlock(&hub->lock);
    return st;
}

static enum stf_status loop_bcast(struct transport *t, int root, void *buf, size_t len,
                                  struct stf_error *err)
{
    struct loop_hub *hub = ((struct loop_impl *)t->impl)->hub;
    pthread_mutex_lock(&hub->lock);
    enum stf_status st = loop_bcast_locked(t, root, buf, len, err);
    pthread_mutex_unlock(&hub->lock);
    return st;
}

/* Waits (lock held) until the hub leaves the phase `draining == from`, or fails after
 * timeout seconds: a partner thread that never arrives. */
static enum stf_status hub_wait(struct loop_hub *hub, bool from, double timeout, int rank,
                                const char *what, struct stf_error *err)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double whole = (double)until.tv_sec + until.tv_nsec * 1e-9 + timeout;
    until.tv_sec = (time_t)whole;
    until.tv_nsec = (long)((whole - (double)until.tv_sec) * 1e9);
    while (hub->draining == from)
        if (pthread_cond_timedwait(&hub->moved, &hub->lock, &until) == ETIMEDOUT &&
            hub->draining == from)
            return stf_fail(err, STF_ERR_TRANSPORT,
                            "loopback rank %d: %s: the other endpoints did not arrive within "
                            "%.0f s (loopback collectives need one thread per endpoint)",
                            rank, what, timeout);
    return STF_OK;
}

/* Arrival at a rendezvous: waits for the previous one to drain, runs `arrive` (lock held),
 * and for the last arrival `complete`; then waits for everyone. Returns with the lock held
 * in the draining phase; loop_leave ends it. */
static enum stf_status loop_enter(struct loop_hub *hub, int rank, double timeout, const char *what,
                                  bool *last, struct stf_error *err)
{
    enum stf_status st = hub_wait(hub, true, timeout, rank, what, err);
    if (st) return st;
    *last = ++hub->arrived == hub->n;
    return STF_OK;
}

static void loop_leave(struct loop_hub *hub)
{
    if (++hub->left == hub->n) {
        hub->arrived = hub->left = 0;
        hub->draining = false;
        pthread_cond_broadcast(&hub->moved);
    }
    pthread_mutex_unlock(&hub->lock);
}

static enum stf_status loop_allgather(struct transport *t, const void *send, size_t len, void *recv,
                                      double timeout, struct stf_error *err)
{
    struct loop_hub *hub = ((struct loop_impl *)t->impl)->hub;
    pthread_mutex_lock(&hub->lock);
    bool last = false;
    enum stf_status st = loop_enter(hub, t->rank, timeout, "allgather", &last, err);
    if (!st && hub->arrived == 1) { /* the first arrival sizes the buffer */
        unsigned char *b = realloc(hub->ag, (size_t)hub->n * len + 1);
        if (!b) st = stf_fail(err, STF_ERR_NOMEM, "loopback: out of memory in allgather");
        hub->ag = b ? b : hub->ag;
        hub->ag_len = len;
    }
    if (!st && hub->ag_len != len)
        st =
            stf_fail(err, STF_ERR_ARG, "loopback allgather: rank %d gives %zu bytes, rank 0..: %zu",
                     t->rank, len, hub->ag_len);
    if (st) {
        pthread_mutex_unlock(&hub->lock);
        return st;
    }
    memcpy(hub->ag + (size_t)t->rank * len, send, len);
    if (last) {
        hub->draining = true;
        pthread_cond_broadcast(&hub->moved);
    } else if ((st = hub_wait(hub, false, timeout, t->rank, "allgather", err))) {
        pthread_mutex_unlock(&hub->lock);
        return st;
    }
    memcpy(recv, hub->ag, (size_t)hub->n * len);
    loop_leave(hub);
    return STF_OK;
}

/* The last endpoint to arrive builds one new hub per color; members are ordered by key, then
 * by rank, as MPI_Comm_split does. */
static enum stf_status split_build(struct loop_hub *hub, struct stf_error *err)
{
    int n = hub->n;
    for (int i = 0; i < n; i++)
        hub->split_out[i] = NULL;
    for (int i = 0; i < n; i++) {
        if (hub->split_out[i]) continue;
        int members[n], m = 0;
        for (int j = 0; j < n; j++)
            if (hub->split_color[j] == hub->split_color[i]) {
                int at = m++;
                while (at > 0 && hub->split_key[members[at - 1]] > hub->split_key[j]) {
                    members[at] = members[at - 1];
                    at--;
                }
                members[at] = j;
            }
        struct transport *eps[n];
        enum stf_status st = transport_loopback_create(m, eps, err);
        if (st) return st;
        for (int k = 0; k < m; k++)
            hub->split_out[members[k]] = eps[k];
    }
    return STF_OK;
}

static enum stf_status loop_split(struct transport *t, int color, int key, struct transport **out,
                                  struct stf_error *err)
{
    struct loop_hub *hub = ((struct loop_impl *)t->impl)->hub;
    const double timeout = 60.0;
    pthread_mutex_lock(&hub->lock);
    bool last = false;
    enum stf_status st = loop_enter(hub, t->rank, timeout, "split", &last, err);
    if (st) {
        pthread_mutex_unlock(&hub->lock);
        return st;
    }
    hub->split_color[t->rank] = color;
    hub->split_key[t->rank] = key;
    if (last) {
        hub->split_status = split_build(hub, err);
        hub->draining = true;
        pthread_cond_broadcast(&hub->moved);
    } else if ((st = hub_wait(hub, false, timeout, t->rank, "split", err))) {
        pthread_mutex_unlock(&hub->lock);
        return st;
    }
    st = hub->split_status;
    *out = st ? NULL : hub->split_out[t->rank];
    if (st && !last) stf_fail(err, st, "loopback split failed on another endpoint");
    loop_leave(hub);
    return st;
}

static enum stf_status loop_barrier(struct transport *t, struct stf_error *err)
{
    (void)t, (void)err;
    return STF_OK;
}

static void loop_abort(struct transport *t, int code)
{
    (void)t; /* the caller has printed why; one process, so nobody else to stop */
    exit(code ? code : 1);
}

static const struct transport_ops loop_ops = {
    .kind = "loopback",
    .split = loop_split,
    .close = loop_close,
    .isend = loop_isend,
    .test = loop_test,
    .iprobe = loop_iprobe,
    .recv = loop_recv,
    .gather = loop_gather,
    .bcast = loop_bcast,
    .barrier = loop_barrier,
    .allgather = loop_allgather,
    .abort = loop_abort,
};
