/* frame: struct frame <-> protobuf-c Frame (see frame.h and docs/protocol.md). */
#include "wire/frame.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frames.pb-c.h"
#include "util/crc32c.h"

typedef Sparsetf__Wire__Frame pb_frame;
typedef Sparsetf__Wire__CacheDirective pb_cache;
typedef Sparsetf__Wire__LshDrop pb_drop;

_Static_assert((int)SPARSETF__WIRE__FRAME_KIND__FRAME_PREFILL == FRAME_PREFILL, "kind ids");
_Static_assert((int)SPARSETF__WIRE__FRAME_KIND__FRAME_DECODE == FRAME_DECODE, "kind ids");
_Static_assert((int)SPARSETF__WIRE__FRAME_KIND__FRAME_RESET == FRAME_RESET, "kind ids");
_Static_assert((int)SPARSETF__WIRE__FRAME_KIND__FRAME_CLOSE == FRAME_CLOSE, "kind ids");
_Static_assert((int)SPARSETF__WIRE__FRAME_KIND__FRAME_SHUTDOWN == FRAME_SHUTDOWN, "kind ids");
_Static_assert((int)SPARSETF__WIRE__FRAME_KIND__FRAME_ERROR == FRAME_ERROR, "kind ids");
_Static_assert((int)SPARSETF__WIRE__DTYPE__DTYPE_F32 == FRAME_F32, "dtype ids");
_Static_assert((int)SPARSETF__WIRE__DTYPE__DTYPE_I8 == FRAME_I8, "dtype ids");

const char *frame_kind_name(enum frame_kind k)
{
    switch (k) {
    case FRAME_PREFILL:
        return "prefill";
    case FRAME_DECODE:
        return "decode";
    case FRAME_RESET:
        return "reset";
    case FRAME_CLOSE:
        return "close";
    case FRAME_SHUTDOWN:
        return "shutdown";
    case FRAME_ERROR:
        return "error";
    }
    return "unknown";
}

bool frame_kind_has_rows(enum frame_kind k)
{
    return k == FRAME_PREFILL || k == FRAME_DECODE;
}

/* ---- the checksum over a canonical header (independent of protobuf's encoding) ---- */

static unsigned char *put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

static unsigned char *put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

uint32_t frame_checksum(const struct frame *f)
{
    /* version kind session position rows streams width dtype | slot fill reset seed n_drops
     * drops... | origin sequence error_len, then the error text, then the data */
    unsigned char hdr[128 + 8 * FRAME_MAX_DROPS], *p = hdr;
    uint32_t n_drops = f->cache.n_drops < FRAME_MAX_DROPS ? f->cache.n_drops : FRAME_MAX_DROPS;
    size_t err_len = f->error ? strlen(f->error) : 0;
    p = put_u32(p, f->version);
    p = put_u32(p, (uint32_t)f->kind);
    p = put_u64(p, f->session);
    p = put_u32(p, f->position);
    p = put_u32(p, f->rows);
    p = put_u32(p, f->streams);
    p = put_u32(p, f->width);
    p = put_u32(p, (uint32_t)f->dtype);
    p = put_u32(p, f->cache.slot);
    p = put_u32(p, f->cache.fill);
    p = put_u32(p, f->cache.reset ? 1u : 0u);
    p = put_u64(p, f->cache.rotation_seed);
    p = put_u32(p, f->cache.n_drops);
    for (uint32_t i = 0; i < n_drops; i++) {
        p = put_u32(p, f->cache.drops[i].layer);
        p = put_u32(p, f->cache.drops[i].count);
    }
    p = put_u32(p, (uint32_t)f->origin_rank);
    p = put_u64(p, f->sequence);
    p = put_u32(p, (uint32_t)err_len);
    uint32_t crc = crc32c_update(0, hdr, (size_t)(p - hdr));
    if (err_len) crc = crc32c_update(crc, f->error, err_len);
    if (f->data_len) crc = crc32c_update(crc, f->data, f->data_len);
    return crc;
}

