/* Sampler: greedy, top-k, top-p and the sampled distribution (SPEC §4). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/sampler.h"

static struct sampler make(float t, uint32_t k, float p, uint64_t seed, uint32_t V)
{
    struct sampler s = {0};
    struct sampler_params sp = {.temperature = t, .top_k = k, .top_p = p, .seed = seed};
    struct stf_error err = {0};
    assert_int_equal(sampler_create(&s, &sp, V, &err), STF_OK);
    return s;
}

static void test_sampler_greedy_first_max(void **state)
{
    (void)state;
    float logits[5] = {1, 3, 2, 3, -1};
    struct sampler s = make(0, 0, 1, 1, 5);
    assert_int_equal(sampler_sample(&s, logits), 1);
    sampler_destroy(&s);
    s = make(1.0f, 1, 1, 1, 5); /* top-k 1 keeps only the first maximum */
    for (int i = 0; i < 20; i++)
        assert_int_equal(sampler_sample(&s, logits), 1);
    sampler_destroy(&s);
}

/* Frequencies over many draws match softmax(logits / T) within 5 standard errors. */
static void test_sampler_distribution(void **state)
{
    (void)state;
    float logits[4] = {0.0f, 1.0f, 2.0f, 0.5f};
    const float T = 0.7f;
    const int draws = 40000;
    struct sampler s = make(T, 0, 1, 99, 4);
    int count[4] = {0};
    for (int i = 0; i < draws; i++)
        count[sampler_sample(&s, logits)]++;
    double z = 0, p[4];
    for (int i = 0; i < 4; i++)
        z += exp(logits[i] / T);
    for (int i = 0; i < 4; i++) {
        p[i] = exp(logits[i] / T) / z;
        double se = sqrt(p[i] * (1 - p[i]) / draws);
        double f = (double)count[i] / draws;
        if (fabs(f - p[i]) > 5 * se) fail_msg("token %d: frequency %.4f, softmax %.4f", i, f, p[i]);
    }
    sampler_destroy(&s);
}

/* top-p 0.5 with probabilities {0.6, 0.3, 0.1}: only the first survives. top-p 0.8: two. */
static void test_sampler_top_p(void **state)
{
    (void)state;
    float logits[3] = {logf(0.3f), logf(0.6f), logf(0.1f)};
    struct sampler s = make(1.0f, 0, 0.5f, 5, 3);
    for (int i = 0; i < 200; i++)
        assert_int_equal(sampler_sample(&s, logits), 1);
    sampler_destroy(&s);
    s = make(1.0f, 0, 0.8f, 5, 3);
    int seen[3] = {0};
    for (int i = 0; i < 2000; i++)
        seen[sampler_sample(&s, logits)]++;
    assert_int_equal(seen[2], 0);
    assert_true(seen[0] > 400 && seen[1] > 1000);
    sampler_destroy(&s);
}

static void test_sampler_seed_reproducible(void **state)
{
    (void)state;
    float logits[8] = {0, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f};
    struct sampler a = make(1.0f, 0, 1, 1234, 8), b = make(1.0f, 0, 1, 1234, 8),
                   c = make(1.0f, 0, 1, 4321, 8);
    int same = 1, differ = 0;
    for (int i = 0; i < 64; i++) {
        uint32_t x = sampler_sample(&a, logits), y = sampler_sample(&b, logits),
                 z = sampler_sample(&c, logits);
        same &= x == y;
        differ |= x != z;
    }
    assert_true(same);
    assert_true(differ);
    sampler_destroy(&a), sampler_destroy(&b), sampler_destroy(&c);
}

/* The repetition penalty, computed by hand: a positive logit of a token in the window is
 * divided by P, a negative one multiplied; tokens outside the last N are untouched. */
static void test_sampler_repeat_penalty(void **state)
{
    (void)state;
    struct stf_error err = {0};
    struct sampler s = {0};
    struct sampler_params sp = {
        .temperature = 0, .top_p = 1, .repeat_penalty = 1.5f, .repeat_last_n = 2};
    assert_int_equal(sampler_create(&s, &sp, 4, &err), STF_OK);
    float logits[4] = {2.0f, 1.9f, -0.5f, -0.6f};
    const uint32_t none[1] = {3};
    assert_int_equal(sampler_sample_history(&s, logits, none, 1), 0); /* 3 is not the max */
    const uint32_t saw0[2] = {0, 0}; /* 2.0 / 1.5 = 1.33 < 1.9: token 1 wins */
    assert_int_equal(sampler_sample_history(&s, logits, saw0, 2), 1);
    const uint32_t old0[3] = {0, 2, 3}; /* 0 is outside the last 2: untouched */
    assert_int_equal(sampler_sample_history(&s, logits, old0, 3), 0);
    float neg[3] = {-1.0f, -1.2f, -3.0f}; /* -1.0 * 1.5 = -1.5 < -1.2: token 1 wins */
    struct sampler s3 = {0};
    assert_int_equal(sampler_create(&s3, &sp, 3, &err), STF_OK);
    const uint32_t saw_neg[1] = {0};
    assert_int_equal(sampler_sample_history(&s3, neg, saw_neg, 1), 1);
    assert_true(neg[0] == -1.0f); /* the caller's logits are not changed */
    sampler_destroy(&s), sampler_destroy(&s3);
    /* off (1 or 0): the same as sampler_sample */
    sp.repeat_penalty = 1.0f;
    assert_int_equal(sampler_create(&s, &sp, 4, &err), STF_OK);
    assert_int_equal(sampler_sample_history(&s, logits, saw0, 2), 0);
    sampler_destroy(&s);
}

static void test_sampler_rejects_bad_params(void **state)
{
    (void)state;
    struct stf_error err = {0};
    struct sampler_params bad[] = {
        {.temperature = -1, .top_p = 1},
        {.temperature = 1, .top_p = 0},
        {.temperature = 1, .top_p = 1.5f},
        {.temperature = NAN, .top_p = 1},
        {.temperature = 1, .top_p = 1, .repeat_penalty = -1},
        {.temperature = 1, .top_p = 1, .repeat_penalty = INFINITY},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sampler_params_check(&bad[i], &err), STF_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampler_greedy_first_max),
        cmocka_unit_test(test_sampler_distribution),
        cmocka_unit_test(test_sampler_top_p),
        cmocka_unit_test(test_sampler_seed_reproducible),
        cmocka_unit_test(test_sampler_repeat_penalty),
        cmocka_unit_test(test_sampler_rejects_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
