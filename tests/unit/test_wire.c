/* test_wire: frames round-trip, and every hand-made bad frame is rejected with a message
 * naming the sending rank (never a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/frame.h"

#define WIDTH 8u
#define FROM  3

static const struct frame_limits lim = {
    .width = WIDTH, .streams = 1, .max_rows = 4, .n_slots = 2, .capacity = 16};

struct fixture {
    struct frame_decoder *dec;
    float rows[8 * WIDTH];
    unsigned char buf[4096];
    size_t len;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    struct stf_error err;
    if (!fx || frame_decoder_create(&lim, &fx->dec, &err)) return -1;
    for (unsigned i = 0; i < 8 * WIDTH; i++)
        fx->rows[i] = 0.25f * (float)i - 3.0f;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    frame_decoder_free(fx->dec);
    free(fx);
    return 0;
}

/* A valid prefill of `rows` rows for session 7, slot 1, at position 2. */
static struct frame good_frame(struct fixture *fx, uint32_t rows)
{
    return (struct frame){.version = FRAME_VERSION,
                          .kind = FRAME_PREFILL,
                          .session = 7,
                          .position = 2,
                          .rows = rows,
                          .streams = 1,
                          .width = WIDTH,
                          .dtype = FRAME_F32,
                          .cache = {.slot = 1, .fill = 2},
                          .data = fx->rows,
                          .data_len = rows * WIDTH * sizeof(float),
                          .origin_rank = 2,
                          .sequence = 5};
}

static void pack(struct fixture *fx, const struct frame *f)
{
    struct stf_error err;
    assert_int_equal(frame_pack(f, fx->buf, sizeof fx->buf, &fx->len, &err), STF_OK);
    assert_int_equal(fx->len, frame_packed_size(f));
}

/* Decodes fx->buf and expects a protocol error whose message contains `needle`. */
static void expect_reject(struct fixture *fx, size_t len, const char *needle)
{
    struct frame f;
    struct stf_error err = {0};
    enum stf_status st = frame_decode(fx->dec, fx->buf, len, FROM, &f, &err);
    assert_int_equal(st, STF_ERR_PROTOCOL);
    if (!strstr(err.msg, "frame from rank 3: ") || !strstr(err.msg, needle))
        fail_msg("message `%s` lacks `%s`", err.msg, needle);
}

static void test_wire_roundtrip_prefill(void **state)
{
    struct fixture *fx = *state;
    struct frame in = good_frame(fx, 3), out;
    pack(fx, &in);
    struct stf_error err;
    assert_int_equal(frame_decode(fx->dec, fx->buf, fx->len, FROM, &out, &err), STF_OK);
    assert_int_equal(out.kind, FRAME_PREFILL);
    assert_int_equal(out.session, 7);
    assert_int_equal(out.position, 2);
    assert_int_equal(out.rows, 3);
    assert_int_equal(out.cache.slot, 1);
    assert_int_equal(out.cache.fill, 2);
    assert_int_equal(out.sequence, 5);
    assert_int_equal(out.origin_rank, 2);
    assert_int_equal(out.data_len, 3 * WIDTH * sizeof(float));
    assert_memory_equal(out.data, fx->rows, out.data_len);
    assert_null(out.error);
}

/* LSH directives (SPEC §2): the seed and FRAME_MAX_DROPS drop events survive the round trip,
 * and the checksum covers them (a changed event is caught). */
static void test_wire_roundtrip_lsh_directive(void **state)
{
    struct fixture *fx = *state;
    struct frame in = good_frame(fx, 1), out;
    in.kind = FRAME_DECODE;
    in.cache.rotation_seed = 0xFEDCBA9876543210ull;
    in.cache.n_drops = FRAME_MAX_DROPS;
    for (uint32_t i = 0; i < FRAME_MAX_DROPS; i++)
        in.cache.drops[i] = (struct frame_lsh_drop){.layer = 2 * i + 1, .count = 64};
    pack(fx, &in);
    struct stf_error err;
    assert_int_equal(frame_decode(fx->dec, fx->buf, fx->len, FROM, &out, &err), STF_OK);
    assert_true(out.cache.rotation_seed == 0xFEDCBA9876543210ull);
    assert_int_equal(out.cache.n_drops, FRAME_MAX_DROPS);
    for (uint32_t i = 0; i < FRAME_MAX_DROPS; i++) {
        assert_int_equal(out.cache.drops[i].layer, 2 * i + 1);
        assert_int_equal(out.cache.drops[i].count, 64);
    }
    assert_int_equal(frame_checksum(&in), frame_checksum(&out));
    in.cache.drops[FRAME_MAX_DROPS - 1].count = 63;
    assert_int_not_equal(frame_checksum(&in), frame_checksum(&out));
}