/* ---- packing ---- */

/* The protobuf view of f; borrows f's data and error. */
struct pb_view {
    pb_frame fr;
    pb_cache cache;
    pb_drop drops[FRAME_MAX_DROPS];
    pb_drop *drop_ptrs[FRAME_MAX_DROPS];
};

static void view_init(struct pb_view *v, const struct frame *f)
{
    sparsetf__wire__frame__init(&v->fr);
    sparsetf__wire__cache_directive__init(&v->cache);
    uint32_t n_drops = f->cache.n_drops < FRAME_MAX_DROPS ? f->cache.n_drops : FRAME_MAX_DROPS;
    for (uint32_t i = 0; i < n_drops; i++) {
        sparsetf__wire__lsh_drop__init(&v->drops[i]);
        v->drops[i].layer = f->cache.drops[i].layer;
        v->drops[i].count = f->cache.drops[i].count;
        v->drop_ptrs[i] = &v->drops[i];
    }
    v->cache.slot = f->cache.slot;
    v->cache.fill = f->cache.fill;
    v->cache.reset = f->cache.reset;
    v->cache.rotation_seed = f->cache.rotation_seed;
    v->cache.n_drops = n_drops;
    v->cache.drops = n_drops ? v->drop_ptrs : NULL;
    v->fr.version = f->version;
    v->fr.kind = (Sparsetf__Wire__FrameKind)f->kind;
    v->fr.session = f->session;
    v->fr.position = f->position;
    v->fr.rows = f->rows;
    v->fr.streams = f->streams;
    v->fr.width = f->width;
    v->fr.dtype = (Sparsetf__Wire__DType)f->dtype;
    v->fr.cache = &v->cache;
    v->fr.data.len = f->data_len;
    v->fr.data.data = (uint8_t *)(uintptr_t)f->data;
    v->fr.crc32c = frame_checksum(f);
    v->fr.origin_rank = f->origin_rank;
    /* protobuf-c only reads the string; the cast drops const for its struct field */
    v->fr.error = (char *)(uintptr_t)(f->error ? f->error : protobuf_c_empty_string);
    v->fr.sequence = f->sequence;
}

size_t frame_packed_size(const struct frame *f)
{
    struct pb_view v;
    view_init(&v, f);
    return sparsetf__wire__frame__get_packed_size(&v.fr);
}

enum stf_status frame_pack(const struct frame *f, void *buf, size_t cap, size_t *len,
                           struct stf_error *err)
{
    struct pb_view v;
    view_init(&v, f);
    size_t need = sparsetf__wire__frame__get_packed_size(&v.fr);
    if (need > cap)
        return stf_fail(err, STF_ERR_ARG, "%s frame needs %zu bytes, buffer holds %zu",
                        frame_kind_name(f->kind), need, cap);
    *len = sparsetf__wire__frame__pack(&v.fr, buf);
    return STF_OK;
}

size_t frame_max_packed_size(const struct frame_limits *lim)
{
    /* every varint at its widest (10 bytes) plus tags; data and error at their longest */
    size_t data = (size_t)lim->max_rows * lim->streams * lim->width * sizeof(float);
    return data + FRAME_ERROR_LEN + 16 * 12 + FRAME_MAX_DROPS * 24 + 64;
}

/* ---- decoding through an arena ---- */

struct frame_decoder {
    struct frame_limits lim;
    size_t max_len; /* largest frame accepted */
    unsigned char *arena;
    size_t cap, used;
    ProtobufCAllocator alloc;
};

static void *arena_alloc(void *ctx, size_t size)
{
    struct frame_decoder *d = ctx;
    size_t at = (d->used + 15) & ~(size_t)15;
    if (at > d->cap || size > d->cap - at)
        return NULL; /* protobuf-c turns this into a failed unpack */
    d->used = at + size;
    return d->arena + at;
}

static void arena_free(void *ctx, void *p)
{
    (void)ctx; /* the whole arena is reset at the next decode */
    (void)p;
}

