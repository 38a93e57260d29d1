/* util: CRC-32C against the standard check value and the portable table version; rng and
 * medians. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/crc32c.h"
#include "util/rng.h"
#include "util/timer.h"

static void test_util_crc32c_check_value(void **state)
{
    (void)state;
    /* the CRC-32C check value of "123456789" (RFC 3720, iSCSI) */
    assert_int_equal(crc32c_update(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_update_portable(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_update(0, "", 0), 0);
}

static void test_util_crc32c_fast_equals_portable(void **state)
{
    (void)state;
    unsigned char buf[4096 + 16];
    struct rng r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)rng_next(&r);
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len < 200; len += 7)
            assert_int_equal(crc32c_update(0, buf + off, len),
                             crc32c_update_portable(0, buf + off, len));
    /* incremental == one shot */
    uint32_t a = crc32c_update(crc32c_update(0, buf, 1000), buf + 1000, 3000);
    assert_int_equal(a, crc32c_update(0, buf, 4000));
    assert_int_equal(a, crc32c_update_portable(0, buf, 4000));
}

static void test_util_median_quantile(void **state)
{
    (void)state;
    double v[5] = {5, 1, 4, 2, 3};
    assert_float_equal(stf_median(v, 5), 3, 0);
    double w[4] = {4, 1, 3, 2};
    assert_float_equal(stf_median(w, 4), 2.5, 0);
    double q[10] = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
    assert_float_equal(stf_quantile(q, 10, 0.9), 9, 0);
}

static void test_util_rng_normal_moments(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 11);
    double sum = 0, sq = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = rng_normal(&r);
        sum += x;
        sq += x * x;
    }
    assert_true(sum / n > -0.01 && sum / n < 0.01);
    assert_true(sq / n > 0.98 && sq / n < 1.02);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_util_crc32c_check_value),
        cmocka_unit_test(test_util_crc32c_fast_equals_portable),
        cmocka_unit_test(test_util_median_quantile),
        cmocka_unit_test(test_util_rng_normal_moments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