static void test_wire_roundtrip_control_and_error(void **state)
{
    struct fixture *fx = *state;
    struct stf_error err;
    struct frame out;
    struct frame c = {.version = FRAME_VERSION,
                      .kind = FRAME_CLOSE,
                      .session = 9,
                      .cache = {.slot = 0},
                      .sequence = 1};
    pack(fx, &c);
    assert_int_equal(frame_decode(fx->dec, fx->buf, fx->len, FROM, &out, &err), STF_OK);
    assert_int_equal(out.kind, FRAME_CLOSE);
    assert_int_equal(out.session, 9);
    struct frame e = {.version = FRAME_VERSION,
                      .kind = FRAME_ERROR,
                      .origin_rank = 4,
                      .error = "rank 4: out of memory",
                      .sequence = 3};
    pack(fx, &e);
    assert_int_equal(frame_decode(fx->dec, fx->buf, fx->len, FROM, &out, &err), STF_OK);
    assert_string_equal(out.error, "rank 4: out of memory");
    assert_int_equal(out.origin_rank, 4);
}

static void test_wire_reject_truncated(void **state)
{
    struct fixture *fx = *state;
    struct frame f = good_frame(fx, 2);
    pack(fx, &f);
    /* every strict prefix either fails to unpack or fails a later check */
    for (size_t cut = 0; cut < fx->len; cut++) {
        struct frame out;
        struct stf_error err = {0};
        enum stf_status st = frame_decode(fx->dec, fx->buf, cut, FROM, &out, &err);
        assert_int_equal(st, STF_ERR_PROTOCOL);
        assert_non_null(strstr(err.msg, "frame from rank 3"));
    }
    expect_reject(fx, 0, "empty");
    expect_reject(fx, fx->len / 2, "");
}

static void test_wire_reject_garbage(void **state)
{
    struct fixture *fx = *state;
    memset(fx->buf, 0xff, 64);
    expect_reject(fx, 64, "cannot unpack");
    expect_reject(fx, sizeof fx->buf + 1000000, "larger than any valid frame");
}

static void test_wire_reject_bad_checksum(void **state)
{
    struct fixture *fx = *state;
    struct frame f = good_frame(fx, 2);
    pack(fx, &f);
    /* the data field is the tail of the packed frame's payload: find the first float */
    unsigned char *at = memmem(fx->buf, fx->len, fx->rows, sizeof(float));
    assert_non_null(at);
    at[1] ^= 0x40;
    expect_reject(fx, fx->len, "checksum mismatch");
}

struct bad_case {
    const char *name;
    void (*mutate)(struct frame *f);
    const char *needle;
};

static void bad_version(struct frame *f)
{
    f->version = 2;
}
static void zero_version(struct frame *f)
{
    f->version = 0;
}
static void unknown_kind(struct frame *f)
{
    f->kind = (enum frame_kind)9;
}
static void zero_kind(struct frame *f)
{
    f->kind = (enum frame_kind)0;
}
static void wrong_width(struct frame *f)
{
    f->width = WIDTH / 2;
    f->data_len = f->rows * f->width * sizeof(float);
}
static void wrong_streams(struct frame *f)
{
    f->streams = 2;
    f->data_len /= 2; /* keep rows*streams*width*4 consistent except the model's count */
    f->rows = 1;
    f->data_len = 2 * WIDTH * sizeof(float);
}
static void short_data(struct frame *f)
{
    f->data_len -= 4;
}
static void long_data(struct frame *f)
{
    f->rows = 1;
}
static void no_rows(struct frame *f)
{
    f->rows = 0;
    f->data_len = 0;
}
static void too_many_rows(struct frame *f)
{
    f->rows = 5;
    f->data_len = 5 * WIDTH * sizeof(float);
}
static void decode_two_rows(struct frame *f)
{
    f->kind = FRAME_DECODE;
}
static void int8_dtype(struct frame *f)
{
    f->dtype = FRAME_I8;
}
static void bad_dtype(struct frame *f)
{
    f->dtype = (enum frame_dtype)7;
}
static void bad_slot(struct frame *f)
{
    f->cache.slot = 2;
}
static void reset_with_fill(struct frame *f)
{
    f->cache.reset = true;
}
static void past_capacity(struct frame *f)
{
    f->cache.fill = 15;
}
static void position_past_capacity(struct frame *f)
{
    f->position = 15;
}
static void zero_sequence(struct frame *f)
{
    f->sequence = 0;
}
static void negative_origin(struct frame *f)
{
    f->origin_rank = -1;
}
static void lsh_drop_zero(struct frame *f)
{
    f->cache.n_drops = 1;
    f->cache.drops[0] = (struct frame_lsh_drop){.layer = 3, .count = 0};
}
static void lsh_drop_on_close(struct frame *f)
{
    f->kind = FRAME_CLOSE;
    f->rows = 0;
    f->data_len = 0;
    f->cache.n_drops = 1;
    f->cache.drops[0] = (struct frame_lsh_drop){.layer = 0, .count = 4};
}
static void rotation_seed_on_reset(struct frame *f)
{
    f->kind = FRAME_RESET;
    f->rows = 0;
    f->data_len = 0;
    f->cache.rotation_seed = 99;
}
static void close_with_rows(struct frame *f)
{
    f->kind = FRAME_CLOSE;
}
static void error_without_text(struct frame *f)
{
    f->kind = FRAME_ERROR;
    f->rows = 0;
    f->data_len = 0;
}
static void text_on_prefill(struct frame *f)
{
    f->error = "surprise";
}
static void close_bad_slot(struct frame *f)
{
    f->kind = FRAME_CLOSE;
    f->rows = 0;
    f->data_len = 0;
    f->cache.slot = 5;
}

