/*
 * attn_lsh: LSH attention (SPEC §2), the Terraformer's long-sequence attention, on the
 * projections of the model's `attn` kind (two table entries: over dense Q/K/V/O weights and
 * over Sparse QKV weights, whose tensors it lists unchanged):
 *   q, k, v = the projection kind's; qk = (q + k) / 2 (shared query/key)
 *   write entry t = end: (qk, v, the bucket signature and key scale of each head); end++
 *   per head: J = the C entries of largest j + P·[shares a bucket with qk_t in some round]
 *             o = softmax_J(qk_t · k_j − 1e5·[j == t]) · v_J,  k_j = qk_j normalised
 *   out = the projection kind's output of the merged heads (o·Wo + bo, or o itself)
 * State per sequence and sub-layer, bounded by P and not by the position:
 *   [the projection kind's reset part (Sparse QKV: its two convolution rows)]
 *   [header: rotation seed, entries held]          zeroed when a sequence starts
 *   R (H, dh, n_hashes, n_buckets/2)               drawn from the seed (attn_lsh_seed)
 *   qk (P, d), v (P, d), sig (P, H) u64, scale (P, H) f32
 * The cache never drops by itself: rank 0 decides drops (attn_lsh_drop, applied by every
 * stage before the frame's rows) so all ranks agree; forward needs end < P.
 */
#include <math.h>
#include <string.h>

#include "kernels/lsh.h"
#include "model/layer_kinds.h"

static const struct sublayer_kind *proj_kind(const struct model_config *c)
{
    return c->attn == ATTN_SPARSE_QKV ? &attn_sparse_qkv : &attn_dense;
}

/* Tensor parallelism (model/tp.h): every rank of a stage computes an LSH sub-layer whole,
 * so it maps the projection's tensors whole (no tp_units: the split of a Sparse QKV
 * sub-layer's G and c does not apply here). */
static int tensors(const struct model_config *c, struct tensor_desc *t)
{
    int n = proj_kind(c)->tensors(c, t);
    for (int i = 0; i < n; i++)
        t[i].tp_units = t[i].tp_halo = t[i].tp_col_units = 0;
    return n;
}

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) return stf_fail(err, STF_ERR_FORMAT, __VA_ARGS__);                            \
    } while (0)

static enum stf_status validate(const struct model_config *c, struct stf_error *err)
{
    uint32_t n_sub = c->n_layers * model_attn_per_layer(c);
    REQUIRE(c->lsh_phase < c->lsh_period, "config: lsh_phase (%u) must be below lsh_period (%u)",
            c->lsh_phase, c->lsh_period);
    REQUIRE(c->lsh_phase < n_sub,
            "config: lsh_phase (%u) names no attention sub-layer (the model has %u)", c->lsh_phase,
            n_sub);
    REQUIRE(c->lsh_n_hashes >= 1 && c->lsh_n_hashes <= LSH_MAX_HASHES,
            "config: lsh_n_hashes must be in 1..%u, got %u", LSH_MAX_HASHES, c->lsh_n_hashes);
    REQUIRE(c->lsh_n_buckets >= 2 && c->lsh_n_buckets <= LSH_MAX_BUCKETS &&
                c->lsh_n_buckets % 2 == 0,
            "config: lsh_n_buckets must be even and in 2..%u, got %u", LSH_MAX_BUCKETS,
            c->lsh_n_buckets);
    REQUIRE(c->lsh_chunk_len >= 1, "config: lsh_chunk_len must be at least 1");
    REQUIRE(c->lsh_cache_len >= 1, "config: lsh_cache_len (P) must be at least 1");
    REQUIRE(model_lsh_C(c) <= c->lsh_cache_len,
            "config: lsh C = n_hashes * chunk_len * (1 + chunks_before) = %llu exceeds "
            "lsh_cache_len (P) %u",
            (unsigned long long)model_lsh_C(c), c->lsh_cache_len);
    REQUIRE(c->lsh_drop_len >= 1 && c->lsh_drop_len <= c->lsh_cache_len,
            "config: lsh_drop_len (D) must be in 1..lsh_cache_len (%u), got %u", c->lsh_cache_len,
            c->lsh_drop_len);
    return STF_OK;
}

