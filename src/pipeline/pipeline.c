/* pipeline: the per-rank context and the steps shared by rank 0 and the stages. */
#include "pipeline/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/mem.h"
#include "util/timer.h"

/* struct tp_comm's allgather on the stage's sub-communicator. The forward pass cannot fail,
 * so the first error is kept here and pipe_compute reports it after the layers. */
static int pipe_allgather(void *ctx, const void *send, size_t len, void *recv)
{
    struct pipe *p = ctx;
    if (p->tp_failed) return 1;
    if (transport_allgather(p->tp_t, send, len, recv, p->rc->timeout, &p->tp_err)) {
        p->tp_failed = true;
        return 1;
    }
    return 0;
}

enum stf_status pipe_open(struct pipe *p, const struct run_config *rc, struct transport *t,
                          struct stf_error *err)
{
    memset(p, 0, sizeof *p);
    p->rc = rc;
    p->t = t;
    p->rank = transport_rank(t);
    p->size = transport_size(t);
    p->fault = rc->fault;
    p->stats.rank = p->rank;
    snprintf(p->stats.host, sizeof p->stats.host, "%s", transport_host());
    if ((uint32_t)p->size != rc->n_ranks)
        return stf_fail(err, STF_ERR_ARG,
                        "rank %d: the configuration plans %u ranks, the job has %d", p->rank,
                        rc->n_ranks, p->size);
    const uint32_t n_slots = rc->n_slots, capacity = rc->ctx, max_rows = rc->max_rows;
    const struct plan_rank *mine = &rc->plan.ranks[p->rank];
    p->stats.layer_begin = mine->layer_begin;
    p->stats.layer_end = mine->layer_end;
    enum stf_status st;
    /* the grid: ring of stage leaders; a stage's sub-communicator for its collectives */
    p->tp = rc->plan.tp;
    p->n_stages = rc->plan.n_stages;
    p->tp_rank = mine->tp_rank;
    p->stage = mine->stage;
    p->stats.stage = p->stage;
    p->stats.tp_rank = p->tp_rank;
    p->leader = (int)(p->stage * p->tp);
    p->next = p->stage + 1 < p->n_stages ? (int)((p->stage + 1) * p->tp) : 0;
    p->prev = (int)(((p->stage + p->n_stages - 1) % p->n_stages) * p->tp);
    if (p->tp > 1) {
        if ((st = transport_split(t, (int)p->stage, (int)p->tp_rank, &p->tp_t, err)))
            return stf_wrap(err, "rank %d: the sub-communicator of stage %u", p->rank, p->stage);
        p->comm = (struct tp_comm){
            .rank = p->tp_rank, .size = p->tp, .allgather = pipe_allgather, .ctx = p};
    }

    /* the whole estimate for this rank (weights, every slot's caches, buffers) is checked
     * against this machine before anything is mapped or allocated */
    uint64_t need = plan_rank_expected_bytes(&rc->plan, (uint32_t)p->rank),
             limit = stf_memory_limit();
    if (need > limit)
        return stf_fail(
            err, STF_ERR_NOMEM,
            "%s: this rank needs about %.3g GB (weights %.3g, caches of %u slots x %u "
            "positions %.3g, buffers %.3g), more than the %.3g GB of memory it may use: "
            "run more ranks, or use fewer --slots or a smaller --ctx",
            rc->model_path, (double)need / 1e9, (double)mine->weight_bytes / 1e9, n_slots, capacity,
            (double)mine->cache_bytes / 1e9, (double)mine->buffer_bytes / 1e9, (double)limit / 1e9);
    double t0 = stf_now();
    struct model_select sel = {.layer_begin = mine->layer_begin,
                               .layer_end = mine->layer_end,
                               .embed = mine->embed,
                               .head = mine->head,
                               .tp_size = p->tp,
                               .tp_rank = p->tp_rank}; /* only this rank's shard */
    if ((st = model_open(rc->model_path, &sel, rc->verify ? MODEL_OPEN_VERIFY : 0, &p->m, err)))
        return st;
    p->cfg = &p->m->cfg;
    p->stats.load_s = stf_now() - t0;
    p->stats.weight_bytes = p->m->mapped_bytes;

