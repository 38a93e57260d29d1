/* transport_mpi: the MPI back end — the only file of sparsetf that includes mpi.h.
 * Every endpoint owns a duplicated communicator with MPI_ERRORS_RETURN, so a failing MPI
 * call returns a code that becomes an stf_error instead of killing the process silently.
 *
 * SIMULATION ONLY — link delay. The simulated cluster (cluster/sim-cluster.sh) shapes link
 * rates with tc, but this kernel has no netem to delay packets, so the one-way delay of a
 * simulated link is added here: with STF_SIM_LINK_DELAY_US=D in the environment (set by the
 * simulated cluster's remote-shell agent on its hosts, never by a launcher), a point-to-point
 * send is held for D µs and handed to MPI by the first transport call after that (every
 * wait loop polls, so a waiting rank releases it on time; a computing rank releases it when
 * it next probes or tests). Held sends keep their order, so MPI's ordering is kept.
 * Collectives are not delayed. Unset or 0: no effect and no cost. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/transport_internal.h"
#include "util/timer.h"

/* A send held back by the simulated link delay (see the top of this file). */
struct held_send {
    const void *buf; /* the caller's buffer: untouched until the request completes */
    size_t len;
    int dest, tag;
    double due;   /* stf_now() when it may be handed to MPI */
    uint64_t seq; /* send order: held sends are released in it */
};

struct mpi_impl {
    MPI_Comm comm;
    MPI_Request reqs[TRANSPORT_MAX_REQUESTS];
    bool used[TRANSPORT_MAX_REQUESTS];
    bool held[TRANSPORT_MAX_REQUESTS]; /* used, but not handed to MPI yet */
    struct held_send holds[TRANSPORT_MAX_REQUESTS];
    double sim_delay; /* seconds; 0 = off (STF_SIM_LINK_DELAY_US) */
    uint64_t next_seq;
};

/* STF_SIM_LINK_DELAY_US as seconds; 0 when unset or malformed (the simulated cluster writes
 * it, so a bad value is a bug there, not user input). */
static double sim_link_delay(void)
{
    const char *s = getenv("STF_SIM_LINK_DELAY_US");
    if (!s || !*s) return 0.0;
    char *end = NULL;
    double us = strtod(s, &end);
    if (*end || us <= 0.0 || us > 1e6) return 0.0;
    return us * 1e-6;
}

/* Hands every held send whose delay has passed to MPI, oldest first. */
static enum stf_status release_held(struct transport *t, struct mpi_impl *m, struct stf_error *err);

static enum stf_status mpi_fail(struct stf_error *err, int rank, int code, const char *call)
{
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, text, &n) != MPI_SUCCESS)
        snprintf(text, sizeof text, "code %d", code);
    return stf_fail(err, STF_ERR_TRANSPORT, "rank %d: %s failed: %s", rank, call, text);
}

static const struct transport_ops mpi_ops;

static enum stf_status endpoint_wrap(MPI_Comm comm, struct transport **out, struct stf_error *err)
{
    struct transport *t = calloc(1, sizeof *t);
    struct mpi_impl *m = calloc(1, sizeof *m);
    if (!t || !m) {
        free(t);
        free(m);
        MPI_Comm_free(&comm);
        return stf_fail(err, STF_ERR_NOMEM, "out of memory for a transport endpoint");
    }
    m->comm = comm;
    m->sim_delay = sim_link_delay();
    t->ops = &mpi_ops;
    t->impl = m;
    MPI_Comm_rank(comm, &t->rank);
    MPI_Comm_size(comm, &t->size);
    *out = t;
    return STF_OK;
}

enum stf_status transport_mpi_init(int *argc, char ***argv, struct transport **world,
                                   struct stf_error *err)
{
    *world = NULL;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS)
        return stf_fail(err, STF_ERR_TRANSPORT, "MPI_Init failed");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm dup;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    if (rc != MPI_SUCCESS) return mpi_fail(err, 0, rc, "MPI_Comm_dup");
    MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    return endpoint_wrap(dup, world, err);
}

void transport_mpi_finalize(void)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) MPI_Finalize();
}