struct header {
    uint64_t sigma;
    uint32_t end;
    uint32_t seeded;
};

/* Which rotations R holds (kept across sequences: a recomputed session reuses them). */
struct rot_tag {
    uint64_t sigma;
    uint32_t l, valid;
};

struct state {
    struct header *head;
    struct rot_tag *tag;
    float *R;      /* (H, dh * n_hashes * nb/2) */
    float *qk, *v; /* (P, d) */
    uint64_t *sig; /* (P, H) */
    float *scale;  /* (P, H) */
};

static uint64_t state_layout(const struct model_config *c, void *base, struct state *s,
                             uint64_t *reset_bytes)
{
    uint64_t d = c->d_model, H = c->n_heads, P = c->lsh_cache_len;
    uint64_t nR = d * c->lsh_n_hashes * (c->lsh_n_buckets / 2); /* H heads of dh rows */
    struct carve cv = {base, 0};
    /* the projection's carried rows first, where its project op expects them */
    carve_take(&cv, proj_kind(c)->sizes(c, 1, 1).reset_bytes);
    s->head = carve_take(&cv, sizeof(struct header));
    *reset_bytes = cv.used;
    s->tag = carve_take(&cv, sizeof(struct rot_tag));
    s->R = carve_take(&cv, nR * sizeof(float));
    s->qk = carve_take(&cv, P * d * sizeof(float));
    s->v = carve_take(&cv, P * d * sizeof(float));
    s->sig = carve_take(&cv, P * H * sizeof(uint64_t));
    s->scale = carve_take(&cv, P * H * sizeof(float));
    return cv.used;
}

struct scratch {
    float *q, *k, *v, *att; /* (d) */
    float *proj;            /* (nb/2) hash projections */
    float *scores;          /* (C) */
    uint32_t *J;            /* (C) chosen entries */
    uint64_t *work;         /* (P) selection work */
};

/* The projection kind's scratch comes first (its project op lays it out itself). */
static uint64_t scratch_layout(const struct model_config *c, uint32_t capacity, void *base,
                               struct scratch *s)
{
    uint64_t d = c->d_model, C = model_lsh_C(c), P = c->lsh_cache_len;
    struct carve cv = {base, 0};
    carve_take(&cv, proj_kind(c)->sizes(c, capacity, 1).scratch_bytes);
    s->q = carve_take(&cv, d * sizeof(float));
    s->k = carve_take(&cv, d * sizeof(float));
    s->v = carve_take(&cv, d * sizeof(float));
    s->att = carve_take(&cv, d * sizeof(float));
    s->proj = carve_take(&cv, (c->lsh_n_buckets / 2 + 1) * sizeof(float));
    s->scores = carve_take(&cv, C * sizeof(float));
    s->J = carve_take(&cv, C * sizeof(uint32_t));
    s->work = carve_take(&cv, P * sizeof(uint64_t));
    return cv.used;
}

static struct sublayer_sizes sizes(const struct model_config *c, uint32_t capacity, uint32_t tp)
{
    (void)tp; /* computed whole on every rank of a stage */
    struct state st;
    struct scratch sc;
    struct sublayer_sizes z;
    z.state_bytes = state_layout(c, NULL, &st, &z.reset_bytes);
    z.scratch_bytes = scratch_layout(c, capacity, NULL, &sc);
    return z;
}

