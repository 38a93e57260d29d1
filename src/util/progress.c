#include "util/progress.h"

#include <stdio.h>
#include <unistd.h>

#include "util/timer.h"

void progress_begin(struct progress *p, const char *label)
{
    p->label = label;
    p->start = stf_now();
    p->last_draw = 0.0;
    p->tty = isatty(2);
    p->last_decile = -1;
}

static void draw(struct progress *p, uint64_t done, uint64_t total, int final)
{
    double el = stf_now() - p->start;
    double frac = total ? (double)done / (double)total : 1.0;
    double rate = el > 0 ? (double)done / el : 0.0;
    double left = rate > 0 ? (double)(total - done) / rate : 0.0;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "%s%s [%s] %5.1f%% %.2f/%.2f GB %.0f MB/s %s %.0fs%s", p->tty ? "\r" : "",
            p->label, bar, 100.0 * frac, (double)done / 1e9, (double)total / 1e9, rate / 1e6,
            final ? "took" : "ETA", final ? el : left, p->tty && !final ? "" : "\n");
    fflush(stderr);
}

void progress_update(void *ctx, uint64_t done, uint64_t total)
{
    struct progress *p = ctx;
    double now = stf_now();
    if (p->tty) {
        if (now - p->last_draw >= 0.2) {
            p->last_draw = now;
            draw(p, done, total, 0);
        }
        return;
    }
    int decile = total ? (int)(10 * done / total) : 10;
    if (decile != p->last_decile && decile < 10 && now - p->start > 2.0) {
        p->last_decile = decile;
        draw(p, done, total, 0);
    }
}

void progress_end(struct progress *p, uint64_t total)
{
    draw(p, total, total, 1);
}