static const struct bad_case bad_cases[] = {
    {"bad version", bad_version, "protocol version 2, expected 1"},
    {"missing version", zero_version, "protocol version 0"},
    {"unknown kind", unknown_kind, "unknown kind 9"},
    {"missing kind", zero_kind, "unknown kind 0"},
    {"wrong width", wrong_width, "width 4, expected d_model 8"},
    {"wrong streams", wrong_streams, "2 streams, this model has 1"},
    {"short data", short_data, "data is 60 bytes, but rows 2 x streams 1 x width 8 x 4 = 64"},
    {"long data", long_data, "data is 64 bytes, but rows 1"},
    {"no rows", no_rows, "no rows"},
    {"too many rows", too_many_rows, "5 rows, the limit is 4"},
    {"decode with 2 rows", decode_two_rows, "exactly 1"},
    {"int8", int8_dtype, "int8 is reserved"},
    {"bad dtype", bad_dtype, "unknown dtype 7"},
    {"bad slot", bad_slot, "cache slot 2, the job has 2 slots"},
    {"reset with fill", reset_with_fill, "reset with fill 2"},
    {"past capacity", past_capacity, "fill 15 + 2 rows exceeds the slot capacity 16"},
    {"position past capacity", position_past_capacity, "position 15 + 2 rows"},
    {"zero sequence", zero_sequence, "sequence number 0"},
    {"negative origin", negative_origin, "origin rank -1"},
    {"lsh drop of 0", lsh_drop_zero, "LSH drop event 0 for sub-layer 3 drops 0 entries"},
    {"lsh drop on close", lsh_drop_on_close, "close: carries LSH cache events"},
    {"rotation seed on reset", rotation_seed_on_reset, "reset: carries LSH cache events"},
    {"close with rows", close_with_rows, "expected none"},
    {"error without text", error_without_text, "error frame without a message"},
    {"text on prefill", text_on_prefill, "carries an error message"},
    {"close bad slot", close_bad_slot, "cache slot 5"},
};

static void test_wire_reject_table(void **state)
{
    struct fixture *fx = *state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        struct frame f = good_frame(fx, 2);
        bad_cases[i].mutate(&f);
        pack(fx, &f);
        struct frame out;
        struct stf_error err = {0};
        enum stf_status st = frame_decode(fx->dec, fx->buf, fx->len, FROM, &out, &err);
        if (st != STF_ERR_PROTOCOL) fail_msg("case `%s` was accepted", bad_cases[i].name);
        if (!strstr(err.msg, "frame from rank 3: ") || !strstr(err.msg, bad_cases[i].needle))
            fail_msg("case `%s`: message `%s` lacks `%s`", bad_cases[i].name, err.msg,
                     bad_cases[i].needle);
    }
}

static void test_wire_pack_buffer_too_small(void **state)
{
    struct fixture *fx = *state;
    struct frame f = good_frame(fx, 4);
    size_t len;
    struct stf_error err;
    assert_int_equal(frame_pack(&f, fx->buf, 16, &len, &err), STF_ERR_ARG);
    assert_true(frame_packed_size(&f) <= frame_max_packed_size(&lim));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wire_roundtrip_prefill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_roundtrip_lsh_directive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_roundtrip_control_and_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_reject_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_reject_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_reject_bad_checksum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_reject_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_pack_buffer_too_small, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
