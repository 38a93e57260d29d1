/* test_plan: layer plans cover every layer once, contiguously, give every rank but 0 a
 * layer, put embed/head on rank 0, are balanced, and reject impossible rank counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "model/tp.h"
#include "pipeline/plan.h"

static struct model_config preset(const char *name, uint32_t layers)
{
    struct model_config c = {0};
    struct stf_error err;
    assert_int_equal(model_config_parse(&c, model_preset_text(name), name, &err), STF_OK);
    if (layers) c.n_layers = layers;
    assert_int_equal(model_config_validate(&c, &err), STF_OK);
    return c;
}

static void check_plan(const struct model_config *c, uint32_t R)
{
    struct dist_plan p;
    struct stf_error err = {0};
    assert_int_equal(plan_make(c, R, 1, 2, 64, 8, PLAN_BALANCE_MEMORY, &p, &err), STF_OK);
    assert_int_equal(p.n_ranks, R);
    uint32_t next = 0;
    uint64_t max_load = 0, sum = 0;
    for (uint32_t r = 0; r < R; r++) {
        const struct plan_rank *pr = &p.ranks[r];
        assert_int_equal(pr->layer_begin, next);
        assert_true(pr->layer_end >= pr->layer_begin);
        if (r > 0) assert_true(pr->layer_end > pr->layer_begin);
        assert_int_equal(pr->embed, r == 0);
        assert_int_equal(pr->head, r == 0);
        next = pr->layer_end;
        if (pr->weight_bytes > max_load) max_load = pr->weight_bytes;
        sum += pr->weight_bytes;
        assert_true(plan_rank_expected_bytes(&p, r) >= pr->weight_bytes + pr->cache_bytes);
    }
    assert_int_equal(next, c->n_layers);
    assert_int_equal(sum, p.model_bytes);
    /* balanced: no rank exceeds the ideal share by more than one layer, unless rank 0's
     * fixed embed+head alone is larger than the ideal share */
    uint64_t ideal = p.model_bytes / R;
    uint64_t rank0_fixed =
        p.ranks[0].weight_bytes -
        (uint64_t)(p.ranks[0].layer_end - p.ranks[0].layer_begin) * p.layer_bytes_max;
    uint64_t bound = ideal + p.layer_bytes_max;
    if (rank0_fixed > bound) bound = rank0_fixed;
    assert_true(max_load <= bound);
    /* layers of one config weigh the same, so ranks 1.. differ by at most one layer */
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint32_t r = 1; r < R; r++) {
        uint32_t k = p.ranks[r].layer_end - p.ranks[r].layer_begin;
        lo = k < lo ? k : lo;
        hi = k > hi ? k : hi;
    }
    if (R > 1 && hi > lo + 1)
        fail_msg("%u ranks: stage layer counts range from %u to %u", R, lo, hi);
    plan_free(&p);
}

static void test_plan_every_count(void **state)
{
    (void)state;
    const char *names[] = {"tiny-sparse-sru", "small-sparse", "800m-sparse", "800m-dense",
                           "17b-sparse"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct model_config c = preset(names[i], 0);
        for (uint32_t R = 1; R <= c.n_layers + 1; R++)
            check_plan(&c, R);
    }
    struct model_config c = preset("tiny-sparse-sru", 8);
    for (uint32_t R = 1; R <= 9; R++)
        check_plan(&c, R);
}

static void test_plan_rank0_takes_fewer_layers(void **state)
{
    (void)state;
    struct model_config c = preset("800m-sparse", 0);
    struct dist_plan p;
    struct stf_error err;
    assert_int_equal(plan_make(&c, 4, 1, 1, 1024, 32, PLAN_BALANCE_MEMORY, &p, &err), STF_OK);
    uint32_t n0 = p.ranks[0].layer_end - p.ranks[0].layer_begin;
    for (uint32_t r = 1; r < 4; r++)
        assert_true(n0 < p.ranks[r].layer_end - p.ranks[r].layer_begin);
    plan_free(&p);
}

/* Balancing by estimated time never gives a slower bottleneck rank than balancing by
 * weight bytes, and still covers the layers contiguously with a layer on every stage. */
