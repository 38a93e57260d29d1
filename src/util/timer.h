/* timer: monotonic wall-clock seconds, and resident memory of this process. */
#ifndef STF_UTIL_TIMER_H
#define STF_UTIL_TIMER_H

#include <stdint.h>

double stf_now(void);
/* Resident set size (VmRSS) and its peak (VmHWM) in bytes; 0 if unknown. */
uint64_t stf_rss_bytes(void);
uint64_t stf_peak_rss_bytes(void);
/* Median of n doubles; sorts the array in place. */
double stf_median(double *v, int n);
/* The q-quantile (0..1) of n doubles by nearest rank; sorts in place. */
double stf_quantile(double *v, int n, double q);

#endif
