/* transport_loop: n endpoints inside one process, for unit tests of code above the
 * transport. A send copies the bytes into the destination's queue at once (so every isend
 * completes immediately); probe and recv match the oldest queued message from a source, as
 * MPI's non-overtaking rule does. Single-threaded; allocation here is not on a hot path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
};

struct loop_impl {
    struct loop_hub *hub;
};

static const struct transport_ops loop_ops;

enum stf_status transport_loopback_create(int n, struct transport **endpoints,
                                          struct stf_error *err)
{
    if (n < 1) return stf_fail(err, STF_ERR_ARG, "loopback needs at least one endpoint, got %d", n);
    struct loop_hub *hub = calloc(1, sizeof *hub);
    if (!hub || !(hub->queues = calloc((size_t)n, sizeof *hub->queues)) ||
        !(hub->gathered = calloc((size_t)n, sizeof *hub->gathered)))
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
    if (hub) {
        free(hub->queues);
        free(hub->gathered);
    }
    free(hub);
    return stf_fail(err, STF_ERR_NOMEM, "out of memory for loopback endpoints");
}

static void loop_close(struct transport *t)
{
    struct loop_impl *li = t->impl;
    struct loop_hub *hub = li->hub;
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
    if (--hub->open == 0) {
        free(hub->queues);
        free(hub->gathered);
        free(hub->bcast);
        free(hub);
    }
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
    struct loop_msg **tail = &hub->queues[dest];
    while (*tail)
        tail = &(*tail)->next;
    *tail = m;
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
    struct loop_msg **m = find(t, source, -1);
    *found = m != NULL;
    if (m) *msg = (struct transport_msg){(*m)->source, (*m)->tag, (*m)->len};
    return STF_OK;
}

static enum stf_status loop_recv(struct transport *t, const struct transport_msg *msg, void *buf,
                                 struct stf_error *err)
{
    struct loop_msg **at = find(t, msg->source, msg->tag);
    if (!at)
        return stf_fail(err, STF_ERR_TRANSPORT, "loopback rank %d: no message from rank %d",
                        t->rank, msg->source);
    struct loop_msg *m = *at;
    if (m->len != msg->len)
        return stf_fail(err, STF_ERR_TRANSPORT, "loopback rank %d: message length changed",
                        t->rank);
    if (m->len) memcpy(buf, m->bytes, m->len);
    *at = m->next;
    free(m->bytes);
    free(m);
    return STF_OK;
}

static enum stf_status loop_gather(struct transport *t, int root, const void *send, size_t len,
                                   void *recv, struct stf_error *err)
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

static enum stf_status loop_bcast(struct transport *t, int root, void *buf, size_t len,
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
    .split = NULL,
    .close = loop_close,
    .isend = loop_isend,
    .test = loop_test,
    .iprobe = loop_iprobe,
    .recv = loop_recv,
    .gather = loop_gather,
    .bcast = loop_bcast,
    .barrier = loop_barrier,
    .abort = loop_abort,
};