    const struct kernels *k = rc->kernels;
    kernels_set_threads(rc->threads);
    if ((st = slots_create(p->cfg, p->rank, mine->layer_begin, mine->layer_end, n_slots, capacity,
                           p->tp, &p->slots, err)) ||
        (st = workspace_create_tp(p->cfg, capacity, k, &p->comm, &p->ws, err)))
        return st;
    if (model_lsh_sublayers(p->cfg) > FRAME_MAX_DROPS)
        return stf_fail(err, STF_ERR_ARG,
                        "%s: the model has %u LSH sub-layers, a frame carries drop events for "
                        "at most %u",
                        rc->model_path, model_lsh_sublayers(p->cfg), FRAME_MAX_DROPS);
    p->lim = (struct frame_limits){.width = p->cfg->d_model,
                                   .streams = model_streams(p->cfg), /* SPEC §3: 1 or 2 */
                                   .max_rows = max_rows,
                                   .n_slots = n_slots,
                                   .capacity = capacity};
    if ((st = frame_decoder_create(&p->lim, &p->dec, err))) return st;
    p->max_frame = frame_max_packed_size(&p->lim);
    p->rbuf = stf_alloc(p->max_frame);
    p->rows = stf_alloc((size_t)max_rows * p->lim.streams * p->cfg->d_model * sizeof(float));
    if (p->tp > 1 && p->tp_rank == 0 && !(p->mbuf = stf_alloc(p->max_frame)))
        return stf_fail(err, STF_ERR_NOMEM, "rank %d: out of memory for frame buffers", p->rank);
    if (!p->rbuf || !p->rows)
        return stf_fail(err, STF_ERR_NOMEM, "rank %d: out of memory for frame buffers", p->rank);
    p->stats.rss_after_load = stf_rss_bytes();
    return STF_OK;
}

void pipe_close(struct pipe *p)
{
    transport_close(p->tp_t);
    stf_free(p->mbuf);
    stf_free(p->rbuf);
    stf_free(p->rows);
    frame_decoder_free(p->dec);
    workspace_free(p->ws);
    slots_free(p->slots);
    model_close(p->m);
    memset(p, 0, sizeof *p);
}

enum stf_status pipe_decode(struct pipe *p, size_t len, int from, int in_link, struct frame *f,
                            struct stf_error *err)
{
    double t0 = stf_now();
    enum stf_status st = frame_decode(p->dec, p->rbuf, len, from, f, err);
    p->stats.wire_s += stf_now() - t0;
    if (st) return stf_wrap(err, "rank %d", p->rank);
    p->stats.frames_recv++;
    if (f->kind == FRAME_ERROR) return STF_OK;
    if (from != in_link)
        return stf_fail(err, STF_ERR_PROTOCOL,
                        "rank %d: unexpected %s frame from rank %d (this rank only receives "
                        "from rank %d)",
                        p->rank, frame_kind_name(f->kind), from, in_link);
    if (f->sequence != p->seq_in + 1)
        return stf_fail(err, STF_ERR_PROTOCOL,
                        "rank %d: frame from rank %d: sequence %llu, expected %llu (a frame was "
                        "lost, duplicated or reordered)",
                        p->rank, from, (unsigned long long)f->sequence,
                        (unsigned long long)p->seq_in + 1);
    p->seq_in = f->sequence;
    return STF_OK;
}

enum stf_status pipe_recv(struct pipe *p, int source, int in_link, double timeout,
                          const char *waiting_for, struct frame *f, int *from,
                          struct stf_error *err)
{
    struct transport_msg msg;
    enum stf_status st = transport_probe(p->t, source, timeout, waiting_for, &msg, err);
    if (!st) st = transport_recv(p->t, &msg, p->rbuf, p->max_frame, err);
    if (st) return st;
    *from = msg.source;
    return pipe_decode(p, msg.len, msg.source, in_link, f, err);
}

enum stf_status pipe_mirror(struct pipe *p, const struct frame *f, struct stf_error *err)
{
    if (p->tp <= 1 || p->tp_rank != 0) return STF_OK;
    double t0 = stf_now();
    struct frame m = *f;
    m.version = FRAME_VERSION;
    m.origin_rank = p->rank;
    m.sequence = ++p->seq_mirror;
    size_t len;
    enum stf_status st = frame_pack(&m, p->mbuf, p->max_frame, &len, err);
    p->stats.wire_s += stf_now() - t0;
    for (uint32_t i = 1; !st && i < p->tp; i++)
        st = transport_send(p->t, p->rank + (int)i, PIPE_TAG, p->mbuf, len, p->rc->timeout, err);
    if (st)
        return stf_wrap(err, "rank %d: mirroring a %s frame to its stage", p->rank,
                        frame_kind_name(f->kind));
    return STF_OK;
}

enum stf_status pipe_follow(struct pipe *p, struct stf_error *err)
{
    for (;;) {
        struct frame f;
        int from;
        /* the leader's keep-alive comes every timeout / 2 s; wait as long as a stage does */
        enum stf_status st = pipe_recv(p, p->leader, p->leader, 2 * p->rc->timeout + 2,
                                       "a frame of its stage", &f, &from, err);
        if (st) return st;
        if (f.kind == FRAME_SHUTDOWN) return STF_OK;
        if (f.kind == FRAME_ERROR)
            return stf_fail(err, STF_ERR_PROTOCOL, "rank %d reported: %s", f.origin_rank, f.error);
        /* a non-finite value: the leader found it too (the stage's rows are shared) and
         * reports the session; the partner goes on with the next frame */
        if ((st = pipe_compute(p, &f, from, err)) && !p->nonfinite) return st;
    }
}

