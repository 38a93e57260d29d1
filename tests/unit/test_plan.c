/* test_plan: layer plans cover every layer once, contiguously, give every rank but 0 a
 * layer, put embed/head on rank 0, are balanced, and reject impossible rank counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

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
    assert_int_equal(plan_make(c, R, 2, 64, 8, PLAN_BALANCE_MEMORY, &p, &err), STF_OK);
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
    assert_int_equal(plan_make(&c, 4, 1, 1024, 32, PLAN_BALANCE_MEMORY, &p, &err), STF_OK);
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
            assert_int_equal(plan_make(&c, R, 1, 256, 8, PLAN_BALANCE_MEMORY, &pm, &err), STF_OK);
            assert_int_equal(plan_make(&c, R, 1, 256, 8, PLAN_BALANCE_TIME, &pt, &err), STF_OK);
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
    assert_int_equal(plan_make(&c, 1, 1, 512, 32, PLAN_BALANCE_MEMORY, &p, &err), STF_OK);
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
    assert_int_equal(plan_make(&c, 0, 1, 64, 8, PLAN_BALANCE_MEMORY, &p, &err), STF_ERR_ARG);
    assert_int_equal(plan_make(&c, c.n_layers + 2, 1, 64, 8, PLAN_BALANCE_MEMORY, &p, &err),
                     STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "use 1 to 3 ranks"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_every_count),
        cmocka_unit_test(test_plan_rank0_takes_fewer_layers),
        cmocka_unit_test(test_plan_time_balance),
        cmocka_unit_test(test_plan_single_rank_holds_all),
        cmocka_unit_test(test_plan_rejects_bad_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
