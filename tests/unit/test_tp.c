/* test_tp: tensor parallelism in one process — T threads, each a rank of one stage on a
 * loopback communicator, run the layers of a model on their shards (model/tp.h) and must
 * agree with one rank: sparse QKV bitwise, the sparse FF within 1e-5 x max|logit| (its T
 * partial sums are added in rank order), greedy tokens identical; every rank ends each
 * position with the same residual stream. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/kernels.h"
#include "model/forward.h"
#include "model/init.h"
#include "model/tp.h"
#include "transport/transport.h"

#define N_TOKENS 12
static const uint32_t tokens[N_TOKENS] = {1, 17, 4, 99, 250, 3, 8, 8, 400, 2, 77, 5};

static struct model *make_model(const char *preset)
{
    struct model_config cfg = {0};
    struct stf_error err = {0};
    assert_int_equal(model_config_parse(&cfg, model_preset_text(preset), preset, &err), STF_OK);
    struct model_select all = {
        .layer_begin = 0, .layer_end = cfg.n_layers, .embed = true, .head = true};
    struct model *m = NULL;
    assert_int_equal(model_create_random(&cfg, 7, &all, 0, &m, &err), STF_OK);
    return m;
}

struct rank_run {
    const struct model *m;
    struct transport *t; /* this rank's loopback endpoint; NULL: one rank */
    float *logits;       /* (N_TOKENS, V) */
    float *x_all;        /* (N_TOKENS, d): the residual stream after the layers */
    enum stf_status st;
};

static int loop_allgather(void *ctx, const void *send, size_t len, void *recv)
{
    struct stf_error err;
    return transport_allgather(ctx, send, len, recv, 10.0, &err) != STF_OK;
}

static void *run_rank(void *arg)
{
    struct rank_run *r = arg;
    const struct model_config *c = &r->m->cfg;
    struct stf_error err = {0};
    uint32_t T = r->t ? (uint32_t)transport_size(r->t) : 1;
    struct tp_comm comm = {.rank = r->t ? (uint32_t)transport_rank(r->t) : 0,
                           .size = T,
                           .allgather = loop_allgather,
                           .ctx = r->t};
    struct seq_state *s = NULL;
    struct workspace *ws = NULL;
    float *x = malloc(c->d_model * sizeof *x);
    if ((r->st = seq_state_create_tp(c, 0, c->n_layers, 64, T, &s, &err)) ||
        (r->st = workspace_create_tp(c, 64, &kernels_fast, &comm, &ws, &err)) || !x)
        goto out;
    seq_state_reset(s);
    for (uint32_t p = 0; p < N_TOKENS; p++) {
        forward_embed(r->m, tokens[p], p, x);
        forward_layers(r->m, s, ws, p, x);
        memcpy(r->x_all + (uint64_t)p * c->d_model, x, c->d_model * sizeof *x);
        forward_head(r->m, ws, x, r->logits + (uint64_t)p * c->vocab_size);
    }
out:
    free(x);
    workspace_free(ws);
    seq_state_free(s);
    return NULL;
}

static struct rank_run *run_grid(const struct model *m, uint32_t T)
{
    const struct model_config *c = &m->cfg;
    struct rank_run *r = calloc(T, sizeof *r);
    struct transport *eps[8] = {0};
    struct stf_error err;
    assert_true(T <= 8);
    if (T > 1) assert_int_equal(transport_loopback_create((int)T, eps, &err), STF_OK);
    pthread_t th[8];
    for (uint32_t i = 0; i < T; i++) {
        r[i].m = m;
        r[i].t = eps[i];
        r[i].logits = calloc((size_t)N_TOKENS * c->vocab_size, sizeof(float));
        r[i].x_all = calloc((size_t)N_TOKENS * c->d_model, sizeof(float));
        assert_int_equal(pthread_create(&th[i], NULL, run_rank, &r[i]), 0);
    }
    for (uint32_t i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].st, STF_OK);
    }
    for (uint32_t i = 0; i < T; i++)
        transport_close(eps[i]);
    return r;
}

static void free_grid(struct rank_run *r, uint32_t T)
{
    for (uint32_t i = 0; i < T; i++) {
        free(r[i].logits);
        free(r[i].x_all);
    }
    free(r);
}

static void check_preset(const char *preset, bool bitwise)
{
    struct model *m = make_model(preset);
    const struct model_config *c = &m->cfg;
    const size_t nl = (size_t)N_TOKENS * c->vocab_size, nx = (size_t)N_TOKENS * c->d_model;
    struct rank_run *one = run_grid(m, 1);
    float top = 0;
    for (size_t i = 0; i < nl; i++)
        top = fmaxf(top, fabsf(one[0].logits[i]));
    for (uint32_t T = 2; T <= 4; T *= 2) {
        struct stf_error err;
        assert_int_equal(model_tp_check(c, T, &err), STF_OK);
        struct rank_run *g = run_grid(m, T);
        for (uint32_t i = 1; i < T; i++) /* every rank holds the same residual stream */
            assert_memory_equal(g[i].x_all, g[0].x_all, nx * sizeof(float));
        if (bitwise) assert_memory_equal(g[0].logits, one[0].logits, nl * sizeof(float));
        float worst = 0;
        for (size_t i = 0; i < nl; i++)
            worst = fmaxf(worst, fabsf(g[0].logits[i] - one[0].logits[i]));
        if (worst > 1e-5f * top)
            fail_msg("%s T=%u: logits differ by %g (max %g)", preset, T, (double)worst,
                     (double)top);
        for (uint32_t p = 0; p < N_TOKENS; p++)
            assert_int_equal(argmax(g[0].logits + (size_t)p * c->vocab_size, c->vocab_size),
                             argmax(one[0].logits + (size_t)p * c->vocab_size, c->vocab_size));
        free_grid(g, T);
    }
    free_grid(one, 1);
    model_close(m);
}

static void test_tp_sparse_qkv_bitwise(void **state)
{
    (void)state;
    check_preset("tiny-sparse-qkv", true); /* dense FF is computed whole: bitwise */
}

static void test_tp_sparse_all(void **state)
{
    (void)state;
    check_preset("tiny-sparse", false);
    check_preset("tiny-sparse-ff", false);
    check_preset("tiny-sparse-sru", false);
}

static void test_tp_dense_whole(void **state)
{
    (void)state;
    check_preset("tiny-dense", true); /* nothing splits: every rank computes it whole */
}

/* A T that does not divide what the model splits is refused, naming the valid ones. */
static void test_tp_check_errors(void **state)
{
    (void)state;
    struct model_config c = {0};
    struct stf_error err = {0};
    assert_int_equal(model_config_parse(&c, model_preset_text("17b-sparse"), "17b", &err), STF_OK);
    assert_int_equal(model_tp_check(&c, 2, &err), STF_OK);
    assert_int_equal(model_tp_check(&c, 3, &err), STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "valid --tp: 1, 2, 4, 8, 16, 32"));
    /* the shard: each of 2 ranks maps well under 52.5 % of a layer */
    assert_true((double)model_tp_layer_bytes(&c, 2) <= 0.525 * (double)model_tp_layer_bytes(&c, 1));
    uint64_t bytes = 0;
    assert_int_equal(model_tp_layer_collectives(&c, 2, &bytes), 2);
    assert_int_equal(bytes, 4ull * c.d_model * 3); /* d/T slices + 2 partial d-vectors */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tp_sparse_qkv_bitwise),
        cmocka_unit_test(test_tp_sparse_all),
        cmocka_unit_test(test_tp_dense_whole),
        cmocka_unit_test(test_tp_check_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
