/*
 * transport: point-to-point messages between ranks, behind a small interface so that
 * nothing else includes mpi.h. Two implementations: MPI (transport_mpi.c) and a
 * single-process loopback (transport_loop.c) for unit tests.
 *
 * A struct transport is one endpoint in one communicator: it knows its rank and size.
 * transport_mpi_init gives the world endpoint (a duplicate of MPI_COMM_WORLD with
 * MPI_ERRORS_RETURN, so MPI failures come back as codes); transport_split derives
 * sub-communicators (e.g. one per pipeline stage for tensor parallelism later). Ranks in
 * calls are ranks of that endpoint's communicator.
 *
 * Waiting never blocks forever: transport_probe and transport_wait poll with a deadline and
 * fail with STF_ERR_TRANSPORT naming the peer they waited for. Messages carry their length
 * (probe tells it before recv). The endpoint counts bytes sent and time spent waiting.
 *
 * Ownership: buffers passed to transport_isend must stay untouched until the request
 * completes. Endpoints are released with transport_close; transport_mpi_finalize ends MPI
 * after every endpoint of the process is closed.
 */
#ifndef STF_TRANSPORT_TRANSPORT_H
#define STF_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define TRANSPORT_ANY_SOURCE   (-1)
#define TRANSPORT_MAX_REQUESTS 8 /* outstanding isends per endpoint */

struct transport;

struct transport_msg {
    int source;
    int tag;
    size_t len; /* bytes */
};

struct transport_counters {
    uint64_t bytes_sent, msgs_sent;
    uint64_t bytes_recv, msgs_recv;
    double wait_seconds;       /* time spent in probe/wait loops (communication time) */
    double send_seconds;       /* time inside isend: handing messages to the back end */
    double collective_seconds; /* time inside gather, bcast, barrier and allgather (waiting
                                  for partners included) */
    uint64_t collectives;      /* allgathers completed */
    uint64_t collective_bytes; /* bytes received by them (size x len each) */
};

/* MPI_Init (thread level single), then the world endpoint. Safe without mpirun (a singleton
 * world of size 1). */
enum stf_status transport_mpi_init(int *argc, char ***argv, struct transport **world,
                                   struct stf_error *err);
/* Ends MPI; call after closing every endpoint. */
void transport_mpi_finalize(void);

/* n endpoints of one in-process communicator: a message sent by one lands in the
 * destination's queue immediately. For unit tests: point-to-point works from one thread or
 * several; transport_allgather and transport_split need one thread per endpoint. */
enum stf_status transport_loopback_create(int n, struct transport **endpoints,
                                          struct stf_error *err);

int transport_rank(const struct transport *t);
int transport_size(const struct transport *t);
/* "mpi" or "loopback". */
const char *transport_kind(const struct transport *t);

/* A sub-communicator of the ranks with the same color, ordered by key (ties: by rank),
 * collective over t. Loopback: every endpoint calls it from its own thread. */
enum stf_status transport_split(struct transport *t, int color, int key, struct transport **out,
                                struct stf_error *err);
void transport_close(struct transport *t);

/* Starts sending len bytes to dest; *req identifies the request. */
enum stf_status transport_isend(struct transport *t, int dest, int tag, const void *buf, size_t len,
                                int *req, struct stf_error *err);
/* Sets *done when request req has completed (then req is free again). */
enum stf_status transport_test(struct transport *t, int req, bool *done, struct stf_error *err);
/* Waits for req for at most timeout seconds. */
enum stf_status transport_wait(struct transport *t, int req, double timeout, struct stf_error *err);
/* isend + wait. */
enum stf_status transport_send(struct transport *t, int dest, int tag, const void *buf, size_t len,
                               double timeout, struct stf_error *err);

/* Non-blocking: *found tells whether a message from source (or TRANSPORT_ANY_SOURCE) waits. */
enum stf_status transport_iprobe(struct transport *t, int source, bool *found,
                                 struct transport_msg *msg, struct stf_error *err);
/* Waits up to timeout seconds for a message from source; `waiting_for` completes the timeout
 * message ("a result of session 3"). */
enum stf_status transport_probe(struct transport *t, int source, double timeout,
                                const char *waiting_for, struct transport_msg *msg,
                                struct stf_error *err);
/* Receives the message msg described (from probe); fails if it exceeds cap. */
enum stf_status transport_recv(struct transport *t, const struct transport_msg *msg, void *buf,
                               size_t cap, struct stf_error *err);

/* Gathers len bytes from every rank into recv (size x len bytes, at root only). Loopback:
 * every non-root endpoint must call before the root. */
enum stf_status transport_gather(struct transport *t, int root, const void *send, size_t len,
                                 void *recv, struct stf_error *err);
/* Broadcasts len bytes from root to every rank (collective). Loopback: the root must call
 * before the other endpoints. */
enum stf_status transport_bcast(struct transport *t, int root, void *buf, size_t len,
                                struct stf_error *err);
/* Every rank contributes len bytes; recv (size x len bytes) receives them in rank order on
 * every rank (collective over t). Used by tensor-parallel ranks of one pipeline stage to
 * assemble a d-vector from their slices. MPI: a non-blocking allgather polled with the
 * usual back-off, so a stuck partner is an error after timeout seconds, not a hang; the MPI
 * library picks the algorithm for the message size (Open MPI's tuned component: recursive
 * doubling or Bruck for small messages, ring for large). Loopback: every endpoint calls
 * from its own thread (the collective waits for all of them). */
enum stf_status transport_allgather(struct transport *t, const void *send, size_t len, void *recv,
                                    double timeout, struct stf_error *err);
/* A barrier (collective over t). */
enum stf_status transport_barrier(struct transport *t, struct stf_error *err);

/* Ends the whole job (MPI_Abort on the world); does not return. Loopback: exits the process. */
_Noreturn void transport_abort(struct transport *t, int code);

const struct transport_counters *transport_counters(const struct transport *t);

/* Back-off for callers that poll several sources themselves: spins during the first 50 us
 * of a wait, then yields the core until 2 ms, then sleeps 100 us per call. */
void transport_pause(double waited_seconds);

/* The host name of this process (for messages and node checks). */
const char *transport_host(void);

#endif
