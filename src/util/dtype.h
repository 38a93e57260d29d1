/*
 * dtype: the element types a tensor can have, and how many bytes a row of n elements takes.
 * One definition shared by the model file (what a tensor on disk is), the weight views
 * (what a kernel receives) and the kernel table (which kernel handles which type).
 *
 * q8_0: int8 values in blocks of STF_Q8_BLOCK consecutive elements along a row (the
 * reduction axis of the product the tensor takes part in), each block preceded by its scale
 * as an IEEE half: value = scale * q. A row of n elements takes ceil(n / 32) blocks of 34
 * bytes; the tail of the last block is zero. (Padding rather than requiring n % 32 == 0:
 * the 17b presets' convolution rows have 3·3·144 = 1296 elements.) docs/file-format.md
 * documents the layout; src/kernels/kernels_q8.h the rounding.
 */
#ifndef STF_UTIL_DTYPE_H
#define STF_UTIL_DTYPE_H

#include <stdint.h>

enum stf_dtype {
    STF_DTYPE_F32 = 0,
    STF_DTYPE_U8 = 1,   /* opaque bytes (the embedded tokenizer) */
    STF_DTYPE_Q8_0 = 2, /* blocks of 32 int8 with an f16 scale */
};

#define STF_Q8_BLOCK       32u
#define STF_Q8_BLOCK_BYTES 34u /* 2-byte f16 scale + 32 int8 */

/* Bytes of one row of n elements. */
static inline uint64_t stf_dtype_row_bytes(enum stf_dtype t, uint64_t n)
{
    switch (t) {
    case STF_DTYPE_F32:
        return n * 4u;
    case STF_DTYPE_U8:
        return n;
    case STF_DTYPE_Q8_0:
        return (n + STF_Q8_BLOCK - 1) / STF_Q8_BLOCK * STF_Q8_BLOCK_BYTES;
    }
    return 0;
}

static inline const char *stf_dtype_name(enum stf_dtype t)
{
    switch (t) {
    case STF_DTYPE_F32:
        return "f32";
    case STF_DTYPE_U8:
        return "u8";
    case STF_DTYPE_Q8_0:
        return "q8";
    }
    return "unknown";
}

#endif
