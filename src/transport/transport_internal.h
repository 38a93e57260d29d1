/* transport_internal: the implementation interface shared by transport.c (polling, deadlines,
 * counters) and the MPI and loopback back ends. Not a public header. */
#ifndef STF_TRANSPORT_INTERNAL_H
#define STF_TRANSPORT_INTERNAL_H

#include "transport/transport.h"

struct transport_ops {
    const char *kind;
    enum stf_status (*split)(struct transport *t, int color, int key, struct transport **out,
                             struct stf_error *err);
    void (*close)(struct transport *t);
    enum stf_status (*isend)(struct transport *t, int dest, int tag, const void *buf, size_t len,
                             int *req, struct stf_error *err);
    enum stf_status (*test)(struct transport *t, int req, bool *done, struct stf_error *err);
    enum stf_status (*iprobe)(struct transport *t, int source, bool *found,
                              struct transport_msg *msg, struct stf_error *err);
    enum stf_status (*recv)(struct transport *t, const struct transport_msg *msg, void *buf,
                            struct stf_error *err);
    enum stf_status (*gather)(struct transport *t, int root, const void *send, size_t len,
                              void *recv, struct stf_error *err);
    enum stf_status (*bcast)(struct transport *t, int root, void *buf, size_t len,
                             struct stf_error *err);
    enum stf_status (*barrier)(struct transport *t, struct stf_error *err);
    enum stf_status (*allgather)(struct transport *t, const void *send, size_t len, void *recv,
                                 double timeout, struct stf_error *err);
    void (*abort)(struct transport *t, int code);
};

struct transport {
    const struct transport_ops *ops;
    int rank, size;
    struct transport_counters counters;
    void *impl; /* owned by the back end */
};

#endif
