/* progress: a progress bar on stderr for long work (redrawn in place on a terminal, a line
 * every 10% otherwise), with rate and time left. */
#ifndef STF_UTIL_PROGRESS_H
#define STF_UTIL_PROGRESS_H

#include <stdint.h>

struct progress {
    const char *label;
    double start, last_draw;
    int tty;
    int last_decile;
};

void progress_begin(struct progress *p, const char *label);
/* Callback shape of model_write: ctx is a struct progress. */
void progress_update(void *ctx, uint64_t done, uint64_t total);
void progress_end(struct progress *p, uint64_t total);

#endif
