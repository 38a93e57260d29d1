/* SPEC §2 LSH attention kernels (lsh.h). */
#include "kernels/lsh.h"

#include <math.h>
#include <stdlib.h>

#define GOLDEN 0x9E3779B97F4A7C15ull

uint64_t lsh_splitmix64(uint64_t z)
{
    z += GOLDEN;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unit_open0(uint64_t w)
{
    return (double)((w >> 11) + 1) * 0x1p-53; /* (0, 1] */
}

void lsh_rotations(float *R, uint64_t sigma, uint32_t sublayer, uint32_t head, uint32_t dh,
                   uint32_t n_hashes, uint32_t n_buckets)
{
    /* key = sm(sm(sm(σ) ^ ℓ) ^ h); w_k = sm(key + (k − 1)·golden) */
    uint64_t key = lsh_splitmix64(lsh_splitmix64(lsh_splitmix64(sigma) ^ sublayer) ^ head);
    uint64_t n = (uint64_t)dh * n_hashes * (n_buckets / 2);
    const double two_pi = 2.0 * 3.141592653589793;
    for (uint64_t i = 0; i < n; i += 2) {
        double u1 = unit_open0(lsh_splitmix64(key + i * GOLDEN));
        double u2 = unit_open0(lsh_splitmix64(key + (i + 1) * GOLDEN));
        double r = sqrt(-2.0 * log(u1));
        R[i] = (float)(r * cos(two_pi * u2));
        if (i + 1 < n) R[i + 1] = (float)(r * sin(two_pi * u2)); /* odd count: no last sine */
    }
}

uint64_t lsh_signature(const float *z, const float *R, uint32_t dh, uint32_t n_hashes,
                       uint32_t n_buckets, float *proj)
{
    uint32_t half = n_buckets / 2;
    uint64_t sig = 0;
    for (uint32_t rho = 0; rho < n_hashes; rho++) {
        for (uint32_t k = 0; k < half; k++)
            proj[k] = 0.0f;
        for (uint32_t i = 0; i < dh; i++) { /* t = z·R[:, ρ, :] */
            const float *row = R + ((uint64_t)i * n_hashes + rho) * half;
            for (uint32_t k = 0; k < half; k++)
                proj[k] += z[i] * row[k];
        }
        uint32_t best = 0; /* argmax([t, −t]), first maximum */
        float bv = proj[0];
        for (uint32_t k = 1; k < half; k++)
            if (proj[k] > bv) bv = proj[k], best = k;
        for (uint32_t k = 0; k < half; k++)
            if (-proj[k] > bv) bv = -proj[k], best = half + k;
        sig |= (uint64_t)best << (8 * rho);
    }
    return sig;
}

float lsh_key_scale(const float *z, uint32_t dh)
{
    float ss = 0.0f;
    for (uint32_t i = 0; i < dh; i++)
        ss += z[i] * z[i];
    return 1.0f / sqrtf(ss / (float)dh + 1e-6f) / sqrtf((float)dh);
}

/* Whether two signatures share a bucket in some round. */
static int sig_match_ref(uint64_t a, uint64_t b, uint32_t n_hashes)
{
    for (uint32_t r = 0; r < n_hashes; r++)
        if (((a >> (8 * r)) & 0xFF) == ((b >> (8 * r)) & 0xFF)) return 1;
    return 0;
}

static int desc_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static int asc_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

uint32_t lsh_select_ref(uint32_t *J, const uint64_t *sigs, uint32_t sig_stride, uint32_t n,
                        uint64_t q_sig, uint32_t n_hashes, uint32_t C, uint64_t *work)
{
    /* prio_j = j + n·match_j (any factor > the largest index orders alike), the C largest;
     * priorities are distinct, so the tie rule never applies */
    for (uint32_t j = 0; j < n; j++) {
        uint64_t prio = j + (uint64_t)n * (uint64_t)sig_match_ref(sigs[(uint64_t)j * sig_stride],
                                                                  q_sig, n_hashes);
        work[j] = prio << 32 | j;
    }
    qsort(work, n, sizeof *work, desc_u64);
    uint32_t m = n < C ? n : C;
    for (uint32_t i = 0; i < m; i++)
        J[i] = (uint32_t)(work[i] & 0xFFFFFFFFu);
    qsort(J, m, sizeof *J, asc_u32);
    return m;
}

uint32_t lsh_select_fast(uint32_t *J, const uint64_t *sigs, uint32_t sig_stride, uint32_t n,
                         uint64_t q_sig, uint32_t n_hashes, uint32_t C, uint64_t *work)
{
    if (n <= C) {
        for (uint32_t j = 0; j < n; j++)
            J[j] = j;
        return n;
    }
    /* bytes past the rounds are forced non-zero so only real rounds can match */
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t unused = n_hashes >= 8 ? 0 : ~0ull << (8 * n_hashes);
    uint32_t *matched = (uint32_t *)work, *other = matched + C; /* newest first, C each */
    uint32_t nm = 0, no = 0;
    /* one pass from the newest entry: the most recent matches; the most recent others are
     * kept as long as they could still be needed (C − matches found so far) */
    for (uint32_t j = n; j-- > 0 && nm < C;) {
        uint64_t x = (sigs[(uint64_t)j * sig_stride] ^ q_sig) | unused;
        if ((x - ones) & ~x & highs)
            matched[nm++] = j;
        else if (no < C)
            other[no++] = j;
    }
    uint32_t take_other = C - nm < no ? C - nm : no;
    /* merge the two newest-first lists into increasing order: read both from their tails */
    uint32_t a = nm, b = take_other, out = 0;
    while (a || b) {
        if (!b || (a && matched[a - 1] < other[b - 1]))
            J[out++] = matched[--a];
        else
            J[out++] = other[--b];
    }
    return out;
}

void lsh_attend_ref(float *out, const float *q, const float *qk, const float *v, uint32_t stride,
                    const float *scale, uint32_t scale_stride, const uint32_t *J, uint32_t nJ,
                    uint32_t self, uint32_t dh, float *scores)
{
    float mx = -INFINITY;
    for (uint32_t i = 0; i < nJ; i++) {
        const float *kj = qk + (uint64_t)J[i] * stride;
        float dot = 0.0f;
        for (uint32_t e = 0; e < dh; e++)
            dot += q[e] * kj[e];
        /* k_j = qk_j · scale_j (normalised key); the query is raw */
        scores[i] = dot * scale[(uint64_t)J[i] * scale_stride] - (J[i] == self ? 1e5f : 0.0f);
        if (scores[i] > mx) mx = scores[i];
    }
    float sum = 0.0f;
    for (uint32_t i = 0; i < nJ; i++) {
        scores[i] = expf(scores[i] - mx);
        sum += scores[i];
    }
    for (uint32_t e = 0; e < dh; e++)
        out[e] = 0.0f;
    for (uint32_t i = 0; i < nJ; i++) {
        const float *vj = v + (uint64_t)J[i] * stride;
        float p = scores[i] / sum;
        for (uint32_t e = 0; e < dh; e++)
            out[e] += p * vj[e];
    }
}
