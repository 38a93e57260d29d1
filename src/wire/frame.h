/*
 * frame: the wire frames of sparsetf-dist (proto/frames.proto, docs/protocol.md) as plain
 * structs, and their conversion to and from bytes. This module is the only user of the
 * generated frames.pb-c code.
 *
 * Packing writes into a caller-owned buffer (frame_packed_size first). Unpacking goes
 * through a struct frame_decoder, which owns an arena that protobuf-c allocates from, so
 * decoding a frame calls no malloc: the arena is reset at each decode. The struct frame a
 * decode fills borrows from that arena (frame.data, frame.error) and stays valid until the
 * next decode on the same decoder.
 *
 * frame_decode validates every field against struct frame_limits and names the sending
 * rank in its message; the meaning of a valid frame (which slot, which position) is checked
 * by the receiver's cache state (pipeline/slots.h).
 */
#ifndef STF_WIRE_FRAME_H
#define STF_WIRE_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define FRAME_VERSION     1u
#define FRAME_MAX_STREAMS 2u   /* Scaling Transformer 1, Terraformer 2 (SPEC §3) */
#define FRAME_MAX_DROPS   256u /* LSH drop events per frame: one per LSH sub-layer */
#define FRAME_ERROR_LEN   512u /* longest error message carried */

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "frame data is little-endian f32 copied as is: port frame.c to big-endian hosts");

enum frame_kind {
    FRAME_PREFILL = 1,
    FRAME_DECODE = 2,
    FRAME_RESET = 3,
    FRAME_CLOSE = 4,
    FRAME_SHUTDOWN = 5,
    FRAME_ERROR = 6,
};

enum frame_dtype { FRAME_F32 = 1, FRAME_I8 = 2 /* reserved, rejected */ };

/* SPEC §2: before this frame's rows, LSH sub-layer `layer` (global attention sub-layer
 * index) drops its oldest `count` (= D) cache entries. */
struct frame_lsh_drop {
    uint32_t layer, count;
};

/* Rank 0's cache directive: which slot, how full rank 0 believes it is, reset first; for a
 * model with LSH attention the sequence's rotation seed and the drops to apply first. */
struct frame_cache {
    uint32_t slot;
    uint32_t fill; /* entries the slot holds before this frame */
    bool reset;
    uint64_t rotation_seed;                       /* LSH: the sequence's σ (SPEC §2) */
    uint32_t n_drops;                             /* LSH: <= FRAME_MAX_DROPS */
    struct frame_lsh_drop drops[FRAME_MAX_DROPS]; /* LSH: drop events, before the rows */
};

struct frame {
    uint32_t version;
    enum frame_kind kind;
    uint64_t session;
    uint32_t position; /* token position of row 0 */
    uint32_t rows, streams, width;
    enum frame_dtype dtype;
    struct frame_cache cache;
    const void *data; /* rows x streams x width little-endian f32; borrowed */
    size_t data_len;  /* bytes */
    int32_t origin_rank;
    const char *error; /* error frames; borrowed, NUL-terminated, or NULL */
    uint64_t sequence; /* per-link counter, from 1 */
    uint32_t crc32c;   /* filled by decode (the received value) */
};

/* What a receiver accepts. */
struct frame_limits {
    uint32_t width;    /* must equal d_model */
    uint32_t streams;  /* must equal the model's stream count */
    uint32_t max_rows; /* prefill chunk limit */
    uint32_t n_slots;  /* cache slots per rank */
    uint32_t capacity; /* positions per slot */
};

/* Bytes of the packed frame (the checksum is computed by pack, so f->crc32c is ignored). */
size_t frame_packed_size(const struct frame *f);
/* Packs f into buf (cap bytes), computing the checksum; f is not validated, so tests can
 * build bad frames. Returns STF_ERR_ARG if cap < frame_packed_size(f). */
enum stf_status frame_pack(const struct frame *f, void *buf, size_t cap, size_t *len,
                           struct stf_error *err);

/* Largest packed frame with rows <= max_rows under lim (for sizing buffers), with room for
 * an error message. */
size_t frame_max_packed_size(const struct frame_limits *lim);

/* The checksum pack computes: CRC-32C over the canonical header (docs/protocol.md) then
 * the data bytes. */
uint32_t frame_checksum(const struct frame *f);

struct frame_decoder;

/* A decoder whose arena fits any frame within lim. */
enum stf_status frame_decoder_create(const struct frame_limits *lim, struct frame_decoder **out,
                                     struct stf_error *err);
void frame_decoder_free(struct frame_decoder *d);

/* Unpacks len bytes received from rank `from` and validates every field: version, kind,
 * dtype, streams, width, rows (kinds with and without rows), data length, slot, positions
 * within capacity, drops, checksum, error text. On failure the message starts with
 * "frame from rank <from>: ". */
enum stf_status frame_decode(struct frame_decoder *d, const void *buf, size_t len, int from,
                             struct frame *out, struct stf_error *err);

const char *frame_kind_name(enum frame_kind k);
/* True for kinds that carry activation rows. */
bool frame_kind_has_rows(enum frame_kind k);

#endif