enum stf_status frame_decoder_create(const struct frame_limits *lim, struct frame_decoder **out,
                                     struct stf_error *err)
{
    *out = NULL;
    struct frame_decoder *d = calloc(1, sizeof *d);
    if (!d) return stf_fail(err, STF_ERR_NOMEM, "out of memory for a frame decoder");
    d->lim = *lim;
    d->max_len = frame_max_packed_size(lim);
    /* the message structs, the copied data and error, and slack for unknown fields that a
     * newer peer may add; a frame that needs more fails to unpack (an error, not a crash) */
    d->cap = 2 * d->max_len + 65536;
    d->arena = malloc(d->cap);
    if (!d->arena) {
        size_t cap = d->cap;
        free(d);
        return stf_fail(err, STF_ERR_NOMEM, "out of memory for a frame arena of %zu bytes", cap);
    }
    d->alloc = (ProtobufCAllocator){.alloc = arena_alloc, .free = arena_free, .allocator_data = d};
    *out = d;
    return STF_OK;
}

void frame_decoder_free(struct frame_decoder *d)
{
    if (!d) return;
    free(d->arena);
    free(d);
}

/* Every receive-side error names the sending rank first. */
__attribute__((format(printf, 3, 4))) static enum stf_status bad(struct stf_error *err, int from,
                                                                 const char *fmt, ...)
{
    char msg[sizeof err->msg - 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return stf_fail(err, STF_ERR_PROTOCOL, "frame from rank %d: %s", from, msg);
}

static enum stf_status check_rows(const struct frame_limits *lim, const struct frame *f, int from,
                                  struct stf_error *err)
{
    const char *kn = frame_kind_name(f->kind);
    if (f->dtype == FRAME_I8)
        return bad(err, from, "%s: dtype int8 is reserved and not supported by this build", kn);
    if (f->dtype != FRAME_F32) return bad(err, from, "%s: unknown dtype %d", kn, (int)f->dtype);
    if (f->streams != lim->streams)
        return bad(err, from, "%s: %u streams, this model has %u", kn, f->streams, lim->streams);
    if (f->width != lim->width)
        return bad(err, from, "%s: width %u, expected d_model %u", kn, f->width, lim->width);
    if (f->rows == 0) return bad(err, from, "%s: no rows", kn);
    if (f->kind == FRAME_DECODE && f->rows != 1)
        return bad(err, from, "decode: %u rows, a decode frame carries exactly 1", f->rows);
    if (f->rows > lim->max_rows)
        return bad(err, from, "%s: %u rows, the limit is %u", kn, f->rows, lim->max_rows);
    uint64_t want = (uint64_t)f->rows * f->streams * f->width * sizeof(float);
    if ((uint64_t)f->data_len != want)
        return bad(err, from,
                   "%s: data is %zu bytes, but rows %u x streams %u x width %u x 4 = %llu", kn,
                   f->data_len, f->rows, f->streams, f->width, (unsigned long long)want);
    if (f->cache.slot >= lim->n_slots)
        return bad(err, from, "%s: cache slot %u, the job has %u slots", kn, f->cache.slot,
                   lim->n_slots);
    if (f->cache.reset && f->cache.fill != 0)
        return bad(err, from, "%s: reset with fill %u (a reset slot holds 0 entries)", kn,
                   f->cache.fill);
    if ((uint64_t)f->cache.fill + f->rows > lim->capacity)
        return bad(err, from, "%s: fill %u + %u rows exceeds the slot capacity %u", kn,
                   f->cache.fill, f->rows, lim->capacity);
    if ((uint64_t)f->position + f->rows > lim->capacity)
        return bad(err, from, "%s: position %u + %u rows exceeds the context of %u", kn,
                   f->position, f->rows, lim->capacity);
    return STF_OK;
}

enum stf_status frame_decode(struct frame_decoder *d, const void *buf, size_t len, int from,
                             struct frame *out, struct stf_error *err)
{
    memset(out, 0, sizeof *out);
    if (len == 0) return bad(err, from, "empty message");
    if (len > d->max_len)
        return bad(err, from, "%zu bytes, larger than any valid frame (%zu)", len, d->max_len);
    d->used = 0;
    pb_frame *m = sparsetf__wire__frame__unpack(&d->alloc, len, buf);
    if (!m) return bad(err, from, "cannot unpack %zu bytes (truncated or not a frame)", len);
    out->version = m->version;
    out->kind = (enum frame_kind)m->kind;
    out->session = m->session;
    out->position = m->position;
    out->rows = m->rows;
    out->streams = m->streams;
    out->width = m->width;
    out->dtype = (enum frame_dtype)m->dtype;
    out->data = m->data.len ? m->data.data : NULL;
    out->data_len = m->data.len;
    out->origin_rank = m->origin_rank;
    out->sequence = m->sequence;
    out->crc32c = m->crc32c;
    out->error = (m->error && m->error[0]) ? m->error : NULL;
    if (m->cache) {
        out->cache.slot = m->cache->slot;
        out->cache.fill = m->cache->fill;
        out->cache.reset = m->cache->reset;
        out->cache.rotation_seed = m->cache->rotation_seed;
        if (m->cache->n_drops > FRAME_MAX_DROPS)
            return bad(err, from, "%zu LSH drop events, the limit is %u", m->cache->n_drops,
                       FRAME_MAX_DROPS);
        out->cache.n_drops = (uint32_t)m->cache->n_drops;
        for (size_t i = 0; i < m->cache->n_drops; i++) {
            out->cache.drops[i].layer = m->cache->drops[i]->layer;
            out->cache.drops[i].count = m->cache->drops[i]->count;
        }
    }

    if (out->version != FRAME_VERSION)
        return bad(err, from, "protocol version %u, expected %u", out->version, FRAME_VERSION);
    uint32_t crc = frame_checksum(out);
    if (crc != out->crc32c)
        return bad(err, from, "checksum mismatch: frame says 0x%08x, contents give 0x%08x",
                   out->crc32c, crc);
    if (out->kind < FRAME_PREFILL || out->kind > FRAME_ERROR)
        return bad(err, from, "unknown kind %d", (int)out->kind);
    const char *kn = frame_kind_name(out->kind);
    if (out->sequence == 0) return bad(err, from, "%s: sequence number 0 (links count from 1)", kn);
    if (out->origin_rank < 0) return bad(err, from, "%s: origin rank %d", kn, out->origin_rank);
    if (!frame_kind_has_rows(out->kind) && (out->cache.n_drops || out->cache.rotation_seed))
        return bad(err, from, "%s: carries LSH cache events (drops/rotation seed), expected none",
                   kn);
    for (uint32_t i = 0; i < out->cache.n_drops; i++)
        if (out->cache.drops[i].count == 0)
            return bad(err, from, "%s: LSH drop event %u for sub-layer %u drops 0 entries", kn, i,
                       out->cache.drops[i].layer);
    if (out->kind != FRAME_ERROR && out->error)
        return bad(err, from, "%s frame carries an error message", kn);
    if (frame_kind_has_rows(out->kind)) return check_rows(&d->lim, out, from, err);
    if (out->rows || out->data_len)
        return bad(err, from, "%s: carries %u rows / %zu data bytes, expected none", kn, out->rows,
                   out->data_len);
    if ((out->kind == FRAME_RESET || out->kind == FRAME_CLOSE) && out->cache.slot >= d->lim.n_slots)
        return bad(err, from, "%s: cache slot %u, the job has %u slots", kn, out->cache.slot,
                   d->lim.n_slots);
    if (out->kind == FRAME_ERROR) {
        if (!out->error) return bad(err, from, "error frame without a message");
        if (strlen(out->error) >= FRAME_ERROR_LEN)
            return bad(err, from, "error message of %zu bytes (limit %u)", strlen(out->error),
                       FRAME_ERROR_LEN - 1);
    }
    return STF_OK;
}
