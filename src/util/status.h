/*
 * status: the error convention of sparsetf.
 *
 * A function that can fail returns an enum stf_status and, when it fails, fills a
 * struct stf_error with a message naming what went wrong (file, field, expected value).
 * Only a program's main decides to exit. The message buffer is owned by the caller.
 */
#ifndef STF_UTIL_STATUS_H
#define STF_UTIL_STATUS_H

#include <stdarg.h>

enum stf_status {
    STF_OK = 0,
    STF_ERR_ARG,         /* bad argument or option from the user */
    STF_ERR_IO,          /* open/read/write/map failed */
    STF_ERR_FORMAT,      /* a file or frame is malformed */
    STF_ERR_CHECKSUM,    /* stored checksum does not match the bytes */
    STF_ERR_UNSUPPORTED, /* valid but not supported by this build */
    STF_ERR_NOMEM,       /* allocation failed */
    STF_ERR_PROTOCOL,    /* a peer broke the wire protocol */
    STF_ERR_TRANSPORT,   /* the transport (MPI) reported a failure */
};

struct stf_error {
    enum stf_status status;
    char msg[1024];
};

/* Records status and a printf-style message in err (which may be NULL); returns status. */
enum stf_status stf_fail(struct stf_error *err, enum stf_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with more context ("loading layer 3: ..."). */
enum stf_status stf_wrap(struct stf_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *stf_status_name(enum stf_status status);

#endif
