/*
 * libFuzzer target: frames as a hostile peer would send them (-DSTF_FUZZ=ON, clang).
 * The first byte picks how the rest is used:
 *   0  raw bytes given to frame_decode (the protobuf parser and every check);
 *   1  a frame built from the bytes (every field, data from the tail) and packed, so its
 *      checksum is right and decoding reaches the semantic checks;
 *   2  the frame of mode 1 with bytes of the packed message overwritten from the input.
 * Decoding must fail with a message starting "frame from rank 3: " or succeed with a frame
 * that satisfies every limit of the decoder (a frame the receiver can use without further
 * checks); a packed frame with a right checksum must never fail on its checksum.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct frame_limits lim = {
    .width = 8, .streams = 1, .max_rows = 4, .n_slots = 3, .capacity = 16};

/* Reads bytes from the input as fields; zeros past the end. */
struct reader {
    const uint8_t *p;
    size_t n;
};

static uint32_t take_u32(struct reader *r, uint32_t small_mod)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v = v << 8 | (r->n ? *r->p : 0);
        if (r->n) r->p++, r->n--;
    }
    /* mostly small values near the limits, sometimes anything */
    return (v & 0x80000000u) ? v : v % small_mod;
}

static void check_valid(const struct frame *f)
{
    if (f->version != FRAME_VERSION || f->sequence == 0 || f->origin_rank < 0) abort();
    if (frame_kind_has_rows(f->kind)) {
        if (f->rows == 0 || f->rows > lim.max_rows || f->width != lim.width ||
            f->streams != lim.streams || f->data_len != (size_t)f->rows * f->width * 4 ||
            !f->data || f->cache.slot >= lim.n_slots ||
            (uint64_t)f->cache.fill + f->rows > lim.capacity ||
            (uint64_t)f->position + f->rows > lim.capacity)
            abort();
        volatile unsigned char sink = 0;
        for (size_t i = 0; i < f->data_len; i++) /* the borrowed data is readable */
            sink ^= ((const unsigned char *)f->data)[i];
        (void)sink;
    } else if (f->rows || f->data_len) {
        abort();
    }
    if (f->kind == FRAME_ERROR && (!f->error || strlen(f->error) >= FRAME_ERROR_LEN)) abort();
}

static void decode_and_check(struct frame_decoder *d, const void *buf, size_t len,
                             bool checksum_right)
{
    struct frame f;
    struct stf_error err = {0};
    if (frame_decode(d, buf, len, 3, &f, &err) == STF_OK) {
        check_valid(&f);
    } else {
        if (strncmp(err.msg, "frame from rank 3: ", 19) != 0) abort();
        if (checksum_right && strstr(err.msg, "checksum mismatch")) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct frame_decoder *d;
    static unsigned char *buf;
    static size_t cap;
    if (!d) {
        struct stf_error err = {0};
        if (frame_decoder_create(&lim, &d, &err) != STF_OK) abort();
        cap = frame_max_packed_size(&lim) + 4096;
        buf = malloc(cap);
        if (!buf) abort();
    }
    if (size == 0) return 0;
    int mode = data[0] % 3;
    if (mode == 0) {
        decode_and_check(d, data + 1, size - 1, false);
        return 0;
    }
    struct reader r = {data + 1, size - 1};
    struct frame f = {0};
    f.version = take_u32(&r, 3);
    f.kind = (enum frame_kind)take_u32(&r, 8);
    f.session = take_u32(&r, 100);
    f.position = take_u32(&r, 20);
    f.rows = take_u32(&r, 6);
    f.streams = take_u32(&r, 3);
    f.width = take_u32(&r, 10);
    f.dtype = (enum frame_dtype)take_u32(&r, 4);
    f.cache.slot = take_u32(&r, 5);
    f.cache.fill = take_u32(&r, 20);
    f.cache.reset = take_u32(&r, 2) & 1;
    f.cache.rotation_seed = take_u32(&r, 2);
    f.cache.n_drops = take_u32(&r, FRAME_MAX_DROPS + 1) % (FRAME_MAX_DROPS + 1);
    f.origin_rank = (int32_t)take_u32(&r, 5);
    f.sequence = take_u32(&r, 3);
    static char error[FRAME_ERROR_LEN + 64];
    uint32_t elen = take_u32(&r, sizeof error) % sizeof error;
    if (elen) {
        memset(error, 'e', elen - 1);
        error[elen - 1] = '\0';
        f.error = error;
    }
    /* data: the declared size when the input has that many bytes left, else what is left */
    size_t want = (size_t)(f.rows % 8) * (f.streams % 4) * (f.width % 16) * 4;
    f.data_len = want <= r.n ? want : r.n;
    f.data = r.n ? r.p : NULL;
    r.p += f.data_len;
    r.n -= f.data_len;
    size_t len = 0;
    struct stf_error err = {0};
    if (frame_packed_size(&f) > cap) return 0;
    if (frame_pack(&f, buf, cap, &len, &err) != STF_OK) abort(); /* cap is enough */
    if (mode == 2 && len) {
        /* overwrite: (position, byte) pairs from the rest of the input */
        while (r.n >= 3) {
            size_t at = ((size_t)r.p[0] << 8 | r.p[1]) % len;
            buf[at] = r.p[2];
            r.p += 3;
            r.n -= 3;
        }
    }
    decode_and_check(d, buf, len, mode == 1);
    return 0;
}
