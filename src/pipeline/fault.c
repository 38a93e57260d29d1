/* fault: see fault.h (a testing hook). */
#include "pipeline/fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum stf_status fault_parse(const char *spec, struct fault *f, struct stf_error *err)
{
    memset(f, 0, sizeof *f);
    if (!spec || !*spec) return STF_OK;
    static const struct {
        const char *name;
        enum fault_kind kind;
    } kinds[] = {{"kill-rank", FAULT_KILL},
                 {"stall-rank", FAULT_STALL},
                 {"corrupt-frame", FAULT_CORRUPT},
                 {"bad-directive", FAULT_BAD_DIRECTIVE},
                 {"bad-lsh-seed", FAULT_BAD_LSH_SEED},
                 {"bad-lsh-drop", FAULT_BAD_LSH_DROP},
                 {"nan-rows", FAULT_NAN_ROWS}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i].name);
        int rank, after, used = 0;
        if (strncmp(spec, kinds[i].name, n) == 0 && spec[n] == '=' &&
            sscanf(spec + n + 1, "%d,after=%d%n", &rank, &after, &used) == 2 &&
            !spec[n + 1 + used] && rank >= 0 && after >= 0) {
            f->kind = kinds[i].kind;
            f->rank = rank;
            f->after = (uint32_t)after;
            return STF_OK;
        }
    }
    return stf_fail(err, STF_ERR_ARG,
                    "--fault-inject `%s`: expected kill-rank=R,after=T, stall-rank=R,after=T, "
                    "corrupt-frame=R,after=T, bad-directive=R,after=T, bad-lsh-seed=R,after=T, "
                    "bad-lsh-drop=R,after=T or nan-rows=R,after=T",
                    spec);
}

enum stf_status fault_check_rank(const struct fault *f, int size, struct stf_error *err)
{
    if (f->kind == FAULT_NONE || f->rank < size) return STF_OK;
    return stf_fail(err, STF_ERR_ARG,
                    "--fault-inject: rank %d does not exist, the job has %d rank%s (0..%d)",
                    f->rank, size, size == 1 ? "" : "s", size - 1);
}

bool fault_on_handle(struct fault *f, int rank)
{
    if (f->rank != rank ||
        (f->kind != FAULT_KILL && f->kind != FAULT_STALL && f->kind != FAULT_NAN_ROWS))
        return false;
    if (f->kind == FAULT_NAN_ROWS) {
        if (f->handled++ != f->after) return false;
        fprintf(stderr, "sparsetf-dist: rank %d: fault injection: a NaN in the rows\n", rank);
        return true;
    }
    if (f->handled++ < f->after) return false;
    fprintf(stderr, "sparsetf-dist: rank %d: fault injection: %s now\n", rank,
            f->kind == FAULT_KILL ? "killing this rank" : "stalling this rank");
    fflush(stderr);
    if (f->kind == FAULT_KILL) raise(SIGKILL);
    for (;;)
        sleep(1);
}

bool fault_on_send(struct fault *f, int rank, enum fault_kind kind)
{
    if (f->rank != rank || f->kind != kind) return false;
    if (f->sent++ != f->after) return false;
    fprintf(stderr, "sparsetf-dist: rank %d: fault injection: %s\n", rank,
            kind == FAULT_CORRUPT ? "corrupting an outgoing frame" : "sending a wrong directive");
    return true;
}
