/*
 * pipeline: what every rank of a sparsetf-dist job holds, and the steps shared by rank 0
 * (engine.c) and the stage ranks (stage.c): receiving and validating a frame, running
 * the rank's layers on a frame's rows, packing and sending, and failing the whole job with a
 * message that names the rank.
 *
 * Ranks form a grid of P stages of T ranks (plan.h); the stages' first ranks (leaders:
 * 0, T, 2T, ...) form a ring 0 -> T -> ... -> (P-1)T -> 0. Rank 0 embeds, runs its own
 * layers (often none), sends; each stage runs its layers and forwards; the last stage returns
 * the final hidden rows to rank 0, which applies the head and samples (docs/architecture.md).
 * With T > 1 a leader mirrors every frame to its stage's other ranks (its partners) before
 * computing it — a frame like any other, checked the same way — and the T ranks run the
 * stage's layers together, each on its shard, with collectives on the stage's own
 * sub-communicator; partners send nothing on the ring.
 *
 * Everything here is allocated in pipe_open; the per-frame path allocates nothing.
 */
#ifndef STF_PIPELINE_PIPELINE_H
#define STF_PIPELINE_PIPELINE_H

#include <stdint.h>

#include "pipeline/engine.h"
#include "pipeline/fault.h"
#include "pipeline/plan.h"
#include "pipeline/run_config.h"
#include "pipeline/slots.h"
#include "model/forward.h"
#include "model/tp.h"
#include "transport/transport.h"
#include "wire/frame.h"

#define PIPE_TAG 1 /* every frame travels with one tag, so MPI keeps them in order */

struct pipe {
    const struct run_config *rc; /* borrowed; the only configuration a rank reads */
    struct transport *t;
    int rank, size;
    struct model *m;
    const struct model_config *cfg;
    struct slot_table *slots;
    struct workspace *ws;
    struct frame_decoder *dec;
    struct frame_limits lim;
    size_t max_frame;
    unsigned char *rbuf; /* (max_frame) receive buffer */
    float *rows;         /* (max_rows, d) activation rows */
    uint64_t seq_out;    /* last sequence number sent on this rank's out-link */
    uint64_t seq_in;     /* last sequence number received on this rank's in-link */
    struct fault fault;
    bool nonfinite; /* the last pipe_compute failed on a non-finite value: a fault of the
                       frame's session (the job may go on), not of the job */
    struct engine_rank_stats stats;
    /* the grid (plan.h): ring neighbours are stage leaders */
    uint32_t tp, tp_rank, stage, n_stages;
    int next, prev;         /* ring neighbours of a leader (prev of rank 0: the last leader) */
    int leader;             /* this stage's leader (the rank itself for a leader) */
    struct transport *tp_t; /* the stage's sub-communicator (T > 1), owned */
    struct tp_comm comm;    /* what the forward pass calls collectives through */
    struct stf_error tp_err;
    bool tp_failed;
    unsigned char *mbuf; /* (max_frame) a leader's mirror frame */
    uint64_t seq_mirror; /* last sequence number on the leader -> partner links */
};

/* Maps this rank's share of the model (rc's plan) and allocates everything, with rc's
 * slots and frame sizes. */
enum stf_status pipe_open(struct pipe *p, const struct run_config *rc, struct transport *t,
                          struct stf_error *err);
void pipe_close(struct pipe *p);

/* Receives the next message from `source` (TRANSPORT_ANY_SOURCE allowed) within timeout,
 * decodes and validates it; checks the in-link sequence for frames from `in_link`. */
enum stf_status pipe_recv(struct pipe *p, int source, int in_link, double timeout,
                          const char *waiting_for, struct frame *f, int *from,
                          struct stf_error *err);
/* Decodes a message already received into p->rbuf. */
enum stf_status pipe_decode(struct pipe *p, size_t len, int from, int in_link, struct frame *f,
                            struct stf_error *err);

/* Copies f's rows into p->rows, checks and applies the cache directive on this rank's slots,
 * and runs this rank's layers on each row (positions f->position + r). A non-finite value
 * after a layer fails it with p->nonfinite set (err names the layer and position). */
enum stf_status pipe_compute(struct pipe *p, const struct frame *f, int from,
                             struct stf_error *err);

/* A leader sends f to its partners (T > 1; nothing otherwise). pipe_compute does it for
 * every frame it computes; the shutdown frame, which is not computed, is mirrored with this. */
enum stf_status pipe_mirror(struct pipe *p, const struct frame *f, struct stf_error *err);

/* A partner's loop (tp_rank > 0): computes every frame its leader mirrors until shutdown. */
enum stf_status pipe_follow(struct pipe *p, struct stf_error *err);

/* Packs f into buf (cap bytes) as this rank's next frame on its out-link, applying any due
 * corrupt/bad-directive fault injection. */
enum stf_status pipe_pack(struct pipe *p, struct frame *f, unsigned char *buf, size_t cap,
                          size_t *len, struct stf_error *err);

/* Prints "sparsetf-dist: rank R (host): error: ..." and ends the job: a stage first tries to
 * tell rank 0 with an error frame. Does not return. */
_Noreturn void pipe_fail(struct pipe *p, const struct stf_error *err);

/* Completes this rank's stats and gathers every rank's at rank 0 (all: size entries, rank 0
 * only; collective). */
enum stf_status pipe_gather_stats(struct pipe *p, struct engine_rank_stats *all,
                                  struct stf_error *err);

/* The other ranks (stage.c): stage_step handles every frame that has arrived and sets
 * *shutdown after the shutdown frame. With timeout > 0 it first waits for one frame and
 * fails naming the previous rank when none comes; with 0 it never waits (what a
 * single-threaded loopback test drives). engine_run_stage loops on it. */
enum stf_status stage_step(struct pipe *p, unsigned char *sbuf, double timeout, bool *shutdown,
                           struct stf_error *err);

#endif
