/* Config: presets, parsing errors, round trip, and SPEC §5's per-layer byte counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "model/config.h"
#include "model/weights.h"

static struct model_config from_preset(const char *name)
{
    struct model_config c = {0};
    struct stf_error err = {0};
    const char *text = model_preset_text(name);
    assert_non_null(text);
    assert_int_equal(model_config_parse(&c, text, name, &err), STF_OK);
    return c;
}

static void test_config_every_preset_validates(void **state)
{
    (void)state;
    const char *name;
    int n = 0;
    for (int i = 0; (name = model_preset_name(i, NULL)); i++, n++) {
        struct model_config c = from_preset(name);
        struct stf_error err = {0};
        assert_int_equal(model_config_validate(&c, &err), STF_OK);
    }
    assert_true(n >= 9);
}

/* SPEC §5: bytes a token must read per layer — 17b-dense 4.38 GB, 17b-sparse 38 MB,
 * 800m-dense 50 MB, 800m-sparse 4.2 MB. */
static void test_config_read_bytes_match_spec(void **state)
{
    (void)state;
    struct {
        const char *name;
        double spec_bytes, tol;
    } cases[] = {{"17b-dense", 4.38e9, 0.01},
                 {"17b-sparse", 38e6, 0.03},
                 {"800m-dense", 50e6, 0.03},
                 {"800m-sparse", 4.2e6, 0.05}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct model_config c = from_preset(cases[i].name);
        double got = (double)model_layer_read_bytes(&c);
        double rel = got / cases[i].spec_bytes - 1.0;
        if (rel < 0) rel = -rel;
        if (rel > cases[i].tol)
            fail_msg("%s: %.4g bytes per layer, SPEC says %.4g", cases[i].name, got,
                     cases[i].spec_bytes);
    }
}

/* Multiply-adds per token from the tensor lists against SPEC §1-§3 written out here:
 * dense attention 4d², sparse QKV d² (multiplicative) + 21·d·M (convolutions 9+9+3 taps),
 * dense FF 2dF, sparse FF d·r + r·F + 2·B·d, SRU 2dn + 3n², output d·V. */
static void test_config_macs_match_spec_formulas(void **state)
{
    (void)state;
    const char *names[] = {"17b-dense",   "17b-sparse",      "800m-dense",
                           "800m-sparse", "tiny-sparse-sru", "small-sparse"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct model_config c = from_preset(names[i]);
        uint64_t d = c.d_model, F = c.d_ff, n = c.sru_units, want = 0;
        if (c.attn == ATTN_DENSE)
            want += 4 * d * d;
        else
            want += d * d + 21 * d * (d / c.qkv_modules);
        if (c.ff == FF_DENSE)
            want += 2 * d * F;
        else
            want += d * c.ff_rank + (uint64_t)c.ff_rank * F + 2 * (F / c.ff_block) * d;
        want += 2 * d * n + 3 * n * n;
        if (model_layer_macs(&c) != want)
            fail_msg("%s: %llu multiply-adds per layer, SPEC gives %llu", names[i],
                     (unsigned long long)model_layer_macs(&c), (unsigned long long)want);
        assert_int_equal(model_head_macs(&c), d * c.vocab_size);
    }
}

