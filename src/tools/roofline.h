/*
 * roofline: this machine's two ceilings, measured by the benchmark that uses them, with the
 * same thread count — the memory bandwidth of a STREAM triad and the peak rate of fused
 * multiply-adds — and the bound they put on a piece of work:
 *     bound = max(bytes / bandwidth, multiply-adds / peak).
 */
#ifndef STF_TOOLS_ROOFLINE_H
#define STF_TOOLS_ROOFLINE_H

#include <stddef.h>

struct roofline {
    int threads;
    double stream_gbs, stream_lo, stream_hi; /* triad GB/s: median, min, max */
    double peak_gmacs, peak_lo, peak_hi;     /* fused multiply-adds per ns (G/s) */
    const char *isa;                         /* the vector unit the peak was measured on */
};

/* The clock every measurement of a benchmark reads: wall-clock seconds (stf_now), or, with
 * roofline_use_cpu_clock, the process's CPU seconds divided by its threads — on a machine
 * whose cores other jobs share, the time this process's threads actually ran (memory stalls
 * included), which wall-clock time is not when the scheduler takes the cores away. */
double roofline_now(void);
void roofline_use_cpu_clock(int threads);

/* STREAM triad a = b + s·c over three arrays of n floats (far larger than the caches),
 * counted as STREAM does (3 × 4 bytes per element, no write-allocate), and bursts of
 * independent FMAs on registers; reps timed runs of each after one warm-up, split over the
 * threads kernels_set_threads gave (passed as threads for the report). Returns 0, or -1 if
 * the arrays cannot be allocated. */
int roofline_measure(struct roofline *r, int threads, size_t stream_n, int reps);

/* Seconds the work cannot beat on this machine. */
double roofline_bound(const struct roofline *r, double bytes, double macs);

#endif
