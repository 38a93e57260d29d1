#include "util/status.h"

#include <stdio.h>
#include <string.h>

enum stf_status stf_fail(struct stf_error *err, enum stf_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->status = status;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

enum stf_status stf_wrap(struct stf_error *err, const char *fmt, ...)
{
    if (!err) return STF_ERR_ARG;
    char prefix[512];
    char old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = sizeof err->msg - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = '\0';
    return err->status;
}

const char *stf_status_name(enum stf_status status)
{
    switch (status) {
    case STF_OK:
        return "ok";
    case STF_ERR_ARG:
        return "bad argument";
    case STF_ERR_IO:
        return "I/O error";
    case STF_ERR_FORMAT:
        return "format error";
    case STF_ERR_CHECKSUM:
        return "checksum mismatch";
    case STF_ERR_UNSUPPORTED:
        return "unsupported";
    case STF_ERR_NOMEM:
        return "out of memory";
    case STF_ERR_PROTOCOL:
        return "protocol error";
    case STF_ERR_TRANSPORT:
        return "transport error";
    }
    return "unknown error";
}