static void test_plan_time_balance(void **state)
{
    (void)state;
    const char *names[] = {"800m-sparse", "17b-sparse", "small-sparse", "800m-dense"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct model_config c = preset(names[i], 0);
        for (uint32_t R = 1; R <= c.n_layers + 1; R++) {
            struct dist_plan pm, pt;
            struct stf_error err = {0};
            assert_int_equal(plan_make(&c, R, 1, 1, 256, 8, PLAN_BALANCE_MEMORY, &pm, &err),
                             STF_OK);
            assert_int_equal(plan_make(&c, R, 1, 1, 256, 8, PLAN_BALANCE_TIME, &pt, &err), STF_OK);
            double max_m = 0, max_t = 0;
            uint32_t next = 0;
            for (uint32_t r = 0; r < R; r++) {
                max_m = pm.ranks[r].est_token_s > max_m ? pm.ranks[r].est_token_s : max_m;
                max_t = pt.ranks[r].est_token_s > max_t ? pt.ranks[r].est_token_s : max_t;
                assert_int_equal(pt.ranks[r].layer_begin, next);
                if (r > 0) assert_true(pt.ranks[r].layer_end > pt.ranks[r].layer_begin);
                next = pt.ranks[r].layer_end;
            }
            assert_int_equal(next, c.n_layers);
            if (max_t > max_m * (1 + 1e-9))
                fail_msg("%s on %u ranks: time plan bottleneck %.3g s > memory plan %.3g s",
                         names[i], R, max_t, max_m);
            plan_free(&pm);
            plan_free(&pt);
        }
    }
}

static void test_plan_single_rank_holds_all(void **state)
{
    (void)state;
    struct model_config c = preset("small-sparse", 0);
    struct dist_plan p;
    struct stf_error err;
    assert_int_equal(plan_make(&c, 1, 1, 1, 512, 32, PLAN_BALANCE_MEMORY, &p, &err), STF_OK);
    assert_int_equal(p.ranks[0].layer_begin, 0);
    assert_int_equal(p.ranks[0].layer_end, c.n_layers);
    assert_int_equal(p.ranks[0].weight_bytes, p.model_bytes);
    plan_free(&p);
}

static void test_plan_rejects_bad_counts(void **state)
{
    (void)state;
    struct model_config c = preset("tiny-sparse", 0);
    struct dist_plan p;
    struct stf_error err = {0};
    assert_int_equal(plan_make(&c, 0, 1, 1, 64, 8, PLAN_BALANCE_MEMORY, &p, &err), STF_ERR_ARG);
    assert_int_equal(plan_make(&c, c.n_layers + 2, 1, 1, 64, 8, PLAN_BALANCE_MEMORY, &p, &err),
                     STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "a pipeline takes at most one stage more than layers"));
    /* chosen T: 5 ranks make no grid for 2 layers of 4 heads */
    assert_int_equal(plan_make(&c, 5, 0, 1, 64, 8, PLAN_BALANCE_MEMORY, &p, &err), STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "without an idle rank"));
}

/* Checks the grid invariants of a plan: rank r is rank r % T of stage r / T, the ranks of a
 * stage share its layer range, stages cover the layers in order, with T > 1 no stage is
 * empty, and a rank's weights are its share of its layers (model/tp.h) plus rank 0's
 * embedding and head. */
static void check_grid(const struct model_config *c, const struct dist_plan *p)
{
    uint32_t T = p->tp, next = 0;
    assert_int_equal(p->n_stages * T, p->n_ranks);
    for (uint32_t r = 0; r < p->n_ranks; r++) {
        const struct plan_rank *pr = &p->ranks[r];
        assert_int_equal(pr->stage, r / T);
        assert_int_equal(pr->tp_rank, r % T);
        const struct plan_rank *lead = &p->ranks[pr->stage * T];
        assert_int_equal(pr->layer_begin, lead->layer_begin);
        assert_int_equal(pr->layer_end, lead->layer_end);
        if (pr->tp_rank == 0) {
            assert_int_equal(pr->layer_begin, next);
            next = pr->layer_end;
        }
        uint32_t n = pr->layer_end - pr->layer_begin;
        if (T > 1) assert_true(n >= 1);
        uint64_t fixed = r == 0 ? p->ranks[0].weight_bytes - n * model_tp_layer_bytes(c, T) : 0;
        if (r > 0) assert_int_equal(pr->weight_bytes, n * model_tp_layer_bytes(c, T));
        (void)fixed;
    }
    assert_int_equal(next, c->n_layers);
}