/* A kind value without a table entry is an error naming the field (never a fallback). */
static void test_config_unknown_kind_names_the_field(void **state)
{
    (void)state;
    struct {
        enum attn_kind attn;
        enum ff_kind ff;
        enum out_kind out;
        const char *needle;
    } cases[] = {
        {(enum attn_kind)9, FF_DENSE, OUT_DENSE, "config: attn kind 9 unknown"},
        {ATTN_LSH, FF_DENSE, OUT_DENSE, "config: attn `lsh` names no projection weights"},
        {ATTN_DENSE, (enum ff_kind)2, OUT_DENSE, "config: ff kind 2 unknown"},
        {ATTN_DENSE, FF_DENSE, (enum out_kind)7, "config: out kind 7 unknown"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct model_config c = from_preset("tiny-dense");
        c.attn = cases[i].attn;
        c.ff = cases[i].ff;
        c.out = cases[i].out;
        struct stf_error err = {0};
        assert_int_equal(model_config_validate(&c, &err), STF_ERR_FORMAT);
        if (!strstr(err.msg, cases[i].needle))
            fail_msg("message `%s` lacks `%s`", err.msg, cases[i].needle);
        assert_int_equal(model_tensor_list(&c, NULL, NULL, 0), -1);
    }
}

static void test_config_parse_errors_name_the_field(void **state)
{
    (void)state;
    struct {
        const char *text, *needle;
    } cases[] = {
        {"d_model = 64\nbogus = 3\n", "unknown key `bogus`"},
        {"d_model = sixty\n", "`d_model` must be a non-negative integer"},
        {"d_model = -4\n", "`d_model` must be a non-negative integer"},
        {"ff = sparsest\n", "`ff` must be one of dense, sparse"},
        {"just words\n", "expected `key = value`"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct model_config c = {0};
        struct stf_error err = {0};
        assert_int_equal(model_config_parse(&c, cases[i].text, "my.cfg", &err), STF_ERR_FORMAT);
        if (!strstr(err.msg, cases[i].needle) || !strstr(err.msg, "my.cfg:"))
            fail_msg("message `%s` lacks `%s`", err.msg, cases[i].needle);
    }
}

static void test_config_validate_rejects(void **state)
{
    (void)state;
    struct {
        const char *override, *needle;
    } cases[] = {
        {"n_heads = 5\n", "n_heads (5) must divide d_model"},
        {"ff = sparse\nff_block = 7\n", "ff_block (7) must divide d_ff"},
        {"attn = sparse_qkv\nqkv_modules = 3\n", "qkv_modules (3) must divide d_model"},
        {"out = multiplicative\nout_modules = 3\n", "out_modules (3) must divide vocab_size"},
        {"eos_id = 512\n", "eos_id (512) must be below vocab_size"},
        {"d_model = 0\n", "d_model must be in 1..1048576, got 0"},
        {"n_layers = 5000\n", "n_layers must be in 1..4096, got 5000"},
        {"attn = lsh\n", "attn `lsh` names no projection weights"},
        /* SPEC §2 LSH parameters, over tiny-terraformer (below) */
        {"lsh_n_buckets = 5\n", "lsh_n_buckets must be even"},
        {"lsh_n_buckets = 0\n", "lsh_n_buckets must be even"},
        {"lsh_n_hashes = 0\n", "lsh_n_hashes must be in 1..8"},
        {"lsh_n_hashes = 9\n", "lsh_n_hashes must be in"},
        {"lsh_cache_len = 15\n", "lsh C = n_hashes * chunk_len * (1 + chunks_before) = 16 exceeds "
                                 "lsh_cache_len (P) 15"},
        {"lsh_drop_len = 25\n", "lsh_drop_len (D) must be in 1..lsh_cache_len (24), got 25"},
        {"lsh_drop_len = 0\n", "lsh_drop_len (D) must be in 1..lsh_cache_len"},
        {"lsh_phase = 2\n", "lsh_phase (2) must be below lsh_period (2)"},
        {"lsh_period = 9\nlsh_phase = 5\n", "lsh_phase (5) names no attention sub-layer (the "
                                            "model has 4)"},
        {"lsh_chunk_len = 0\n", "lsh_chunk_len must be at least 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct model_config c =
            from_preset(strncmp(cases[i].override, "lsh_", 4) ? "tiny-dense" : "tiny-terraformer");
        struct stf_error err = {0};
        assert_int_equal(model_config_parse(&c, cases[i].override, "x", &err), STF_OK);
        assert_int_not_equal(model_config_validate(&c, &err), STF_OK);
        if (!strstr(err.msg, cases[i].needle))
            fail_msg("message `%s` lacks `%s`", err.msg, cases[i].needle);
    }
}

static void test_config_format_parse_round_trip(void **state)
{
    (void)state;
    struct model_config a = from_preset("tiny-sparse-sru"), b = {0};
    char buf[2048];
    struct stf_error err = {0};
    assert_true(model_config_format(&a, buf, sizeof buf) < (int)sizeof buf);
    assert_int_equal(model_config_parse(&b, buf, "formatted", &err), STF_OK);
    assert_memory_equal(&a, &b, sizeof a);
}

/* model_lsh_entries (the closed form the benchmark's cost figures use) against rank 0's
 * rule applied one position at a time (drop model_lsh_drop_before, then write one entry). */
static void test_config_lsh_entries_follow_the_drop_rule(void **state)
{
    (void)state;
    static const uint32_t PD[][2] = {{24, 8}, {24, 24}, {24, 1}, {192, 64}, {7, 3}};
    struct model_config c = from_preset("tiny-terraformer");
    for (size_t k = 0; k < sizeof PD / sizeof PD[0]; k++) {
        c.lsh_cache_len = PD[k][0], c.lsh_drop_len = PD[k][1];
        uint32_t end = 0;
        for (uint32_t pos = 0; pos < 5 * c.lsh_cache_len; pos++) {
            end -= model_lsh_drop_before(&c, end);
            end++;
            assert_int_equal(model_lsh_entries(&c, pos), end);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_every_preset_validates),
        cmocka_unit_test(test_config_read_bytes_match_spec),
        cmocka_unit_test(test_config_macs_match_spec_formulas),
        cmocka_unit_test(test_config_unknown_kind_names_the_field),
        cmocka_unit_test(test_config_parse_errors_name_the_field),
        cmocka_unit_test(test_config_validate_rejects),
        cmocka_unit_test(test_config_format_parse_round_trip),
        cmocka_unit_test(test_config_lsh_entries_follow_the_drop_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
