/* stage: the loop of every rank but 0 — receive a frame from the previous rank, check it,
 * run this rank's layers on its rows, pass it on. The last rank returns rows to rank 0. */
#include <stdio.h>

#include "pipeline/pipeline.h"
#include "util/mem.h"
#include "util/timer.h"

enum stf_status stage_run(struct pipe *p, struct stf_error *err)
{
    const int prev = p->rank - 1;
    const int next = p->rank + 1 == p->size ? 0 : p->rank + 1;
    const bool last = next == 0;
    enum stf_status st = STF_OK;
    unsigned char *sbuf = stf_alloc(p->max_frame);
    if (!sbuf)
        return stf_fail(err, STF_ERR_NOMEM, "rank %d: out of memory for a send buffer", p->rank);
    for (;;) {
        struct frame f;
        int from;
        /* An idle stage cannot tell a stuck peer from a quiet pipeline: only rank 0 knows
         * what is in flight, so rank 0's deadline (--timeout) decides; a stage waits twice
         * as long, as a safety net for a dead rank 0. */
        if ((st = pipe_recv(p, prev, prev, 2 * p->o->timeout + 2, "a frame", &f, &from, err)))
            break;
        if (f.kind == FRAME_ERROR) {
            st = stf_fail(err, STF_ERR_PROTOCOL, "rank %d reported: %s", f.origin_rank, f.error);
            break;
        }
        if (f.kind != FRAME_SHUTDOWN && (st = pipe_compute(p, &f, from, err))) break;
        /* the last rank returns activations and the shutdown acknowledgement; cache
         * bookkeeping frames (reset, close) end their journey there */
        if (last && !frame_kind_has_rows(f.kind) && f.kind != FRAME_SHUTDOWN) continue;
        if (frame_kind_has_rows(f.kind)) f.data = p->rows;
        size_t len;
        if ((st = pipe_pack(p, &f, sbuf, p->max_frame, &len, err))) break;
        if ((st = transport_send(p->t, next, PIPE_TAG, sbuf, len, p->o->timeout, err))) break;
        if (f.kind == FRAME_SHUTDOWN) break;
    }
    stf_free(sbuf);
    if (!st) st = pipe_gather_stats(p, NULL, err);
    return st;
}