/* More ranks than a pipeline can use become tensor-parallel partners: the plan picks the
 * smallest T that makes a grid, and says so. */
static void test_plan_grid_chosen(void **state)
{
    (void)state;
    struct model_config c = preset("tiny-sparse", 0); /* 2 layers, S = H = 4, B = 16 */
    struct dist_plan p;
    struct stf_error err = {0};
    const uint32_t cases[][2] = {{1, 1}, {2, 1}, {3, 1}, {4, 2}, {5, 0}, {8, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum stf_status st = plan_make(&c, cases[i][0], 0, 1, 64, 8, PLAN_BALANCE_MEMORY, &p, &err);
        if (cases[i][1] == 0) {
            assert_int_equal(st, STF_ERR_ARG);
            continue;
        }
        assert_int_equal(st, STF_OK);
        assert_int_equal(p.tp, cases[i][1]);
        assert_true(p.tp_chosen);
        check_grid(&c, &p);
        if (p.tp > 1) assert_true(p.collectives >= 1 && p.collectives <= 2);
        plan_free(&p);
    }
}

/* --tp T: a stage's T ranks each map a 1/T share of its layers' split tensors; at 17b-sparse
 * the parts every rank keeps whole are under 5 % of a layer. */
static void test_plan_grid_shares(void **state)
{
    (void)state;
    struct model_config c = preset("17b-sparse", 2);
    struct dist_plan p1, p2;
    struct stf_error err = {0};
    assert_int_equal(plan_make(&c, 2, 1, 1, 256, 8, PLAN_BALANCE_MEMORY, &p1, &err), STF_OK);
    assert_int_equal(plan_make(&c, 2, 2, 1, 256, 8, PLAN_BALANCE_MEMORY, &p2, &err), STF_OK);
    check_grid(&c, &p2);
    assert_false(p2.tp_chosen);
    assert_int_equal(p2.n_stages, 1);
    uint64_t whole = 2 * model_tp_layer_bytes(&c, 1);
    uint64_t share = p2.ranks[1].weight_bytes;
    assert_true((double)share <= 1.05 * (double)whole / 2);
    /* the KV cache is split by heads; the two rows of convolution history are kept whole */
    uint64_t cache1 = model_tp_layer_state_bytes(&c, 256, 1);
    uint64_t cache2 = model_tp_layer_state_bytes(&c, 256, 2);
    assert_int_equal(p2.ranks[1].cache_bytes, 2 * cache2);
    assert_true(cache2 <= cache1 / 2 + 4 * 2 * c.d_model);
    plan_free(&p1);
    plan_free(&p2);
}

/* Bad grids fail before anything is mapped, naming the valid choices. */
static void test_plan_grid_errors(void **state)
{
    (void)state;
    struct model_config c = preset("tiny-sparse", 0);
    struct dist_plan p;
    struct stf_error err = {0};
    assert_int_equal(plan_make(&c, 4, 3, 1, 64, 8, PLAN_BALANCE_MEMORY, &p, &err), STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "--tp 3 does not divide the 4 ranks"));
    assert_non_null(strstr(err.msg, "2 (2 stages x 2), 4 (1 stages x 4)"));
    /* T = 8 divides 8 ranks but not the 4 heads */
    assert_int_equal(plan_make(&c, 8, 8, 1, 64, 8, PLAN_BALANCE_MEMORY, &p, &err), STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "--tp 8 does not divide what this model splits"));
    assert_non_null(strstr(err.msg, "valid --tp for 8 ranks: 4 (2 stages x 4)"));
    /* 4 stages of 2 for 2 layers would leave a stage without a layer */
    assert_int_equal(plan_make(&c, 8, 2, 1, 64, 8, PLAN_BALANCE_MEMORY, &p, &err), STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "every stage needs a layer"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_every_count),
        cmocka_unit_test(test_plan_rank0_takes_fewer_layers),
        cmocka_unit_test(test_plan_time_balance),
        cmocka_unit_test(test_plan_single_rank_holds_all),
        cmocka_unit_test(test_plan_rejects_bad_counts),
        cmocka_unit_test(test_plan_grid_chosen),
        cmocka_unit_test(test_plan_grid_shares),
        cmocka_unit_test(test_plan_grid_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
