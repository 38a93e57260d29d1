/* kernels_q8_vnni: the fast q8 kernels built with -mavxvnni (vpdpbusd dot products); used by
 * kernels_q8_fast when the CPU has AVX-VNNI. */
#define Q8_FAST_TABLE kernels_q8_vnni
#define Q8_FAST_NAME  "fast-vnni"
#include "kernels/kernels_q8_fast_body.h"