static void forward(const struct sublayer_step *s, const float *x, float *out)
{
    const struct model_config *c = s->cfg;
    uint32_t d = c->d_model, H = c->n_heads, dh = d / H, nh = c->lsh_n_hashes;
    uint32_t nb = c->lsh_n_buckets, C = (uint32_t)model_lsh_C(c);
    uint64_t nR = (uint64_t)dh * nh * (nb / 2);
    struct state st;
    struct scratch sc;
    uint64_t reset;
    state_layout(c, s->state, &st, &reset);
    scratch_layout(c, s->capacity, s->scratch, &sc);
    const struct sublayer_kind *pk = proj_kind(c);
    pk->project(s, x, sc.q, sc.k, sc.v);
    /* write entry t = end: qk = (q + k) / 2, v, and per head its buckets and key scale */
    uint32_t t = st.head->end;
    float *qk_t = st.qk + (uint64_t)t * d;
    for (uint32_t i = 0; i < d; i++)
        qk_t[i] = (sc.q[i] + sc.k[i]) * 0.5f;
    memcpy(st.v + (uint64_t)t * d, sc.v, d * sizeof(float));
    for (uint32_t h = 0; h < H; h++) {
        st.sig[(uint64_t)t * H + h] =
            lsh_signature(qk_t + h * dh, st.R + h * nR, dh, nh, nb, sc.proj);
        st.scale[(uint64_t)t * H + h] = lsh_key_scale(qk_t + h * dh, dh);
    }
    st.head->end = t + 1;
    /* SPEC §2 one step, head by head, over entries 0..t */
    for (uint32_t h = 0; h < H; h++) {
        uint32_t nJ = s->k->lsh_select(sc.J, st.sig + h, H, t + 1, st.sig[(uint64_t)t * H + h], nh,
                                       C, sc.work);
        s->k->lsh_attend(sc.att + h * dh, qk_t + h * dh, st.qk + h * dh, st.v + h * dh, d,
                         st.scale + h, H, sc.J, nJ, t, dh, sc.scores);
    }
    pk->output(s, sc.att, out);
}

void attn_lsh_info(const struct model_config *c, const void *state, struct lsh_cache_info *out)
{
    struct state st;
    uint64_t reset;
    state_layout(c, (void *)state, &st, &reset);
    out->end = st.head->end;
    out->seeded = (int)st.head->seeded;
    out->sigma = st.head->sigma;
}

void attn_lsh_seed(const struct model_config *c, void *state, uint64_t sigma, uint32_t l)
{
    struct state st;
    uint64_t reset;
    state_layout(c, state, &st, &reset);
    uint32_t H = c->n_heads, dh = c->d_model / H;
    uint64_t nR = (uint64_t)dh * c->lsh_n_hashes * (c->lsh_n_buckets / 2);
    /* the draw depends on (σ, l, h) only: a slot that held the same seed keeps its R */
    if (!(st.tag->valid && st.tag->sigma == sigma && st.tag->l == l)) {
        for (uint32_t h = 0; h < H; h++)
            lsh_rotations(st.R + h * nR, sigma, l, h, dh, c->lsh_n_hashes, c->lsh_n_buckets);
        *st.tag = (struct rot_tag){.sigma = sigma, .l = l, .valid = 1};
    }
    st.head->sigma = sigma;
    st.head->seeded = 1;
}

void attn_lsh_drop(const struct model_config *c, void *state, uint32_t count)
{
    struct state st;
    uint64_t reset;
    state_layout(c, state, &st, &reset);
    uint64_t d = c->d_model, H = c->n_heads, keep = st.head->end - count;
    /* shift left by count: entry j + count becomes entry j */
    memmove(st.qk, st.qk + count * d, keep * d * sizeof(float));
    memmove(st.v, st.v + count * d, keep * d * sizeof(float));
    memmove(st.sig, st.sig + count * H, keep * H * sizeof(uint64_t));
    memmove(st.scale, st.scale + count * H, keep * H * sizeof(float));
    st.head->end = (uint32_t)keep;
}

const struct sublayer_kind attn_lsh_dense = {
    .name = "lsh over dense projections",
    .tensors = tensors,
    .validate = validate,
    .sizes = sizes,
    .forward = forward,
};

const struct sublayer_kind attn_lsh_sparse_qkv = {
    .name = "lsh over sparse_qkv projections",
    .tensors = tensors,
    .validate = validate,
    .sizes = sizes,
    .forward = forward,
};
