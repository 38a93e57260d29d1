/* q8 pieces shared by both kernel twins, the file writer and the tests: half-precision
 * conversion, the one definition of weight and activation rounding, scratch, im2col. */
#include <math.h>
#include <string.h>

#include "kernels/kernels_q8.h"
#include "util/mem.h"

float q8_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf / nan */
    } else if (exp == 0) {
        if (!man) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* IEEE binary32 -> binary16, round to nearest even (what F16C's vcvtps2ph does). */
uint16_t q8_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0);
    if (ax >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {                      /* below the smallest normal half */
        if (ax < 0x33000000u) return sign;       /* rounds to zero */
        uint32_t e = ax >> 23, man = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t q = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t r = ax + 0xfff + ((ax >> 13) & 1); /* round to nearest even at bit 13 */
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

void q8_quantize_row(struct q8_block *out, const float *x, uint32_t n)
{
    uint32_t nb = q8_row_blocks(n);
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t lo = b * STF_Q8_BLOCK, len = n - lo < STF_Q8_BLOCK ? n - lo : STF_Q8_BLOCK;
        float amax = 0.0f;
        for (uint32_t j = 0; j < len; j++)
            if (fabsf(x[lo + j]) > amax) amax = fabsf(x[lo + j]);
        uint16_t h = q8_float_to_half(amax / 127.0f);
        float d = q8_half_to_float(h), id = d > 0.0f ? 1.0f / d : 0.0f;
        out[b].d = h;
        memset(out[b].q, 0, sizeof out[b].q);
        for (uint32_t j = 0; j < len; j++) {
            float v = nearbyintf(x[lo + j] * id);
            out[b].q[j] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : v);
        }
    }
}

void q8_dequantize_row(float *out, const struct q8_block *in, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        const struct q8_block *b = &in[i / STF_Q8_BLOCK];
        out[i] = q8_half_to_float(b->d) * (float)b->q[i % STF_Q8_BLOCK];
    }
}

void q8_quantize_act(int8_t *q, float *d, const float *x, uint32_t n)
{
    uint32_t nb = q8_row_blocks(n);
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t lo = b * STF_Q8_BLOCK, len = n - lo < STF_Q8_BLOCK ? n - lo : STF_Q8_BLOCK;
        float amax = 0.0f;
        for (uint32_t j = 0; j < len; j++)
            if (fabsf(x[lo + j]) > amax) amax = fabsf(x[lo + j]);
        float db = amax / 127.0f, id = db > 0.0f ? 1.0f / db : 0.0f;
        d[b] = db;
        for (uint32_t j = 0; j < STF_Q8_BLOCK; j++)
            q[lo + j] = j < len ? (int8_t)nearbyintf(x[lo + j] * id) : 0;
    }
}

int64_t q8_check_row(const struct q8_block *in, uint32_t n)
{
    uint32_t nb = q8_row_blocks(n);
    for (uint32_t b = 0; b < nb; b++) {
        float d = q8_half_to_float(in[b].d);
        if (!isfinite(d) || d < 0.0f) return b;
    }
    return -1;
}

static void *take(unsigned char *base, uint64_t *used, uint64_t bytes)
{
    void *p = base ? base + *used : NULL;
    *used += (bytes + 63) / 64 * 64;
    return p;
}

uint64_t q8_scratch_layout(struct q8_scratch *s, void *base, uint32_t rows, uint32_t n)
{
    uint64_t rows8 = (rows + 7u) / 8u * 8u, npad = (uint64_t)q8_row_blocks(n) * STF_Q8_BLOCK;
    uint64_t used = 0;
    memset(s, 0, sizeof *s);
    s->rows = rows;
    s->n = n;
    s->q = take(base, &used, rows8 * npad + 64);
    s->d = take(base, &used, rows8 * (npad / STF_Q8_BLOCK) * sizeof(float) + 64);
    s->row = take(base, &used, (2 * npad + 64) * sizeof(float)); /* a row, then its q8 copy */
    return used;
}

int q8_scratch_init(struct q8_scratch *s, uint32_t rows, uint32_t n)
{
    uint64_t bytes = q8_scratch_layout(s, NULL, rows, n);
    void *base = stf_alloc(bytes);
    if (!base) return -1;
    q8_scratch_layout(s, base, rows, n);
    s->owned = base;
    return 0;
}

void q8_scratch_free(struct q8_scratch *s)
{
    stf_free(s->owned);
    memset(s, 0, sizeof *s);
}

void q8_conv_im2col(float *col, const float *const rows[3], uint32_t s, uint32_t S, uint32_t M,
                    uint32_t Km)
{
    int half = (int)(Km - 1) / 2;
    for (uint32_t a = 0; a < 3; a++)
        for (uint32_t k = 0; k < Km; k++) {
            int src = (int)s + (int)k - half;
            float *dst = col + (a * Km + k) * M;
            if (src < 0 || src >= (int)S)
                memset(dst, 0, (size_t)M * sizeof *dst);
            else
                memcpy(dst, rows[a] + (uint32_t)src * M, (size_t)M * sizeof *dst);
        }
}

uint32_t q8_rows_panel(uint32_t total, uint32_t n)
{
    uint64_t npad = (uint64_t)q8_row_blocks(n) * STF_Q8_BLOCK;
    uint64_t cap = Q8_PANEL_BYTES / (npad ? npad : 1) / 8 * 8;
    if (cap < 8) cap = 8;
    return total < cap ? total : (uint32_t)cap;
}

const struct kernels_q8 *kernels_q8_for(const struct kernels *k)
{
    return k == &kernels_ref ? &kernels_q8_ref : &kernels_q8_fast;
}
