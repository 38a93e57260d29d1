/* stage: every rank but 0 — a stage leader receives a frame from the previous leader, checks
 * it, mirrors it to its partners, runs its layers on its rows (with its partners), passes it
 * on; the last leader returns rows to rank 0. A partner follows its leader (pipe_follow). */
#include <stdio.h>
#include <string.h>

#include "pipeline/pipeline.h"
#include "util/mem.h"
#include "util/timer.h"

/* A non-finite value in f's session (err says where): an error frame for that session goes
 * to rank 0, which ends the session alone; f goes no further (rank 0 resets its slot on
 * every rank). */
static enum stf_status report_session_fault(struct pipe *p, const struct frame *f,
                                            unsigned char *sbuf, const struct stf_error *fault,
                                            struct stf_error *err)
{
    char text[FRAME_ERROR_LEN];
    size_t n = strnlen(fault->msg, sizeof text - 1);
    memcpy(text, fault->msg, n);
    text[n] = 0;
    /* off the link's sequence (rank 0 takes error frames from any rank, unnumbered) */
    struct frame e = {.version = FRAME_VERSION,
                      .kind = FRAME_ERROR,
                      .origin_rank = p->rank,
                      .session = f->session,
                      .error = text,
                      .sequence = p->seq_out + 1};
    size_t len;
    enum stf_status st = frame_pack(&e, sbuf, p->max_frame, &len, err);
    if (!st) st = transport_send(p->t, 0, PIPE_TAG, sbuf, len, p->rc->timeout, err);
    return st;
}

/* Handles one received frame; *shutdown after forwarding the shutdown frame. */
static enum stf_status handle_frame(struct pipe *p, struct frame *f, int from, unsigned char *sbuf,
                                    bool *shutdown, struct stf_error *err)
{
    const int next = p->next;
    const bool last = next == 0;
    enum stf_status st;
    if (f->kind == FRAME_ERROR)
        return stf_fail(err, STF_ERR_PROTOCOL, "rank %d reported: %s", f->origin_rank, f->error);
    if (f->kind != FRAME_SHUTDOWN && (st = pipe_compute(p, f, from, err)))
        return p->nonfinite ? report_session_fault(p, f, sbuf, err, err) : st;
    if (f->kind == FRAME_SHUTDOWN && (st = pipe_mirror(p, f, err))) return st;
    /* the last rank returns activations and the shutdown acknowledgement; cache
     * bookkeeping frames (reset, close) end their journey there */
    if (last && !frame_kind_has_rows(f->kind) && f->kind != FRAME_SHUTDOWN) return STF_OK;
    if (frame_kind_has_rows(f->kind)) f->data = p->rows;
    size_t len;
    if ((st = pipe_pack(p, f, sbuf, p->max_frame, &len, err)) ||
        (st = transport_send(p->t, next, PIPE_TAG, sbuf, len, p->rc->timeout, err)))
        return st;
    *shutdown = f->kind == FRAME_SHUTDOWN;
    return STF_OK;
}

enum stf_status stage_step(struct pipe *p, unsigned char *sbuf, double timeout, bool *shutdown,
                           struct stf_error *err)
{
    const int prev = p->prev;
    *shutdown = false;
    struct frame f;
    int from;
    enum stf_status st;
    if (timeout > 0) {
        if ((st = pipe_recv(p, prev, prev, timeout, "a frame", &f, &from, err)) ||
            (st = handle_frame(p, &f, from, sbuf, shutdown, err)))
            return st;
    }
    /* then whatever else has arrived, without waiting */
    while (!*shutdown) {
        bool found = false;
        struct transport_msg msg;
        if ((st = transport_iprobe(p->t, prev, &found, &msg, err))) return st;
        if (!found) break;
        if ((st = transport_recv(p->t, &msg, p->rbuf, p->max_frame, err)) ||
            (st = pipe_decode(p, msg.len, msg.source, prev, &f, err)) ||
            (st = handle_frame(p, &f, msg.source, sbuf, shutdown, err)))
            return st;
    }
    return STF_OK;
}

enum stf_status engine_run_stage(const struct run_config *rc, struct transport *t,
                                 struct stf_error *err)
{
    struct pipe p = {.t = t, .rank = transport_rank(t), .size = transport_size(t), .rc = rc};
    enum stf_status st = pipe_open(&p, rc, t, err);
    if (st) pipe_fail(&p, err);
    unsigned char *sbuf = stf_alloc(p.max_frame);
    if (!sbuf) {
        stf_fail(err, STF_ERR_NOMEM, "rank %d: out of memory for a send buffer", p.rank);
        pipe_fail(&p, err);
    }
    /* An idle stage cannot tell a stuck peer from a quiet pipeline: only rank 0 knows what
     * is in flight, so rank 0's deadline (--timeout) decides; a stage waits twice as long,
     * as a safety net for a dead rank 0. */
    bool shutdown = false;
    if (p.tp_rank > 0 && (st = pipe_follow(&p, err))) pipe_fail(&p, err);
    while (p.tp_rank == 0 && !shutdown)
        if ((st = stage_step(&p, sbuf, 2 * rc->timeout + 2, &shutdown, err))) pipe_fail(&p, err);
    stf_free(sbuf);
    if ((st = pipe_gather_stats(&p, NULL, err))) pipe_fail(&p, err);
    pipe_close(&p);
    return STF_OK;
}
