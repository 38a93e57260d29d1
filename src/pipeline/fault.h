/*
 * fault: a TESTING HOOK that makes one rank fail on purpose, so tests can check that the
 * job ends within seconds with a message naming the rank and the cause. Enabled only by
 * `--fault-inject SPEC` or $STF_FAULT_INJECT; never set it in production.
 *
 *   kill-rank=R,after=T      rank R raises SIGKILL before handling its (T+1)-th activation frame
 *   stall-rank=R,after=T     rank R stops responding (sleeps) at that point
 *   corrupt-frame=R,after=T  rank R flips one data byte of its (T+1)-th outgoing activation
 *                            frame after packing (the receiver sees a checksum mismatch)
 *   bad-directive=R,after=T  rank R sends a wrong cache fill in that frame's directive (the
 *                            receiver sees its cache state disagree)
 *   bad-lsh-seed=R,after=T   rank R sends a wrong LSH rotation seed in that frame's directive
 *   bad-lsh-drop=R,after=T   rank R adds an LSH drop event to that frame's directive, or
 *                            removes its drop events (the receiver's LSH caches disagree)
 *   nan-rows=R,after=T       rank R sets a value of its (T+1)-th activation frame's rows to
 *                            NaN before its layers run (the non-finite check ends that
 *                            frame's session with an error; the others go on)
 */
#ifndef STF_PIPELINE_FAULT_H
#define STF_PIPELINE_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include "util/status.h"

enum fault_kind {
    FAULT_NONE,
    FAULT_KILL,
    FAULT_STALL,
    FAULT_CORRUPT,
    FAULT_BAD_DIRECTIVE,
    FAULT_BAD_LSH_SEED,
    FAULT_BAD_LSH_DROP,
    FAULT_NAN_ROWS
};

struct fault {
    enum fault_kind kind;
    int rank;
    uint32_t after;
    uint32_t handled, sent; /* activation frames handled / sent so far by this rank */
};

/* spec NULL or "" gives FAULT_NONE. */
enum stf_status fault_parse(const char *spec, struct fault *f, struct stf_error *err);

/* An error when f names a rank outside a job of size ranks (a fault that could never fire
 * would let a test pass without testing anything). */
enum stf_status fault_check_rank(const struct fault *f, int size, struct stf_error *err);

/* Called by rank `rank` before it handles an activation frame: kills or stalls when due;
 * true when this frame's rows must be made non-finite (FAULT_NAN_ROWS; fires once). */
bool fault_on_handle(struct fault *f, int rank);
/* Called before sending an activation frame: true when this frame must be damaged with
 * `kind` (FAULT_CORRUPT, FAULT_BAD_DIRECTIVE, FAULT_BAD_LSH_*); fires once. */
bool fault_on_send(struct fault *f, int rank, enum fault_kind kind);

#endif