enum stf_status pipe_compute(struct pipe *p, const struct frame *f, int from, struct stf_error *err)
{
    const bool poison = frame_kind_has_rows(f->kind) && fault_on_handle(&p->fault, p->rank);
    p->nonfinite = false;
    enum stf_status st = pipe_mirror(p, f, err);
    if (st) return st;
    struct slot *s;
    st = slots_apply(p->slots, f, from, &s, err);
    if (st || !s) return st;
    double t0 = stf_now();
    const size_t row = (size_t)p->lim.streams * p->cfg->d_model; /* floats per position */
    if (f->data != p->rows) memcpy(p->rows, f->data, f->data_len);
    if (poison) p->rows[0] = NAN;
    if (s->state)
        for (uint32_t r = 0; r < f->rows; r++) {
            uint32_t bad =
                forward_layers(p->m, s->state, p->ws, f->position + r, p->rows + r * row);
            if (bad != FORWARD_FINITE) {
                p->nonfinite = true;
                return forward_fail_nonfinite(p->m, bad, f->position + r, err);
            }
        }
    slots_advance(s, f->rows);
    p->stats.positions += f->rows;
    p->stats.compute_s += stf_now() - t0;
    if (p->tp_failed) {
        *err = p->tp_err;
        return stf_wrap(err, "rank %d: stage %u's collective", p->rank, p->stage);
    }
    return STF_OK;
}

enum stf_status pipe_pack(struct pipe *p, struct frame *f, unsigned char *buf, size_t cap,
                          size_t *len, struct stf_error *err)
{
    double t0 = stf_now();
    f->version = FRAME_VERSION;
    f->origin_rank = p->rank;
    f->sequence = ++p->seq_out;
    bool rows = frame_kind_has_rows(f->kind);
    if (rows && fault_on_send(&p->fault, p->rank, FAULT_BAD_DIRECTIVE)) f->cache.fill += 1;
    if (rows && fault_on_send(&p->fault, p->rank, FAULT_BAD_LSH_SEED)) f->cache.rotation_seed ^= 1;
    if (rows && fault_on_send(&p->fault, p->rank, FAULT_BAD_LSH_DROP)) {
        if (f->cache.n_drops)
            f->cache.n_drops = 0;
        else
            for (uint32_t l = 0; !f->cache.n_drops; l++) /* the first LSH sub-layer */
                if (model_sublayer_is_lsh(p->cfg, l))
                    f->cache.drops[f->cache.n_drops++] =
                        (struct frame_lsh_drop){.layer = l, .count = p->cfg->lsh_drop_len};
    }
    enum stf_status st = frame_pack(f, buf, cap, len, err);
    if (!st && rows && *len > 32 && fault_on_send(&p->fault, p->rank, FAULT_CORRUPT))
        buf[*len - 16] ^= 0x5a; /* inside the data field, which precedes the short trailer */
    p->stats.wire_s += stf_now() - t0;
    if (!st) p->stats.frames_sent++;
    return st;
}

_Noreturn void pipe_fail(struct pipe *p, const struct stf_error *err)
{
    fprintf(stderr, "sparsetf-dist: error on rank %d (%s): %s\n", p->rank, transport_host(),
            err->msg);
    fflush(stderr);
    if (p->rank != 0 && p->t) {
        /* best effort: tell rank 0 so its log says who failed, then end the job */
        unsigned char buf[FRAME_ERROR_LEN + 256];
        char text[FRAME_ERROR_LEN];
        size_t n = strnlen(err->msg, sizeof text - 1);
        memcpy(text, err->msg, n);
        text[n] = 0;
        struct frame f = {.version = FRAME_VERSION,
                          .kind = FRAME_ERROR,
                          .origin_rank = p->rank,
                          .error = text,
                          .sequence = p->seq_out + 1};
        size_t len;
        struct stf_error ignored;
        if (!frame_pack(&f, buf, sizeof buf, &len, &ignored) &&
            !transport_send(p->t, 0, PIPE_TAG, buf, len, 2.0, &ignored))
            sleep(1); /* give rank 0 a moment to print before the abort tears it down */
    }
    transport_abort(p->t, 3);
}

enum stf_status pipe_gather_stats(struct pipe *p, struct engine_rank_stats *all,
                                  struct stf_error *err)
{
    const struct transport_counters *tc = transport_counters(p->t);
    p->stats.bytes_sent = tc->bytes_sent;
    p->stats.wait_s += tc->wait_seconds;
    p->stats.send_s = tc->send_seconds;
    p->stats.coll_s = tc->collective_seconds;
    p->stats.rss_end = stf_rss_bytes();
    if (p->tp_t) {
        const struct transport_counters *sc = transport_counters(p->tp_t);
        p->stats.collectives = sc->collectives;
        p->stats.collective_bytes = sc->collective_bytes;
        p->stats.collective_s = sc->collective_seconds;
    }
    p->stats.peak_rss = stf_peak_rss_bytes();
    if (p->size == 1) {
        all[0] = p->stats;
        return STF_OK;
    }
    return transport_gather(p->t, 0, &p->stats, sizeof p->stats, all, err);
}