static enum stf_status mpi_split(struct transport *t, int color, int key, struct transport **out,
                                 struct stf_error *err)
{
    struct mpi_impl *m = t->impl;
    MPI_Comm sub;
    int rc = MPI_Comm_split(m->comm, color, key, &sub);
    if (rc != MPI_SUCCESS) return mpi_fail(err, t->rank, rc, "MPI_Comm_split");
    MPI_Comm_set_errhandler(sub, MPI_ERRORS_RETURN);
    return endpoint_wrap(sub, out, err);
}

static void mpi_close(struct transport *t)
{
    struct mpi_impl *m = t->impl;
    for (int i = 0; i < TRANSPORT_MAX_REQUESTS; i++)
        if (m->used[i] && !m->held[i]) {
            MPI_Cancel(&m->reqs[i]);
            MPI_Request_free(&m->reqs[i]);
        }
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&m->comm);
    free(m);
    free(t);
}

static enum stf_status mpi_isend(struct transport *t, int dest, int tag, const void *buf,
                                 size_t len, int *req, struct stf_error *err)
{
    struct mpi_impl *m = t->impl;
    int slot = -1;
    for (int i = 0; i < TRANSPORT_MAX_REQUESTS && slot < 0; i++)
        if (!m->used[i]) slot = i;
    if (slot < 0)
        return stf_fail(err, STF_ERR_TRANSPORT, "rank %d: more than %d sends in flight", t->rank,
                        TRANSPORT_MAX_REQUESTS);
    if (m->sim_delay > 0.0) {
        m->holds[slot] = (struct held_send){.buf = buf,
                                            .len = len,
                                            .dest = dest,
                                            .tag = tag,
                                            .due = stf_now() + m->sim_delay,
                                            .seq = m->next_seq++};
        m->held[slot] = m->used[slot] = true;
        m->reqs[slot] = MPI_REQUEST_NULL;
        *req = slot;
        return release_held(t, m, err);
    }
    int rc = MPI_Isend(buf, (int)len, MPI_BYTE, dest, tag, m->comm, &m->reqs[slot]);
    if (rc != MPI_SUCCESS) return mpi_fail(err, t->rank, rc, "MPI_Isend");
    m->used[slot] = true;
    *req = slot;
    return STF_OK;
}

static enum stf_status release_held(struct transport *t, struct mpi_impl *m, struct stf_error *err)
{
    if (m->sim_delay <= 0.0) return STF_OK;
    double now = stf_now();
    for (;;) {
        int oldest = -1;
        for (int i = 0; i < TRANSPORT_MAX_REQUESTS; i++)
            if (m->held[i] && (oldest < 0 || m->holds[i].seq < m->holds[oldest].seq)) oldest = i;
        if (oldest < 0 || m->holds[oldest].due > now) return STF_OK;
        const struct held_send *h = &m->holds[oldest];
        m->held[oldest] = false;
        int rc =
            MPI_Isend(h->buf, (int)h->len, MPI_BYTE, h->dest, h->tag, m->comm, &m->reqs[oldest]);
        if (rc != MPI_SUCCESS) {
            m->used[oldest] = false;
            return mpi_fail(err, t->rank, rc, "MPI_Isend");
        }
    }
}

static enum stf_status mpi_test(struct transport *t, int req, bool *done, struct stf_error *err)
{
    struct mpi_impl *m = t->impl;
    if (!m->used[req]) {
        *done = true;
        return STF_OK;
    }
    enum stf_status st = release_held(t, m, err);
    if (st != STF_OK) return st;
    if (m->held[req]) {
        *done = false;
        return STF_OK;
    }
    int flag = 0;
    int rc = MPI_Test(&m->reqs[req], &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        m->used[req] = false;
        return mpi_fail(err, t->rank, rc, "MPI_Test");
    }
    *done = flag != 0;
    if (flag) m->used[req] = false;
    return STF_OK;
}

