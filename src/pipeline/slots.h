/*
 * slots: one rank's cache slots — a seq_state per slot for the rank's layer range, and
 * what the rank believes each slot holds (which session, how many positions). Rank 0
 * decides; every frame carries rank 0's directive (wire/frame.h struct frame_cache) and
 * slots_apply checks it against this table before any cache is touched: a disagreement
 * is a protocol error naming both views, never silent corruption. For LSH attention (SPEC
 * §2) the directive also carries the sequence's rotation seed and the drop events rank 0
 * decided; each LSH sub-layer's cache here must agree (the seed it holds, a drop exactly
 * when it is full, room for the rows) before the drops and the seed are applied.
 *
 * The seq_states are allocated once at create (none when the range is empty).
 */
#ifndef STF_PIPELINE_SLOTS_H
#define STF_PIPELINE_SLOTS_H

#include <stdbool.h>
#include <stdint.h>

#include "model/forward.h"
#include "wire/frame.h"

struct slot {
    struct seq_state *state; /* NULL when this rank holds no layers */
    bool owned;
    uint64_t session;
    uint32_t fill; /* positions cached */
};

struct slot_table {
    const struct model_config *cfg; /* borrowed from the model */
    int rank;
    uint32_t n, capacity;
    struct slot *slots; /* n entries */
};

enum stf_status slots_create(const struct model_config *cfg, int rank, uint32_t layer_begin,
                             uint32_t layer_end, uint32_t n, uint32_t capacity, uint32_t tp,
                             struct slot_table **out, struct stf_error *err);
void slots_free(struct slot_table *t);

/* Checks f's directive (a decoded, valid frame of any kind that names a slot) against the
 * table and applies its reset/close. For prefill/decode frames, *slot is the slot whose
 * state the rows run on (call slots_advance after). `from` names the sender in messages. */
enum stf_status slots_apply(struct slot_table *t, const struct frame *f, int from,
                            struct slot **slot, struct stf_error *err);
/* The frame's rows were computed: the slot now holds rows more positions. */
void slots_advance(struct slot *s, uint32_t rows);

#endif