static enum stf_status mpi_iprobe(struct transport *t, int source, bool *found,
                                  struct transport_msg *msg, struct stf_error *err)
{
    struct mpi_impl *m = t->impl;
    enum stf_status st = release_held(t, m, err);
    if (st != STF_OK) return st;
    int flag = 0, count = 0;
    MPI_Status status;
    int rc = MPI_Iprobe(source == TRANSPORT_ANY_SOURCE ? MPI_ANY_SOURCE : source, MPI_ANY_TAG,
                        m->comm, &flag, &status);
    if (rc != MPI_SUCCESS) return mpi_fail(err, t->rank, rc, "MPI_Iprobe");
    *found = flag != 0;
    if (!flag) return STF_OK;
    rc = MPI_Get_count(&status, MPI_BYTE, &count);
    if (rc != MPI_SUCCESS || count == MPI_UNDEFINED)
        return mpi_fail(err, t->rank, rc, "MPI_Get_count");
    msg->source = status.MPI_SOURCE;
    msg->tag = status.MPI_TAG;
    msg->len = (size_t)count;
    return STF_OK;
}

static enum stf_status mpi_recv(struct transport *t, const struct transport_msg *msg, void *buf,
                                struct stf_error *err)
{
    struct mpi_impl *m = t->impl;
    int rc =
        MPI_Recv(buf, (int)msg->len, MPI_BYTE, msg->source, msg->tag, m->comm, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_fail(err, t->rank, rc, "MPI_Recv");
    return STF_OK;
}

static enum stf_status mpi_gather(struct transport *t, int root, const void *send, size_t len,
                                  void *recv, struct stf_error *err)
{
    struct mpi_impl *m = t->impl;
    int rc = MPI_Gather(send, (int)len, MPI_BYTE, recv, (int)len, MPI_BYTE, root, m->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, t->rank, rc, "MPI_Gather");
    return STF_OK;
}

static enum stf_status mpi_bcast(struct transport *t, int root, void *buf, size_t len,
                                 struct stf_error *err)
{
    struct mpi_impl *m = t->impl;
    int rc = MPI_Bcast(buf, (int)len, MPI_BYTE, root, m->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, t->rank, rc, "MPI_Bcast");
    return STF_OK;
}

/* Non-blocking allgather polled with the transport's back-off: a partner that never arrives
 * is an error after timeout seconds. Size 1 is a copy. */
static enum stf_status mpi_allgather(struct transport *t, const void *send, size_t len, void *recv,
                                     double timeout, struct stf_error *err)
{
    struct mpi_impl *m = t->impl;
    if (t->size == 1) {
        memcpy(recv, send, len);
        return STF_OK;
    }
    MPI_Request req;
    int rc = MPI_Iallgather(send, (int)len, MPI_BYTE, recv, (int)len, MPI_BYTE, m->comm, &req);
    if (rc != MPI_SUCCESS) return mpi_fail(err, t->rank, rc, "MPI_Iallgather");
    double start = stf_now();
    for (;;) {
        int flag = 0;
        rc = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(err, t->rank, rc, "MPI_Test (allgather)");
        if (flag) return STF_OK;
        double now = stf_now();
        if (now - start > timeout)
            return stf_fail(err, STF_ERR_TRANSPORT,
                            "rank %d: an allgather of %zu bytes per rank did not complete within "
                            "%.0f s (a tensor-parallel partner is stuck or gone)",
                            t->rank, len, timeout);
        transport_pause(now - start);
    }
}

static enum stf_status mpi_barrier(struct transport *t, struct stf_error *err)
{
    struct mpi_impl *m = t->impl;
    int rc = MPI_Barrier(m->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, t->rank, rc, "MPI_Barrier");
    return STF_OK;
}

static void mpi_abort(struct transport *t, int code)
{
    (void)t;
    MPI_Abort(MPI_COMM_WORLD, code); /* the whole job, not only this communicator */
}

static const struct transport_ops mpi_ops = {
    .kind = "mpi",
    .split = mpi_split,
    .close = mpi_close,
    .isend = mpi_isend,
    .test = mpi_test,
    .iprobe = mpi_iprobe,
    .recv = mpi_recv,
    .gather = mpi_gather,
    .bcast = mpi_bcast,
    .barrier = mpi_barrier,
    .allgather = mpi_allgather,
    .abort = mpi_abort,
};
