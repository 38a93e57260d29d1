/* The engine and the session lifecycle on loopback transports: cache-slot directives,
 * LRU admission / eviction / recompute in the session table, and the engine (a coordinator
 * and 3 stages on 4 loopback endpoints, and on one endpoint) checked bitwise against the
 * single-process forward pass — tokens and every logits row — with continuous admission,
 * cancellation and an allocation-free token loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "model/forward.h"
#include "model/init.h"
#include "pipeline/engine.h"
#include "pipeline/pipeline.h"
#include "pipeline/sessions.h"
#include "pipeline/slots.h"
#include "util/timer.h"

/* Allocations made by sparsetf code in this test go through these wrappers (-Wl,--wrap). */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
static long allocations;
void *__wrap_malloc(size_t n)
{
    allocations++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m)
{
    allocations++;
    return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n)
{
    allocations++;
    return __real_realloc(p, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
    allocations++;
    return __real_posix_memalign(p, a, n);
}

#define CTX       64
#define N_LAYERS  6
#define MAX_ROWS  (CTX)
#define MAX_SESS  8
#define MAX_TOKEN 24

static char model_path[256];

static struct model_config tiny_config(void)
{
    struct model_config cfg = {0};
    struct stf_error err = {0};
    assert_int_equal(model_config_parse(&cfg, model_preset_text("tiny-sparse-sru"), "preset", &err),
                     STF_OK);
    cfg.n_layers = N_LAYERS;
    assert_int_equal(model_config_validate(&cfg, &err), STF_OK);
    return cfg;
}

static int write_model(void **state)
{
    (void)state;
    snprintf(model_path, sizeof model_path, "/tmp/test_engine_%d.stf", (int)getpid());
    struct model_config cfg = tiny_config();
    struct model_init ini;
    model_init_begin(&ini, 7);
    struct model_write_opts wo = {
        .name = "test", .generator = "test_engine", .fill = model_init_fill, .fill_ctx = &ini};
    struct stf_error err = {0};
    return model_write(model_path, &cfg, &wo, &err) == STF_OK ? 0 : -1;
}

static int remove_model(void **state)
{
    (void)state;
    unlink(model_path);
    return 0;
}

/* ---- cache slot directives ---- */

struct directive_case {
    const char *name;
    enum frame_kind kind;
    uint64_t session;
    uint32_t slot, fill, position, rows;
    bool reset;
    enum stf_status want;
    const char *needle; /* in the error message */
};

static void test_engine_slot_directives(void **state)
{
    (void)state;
    struct model_config cfg = tiny_config();
    struct stf_error err = {0};
    struct slot_table *t;
    assert_int_equal(slots_create(&cfg, 2, 1, 3, 2, 8, 1, &t, &err), STF_OK);
    /* applied in order to one table: slot 0 holds session 5 after the first case */
    static const struct directive_case cases[] = {
        {"prefill with reset", FRAME_PREFILL, 5, 0, 0, 0, 3, true, STF_OK, NULL},
        {"decode at the fill", FRAME_DECODE, 5, 0, 3, 3, 1, false, STF_OK, NULL},
        {"decode at a stale fill", FRAME_DECODE, 5, 0, 3, 3, 1, false, STF_ERR_PROTOCOL,
         "cache directive disagrees"},
        {"another session's frame", FRAME_DECODE, 6, 0, 4, 4, 1, false, STF_ERR_PROTOCOL,
         "holds session 5 filled to 4"},
        {"a free slot without reset", FRAME_DECODE, 5, 1, 0, 0, 1, false, STF_ERR_PROTOCOL,
         "is free (no reset was sent)"},
        {"slot out of range", FRAME_DECODE, 5, 2, 0, 0, 1, false, STF_ERR_PROTOCOL,
         "names slot 2 of 2"},
        {"past the capacity", FRAME_PREFILL, 5, 0, 4, 4, 5, false, STF_ERR_PROTOCOL,
         "no room for 5 more"},
        {"close by another session", FRAME_CLOSE, 6, 0, 0, 0, 0, false, STF_ERR_PROTOCOL,
         "cache directive disagrees"},
        {"close", FRAME_CLOSE, 5, 0, 0, 0, 0, false, STF_OK, NULL},
        {"decode after close", FRAME_DECODE, 5, 0, 4, 4, 1, false, STF_ERR_PROTOCOL, "is free"},
        {"reset frame", FRAME_RESET, 9, 1, 0, 0, 0, false, STF_OK, NULL},
        {"prefill after a reset frame", FRAME_PREFILL, 9, 1, 0, 0, 2, false, STF_OK, NULL},
        {"no directive", FRAME_SHUTDOWN, 0, 0, 0, 0, 0, false, STF_ERR_PROTOCOL,
         "carries no cache directive"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct directive_case *c = &cases[i];
        struct frame f = {.kind = c->kind,
                          .session = c->session,
                          .position = c->position,
                          .rows = c->rows,
                          .cache = {.slot = c->slot, .fill = c->fill, .reset = c->reset}};
        struct slot *s = NULL;
        err.msg[0] = 0;
        enum stf_status st = slots_apply(t, &f, 1, &s, &err);
        if (st != c->want || (c->needle && !strstr(err.msg, c->needle)))
            fail_msg("case `%s`: status %d (want %d), message `%s`", c->name, st, c->want, err.msg);
        if (c->needle) assert_non_null(strstr(err.msg, "rank 2"));
        if (!st && s) slots_advance(s, c->rows);
    }
    slots_free(t);
}

/* ---- the session table ---- */

static struct session *add(struct session_table *t, uint32_t n_prompt)
{
    uint32_t prompt[4] = {1, 2, 3, 4};
    struct sampler_params sp = {.temperature = 0, .top_k = 0, .top_p = 1, .seed = 1};
    struct session *s = NULL;
    struct stf_error err = {0};
    assert_int_equal(sessions_add(t, prompt, n_prompt, 0, 16, &sp, 32, &s, &err), STF_OK);
    return s;
}

static void test_engine_sessions_lru(void **state)
{
    (void)state;
    struct session_table t;
    struct stf_error err = {0};
    assert_int_equal(sessions_init(&t, 2, &err), STF_OK);
    struct session *a = add(&t, 4), *b = add(&t, 3), *c = add(&t, 2);
    assert_int_equal(a->id, 1);
    assert_int_equal(c->id, 3);
    sessions_admit(&t, NULL);
    /* admission in submission order while slots are free */
    assert_int_equal(a->phase, SESSION_READY);
    assert_int_equal(b->phase, SESSION_READY);
    assert_int_equal(c->phase, SESSION_WAITING);
    assert_true(a->need_reset && b->need_reset);
    assert_int_not_equal(a->slot, b->slot);
    /* the least recently used ready session goes first */
    assert_ptr_equal(sessions_next_ready(&t), a);
    a->phase = SESSION_IN_FLIGHT;
    assert_ptr_equal(sessions_next_ready(&t), b);
    /* nobody has run SESSIONS_EVICT_AFTER tokens: c keeps waiting */
    sessions_admit(&t, NULL);
    assert_int_equal(c->phase, SESSION_WAITING);
    assert_int_equal(t.evictions, 0);
    /* a frame in flight is never evicted; b, eligible, is */
    a->since_admit = b->since_admit = SESSIONS_EVICT_AFTER;
    b->fill = 7;
    int b_slot = b->slot;
    sessions_admit(&t, NULL);
    assert_int_equal(a->phase, SESSION_IN_FLIGHT);
    assert_int_equal(b->phase, SESSION_WAITING);
    assert_int_equal(b->slot, -1);
    assert_int_equal(b->fill, 0); /* recomputed from position 0 when readmitted */
    assert_int_equal(c->phase, SESSION_READY);
    assert_int_equal(c->slot, b_slot);
    assert_true(c->need_reset);
    assert_int_equal(t.evictions, 1);
    /* time slicing: of two eligible sessions the least recently used goes first (for b);
     * it then waits, so the other eligible one makes room for it in turn */
    a->phase = SESSION_READY;
    c->since_admit = SESSIONS_EVICT_AFTER;
    a->last_used = 100;
    c->last_used = 50;
    int a_slot = a->slot, c_slot = c->slot;
    sessions_admit(&t, NULL);
    assert_int_equal(b->phase, SESSION_READY);
    assert_int_equal(b->slot, c_slot);
    assert_int_equal(c->phase, SESSION_READY);
    assert_int_equal(c->slot, a_slot);
    assert_int_equal(a->phase, SESSION_WAITING);
    assert_true(b->need_reset && c->need_reset);
    assert_int_equal(t.evictions, 3);
    /* just admitted (0 tokens since): nobody is eligible, a waits */
    sessions_admit(&t, NULL);
    assert_int_equal(a->phase, SESSION_WAITING);
    /* an ended session gives its slot to the next waiting one, and is gone */
    sessions_end(&t, b);
    assert_null(sessions_find(&t, 2));
    sessions_admit(&t, NULL);
    assert_int_equal(a->phase, SESSION_READY);
    assert_int_equal(a->slot, c_slot);
    assert_int_equal(a->fill, 0);
    assert_ptr_equal(sessions_find(&t, 1), a);
    sessions_free(&t);
}

/* ---- the engine against the single-process forward pass ---- */

struct result {
    uint32_t tokens[MAX_TOKEN];
    uint32_t n_tokens;
    float *rows; /* (CTX, V) logits of each position */
    uint32_t n_rows;
    int ended;      /* 1 + enum engine_end */
    int stop_after; /* on_token returns 1 after this many tokens (0 = never) */
};

struct fixture {
    struct result res[MAX_SESS];
    struct engine *e;
    uint32_t V;
    uint64_t chained; /* the id submitted from on_end, 0 before */
};

static struct fixture fx;

static const uint32_t prompt0[] = {1, 17, 4, 99, 250, 3, 8};
static const uint32_t prompt1[] = {1, 100, 200};
static const uint32_t prompt2[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const uint32_t prompt3[] = {1, 42, 43, 44, 45};

static struct engine_request request(const uint32_t *prompt, uint32_t n, uint32_t max_tokens,
                                     float temperature, uint64_t seed)
{
    return (struct engine_request){
        .prompt = prompt,
        .n_prompt = n,
        .max_tokens = max_tokens,
        .sampling = {.temperature = temperature, .top_k = 40, .top_p = 0.95f, .seed = seed},
        .all_logits = true};
}

static int on_logits(void *user, uint64_t session, uint32_t position, const float *logits)
{
    (void)user;
    struct result *r = &fx.res[session];
    assert_int_equal(position, r->n_rows); /* each row once, in order */
    memcpy(r->rows + (size_t)position * fx.V, logits, fx.V * sizeof *logits);
    r->n_rows++;
    return 0;
}

static int on_token(void *user, uint64_t session, uint32_t token, const float *logits, bool last)
{
    (void)user, (void)last;
    struct result *r = &fx.res[session];
    assert_true(r->n_rows >= 1);
    assert_memory_equal(logits, r->rows + (size_t)(r->n_rows - 1) * fx.V, fx.V * sizeof *logits);
    r->tokens[r->n_tokens++] = token;
    return r->stop_after && r->n_tokens >= (uint32_t)r->stop_after;
}

static void on_end(void *user, uint64_t session, enum engine_end reason);
static const struct engine_callbacks callbacks = {on_logits, on_token, on_end};

static void on_end(void *user, uint64_t session, enum engine_end reason)
{
    (void)user;
    assert_int_equal(fx.res[session].ended, 0);
    fx.res[session].ended = 1 + (int)reason;
    if (session == 1 && !fx.chained) { /* continuous admission: submitted from a callback */
        struct engine_request req = request(prompt3, 5, 10, 0.8f, 11);
        struct stf_error err = {0};
        assert_int_equal(engine_submit(fx.e, &req, &callbacks, NULL, &fx.chained, &err), STF_OK);
    }
}

/* The single-process forward pass (as the old --local runner): rows (n_rows, V), tokens. */
static void reference(const struct engine_request *req, struct result *want)
{
    struct stf_error err = {0};
    struct model *m;
    struct seq_state *s;
    struct workspace *ws;
    struct sampler smp;
    assert_int_equal(model_open(model_path, NULL, 0, &m, &err), STF_OK);
    const struct model_config *c = &m->cfg;
    assert_int_equal(seq_state_create(c, 0, c->n_layers, CTX, &s, &err), STF_OK);
    assert_int_equal(workspace_create(c, CTX, &kernels_fast, &ws, &err), STF_OK);
    assert_int_equal(sampler_create(&smp, &req->sampling, c->vocab_size, &err), STF_OK);
    float x[512];
    assert_true(c->d_model <= 512);
    memset(want, 0, sizeof *want);
    want->rows = calloc((size_t)CTX * c->vocab_size, sizeof(float));
    uint32_t pos = 0, tok = 0;
    for (uint32_t i = 0; i < req->n_prompt; i++, pos++) {
        forward_embed(m, req->prompt[i], pos, x);
        forward_layers(m, s, ws, pos, x);
        forward_head(m, ws, x, want->rows + (size_t)pos * c->vocab_size);
    }
    want->n_rows = pos;
    while (want->n_tokens < req->max_tokens) {
        tok = sampler_sample(&smp, want->rows + (size_t)(pos - 1) * c->vocab_size);
        want->tokens[want->n_tokens++] = tok;
        if (tok == c->eos_id || want->n_tokens == req->max_tokens) break;
        forward_embed(m, tok, pos, x);
        forward_layers(m, s, ws, pos, x);
        forward_head(m, ws, x, want->rows + (size_t)pos * c->vocab_size);
        want->n_rows = ++pos;
    }
    sampler_destroy(&smp);
    workspace_free(ws);
    seq_state_free(s);
    model_close(m);
}

static void expect_equal(uint64_t id, const struct engine_request *req, uint32_t upto_tokens)
{
    struct result want;
    reference(req, &want);
    struct result *got = &fx.res[id];
    uint32_t n = upto_tokens ? upto_tokens : want.n_tokens;
    assert_int_equal(got->n_tokens, n);
    assert_memory_equal(got->tokens, want.tokens, n * sizeof *want.tokens);
    uint32_t rows = upto_tokens ? req->n_prompt + upto_tokens - 1 : want.n_rows;
    assert_int_equal(got->n_rows, rows);
    assert_memory_equal(got->rows, want.rows, (size_t)rows * fx.V * sizeof(float)); /* bitwise */
    free(want.rows);
}

static void reset_fixture(uint32_t V)
{
    for (int i = 0; i < MAX_SESS; i++)
        free(fx.res[i].rows);
    memset(&fx, 0, sizeof fx);
    fx.V = V;
    for (int i = 0; i < MAX_SESS; i++)
        fx.res[i].rows = calloc((size_t)CTX * V, sizeof(float));
}

static void resolve_timeout(uint32_t n_ranks, uint32_t slots, double timeout,
                            struct run_config *rc);
static void resolve(uint32_t n_ranks, uint32_t slots, struct run_config *rc)
{
    resolve_timeout(n_ranks, slots, 5, rc);
}

static void resolve_timeout(uint32_t n_ranks, uint32_t slots, double timeout, struct run_config *rc)
{
    struct run_settings set = {.model_path = model_path,
                               .ctx = CTX,
                               .slots = slots,
                               .prefill_chunk = 3,
                               .kernels = "fast",
                               .timeout = timeout};
    struct stf_error err = {0};
    assert_int_equal(run_config_resolve(&set, n_ranks, 0, rc, &err), STF_OK);
}

static void test_engine_pipeline_loopback4(void **state)
{
    (void)state;
    struct stf_error err = {0};
    struct transport *ep[4];
    struct run_config rc;
    resolve(4, 2, &rc);
    reset_fixture(rc.model.vocab_size);
    assert_int_equal(transport_loopback_create(4, ep, &err), STF_OK);
    struct pipe stage[4];
    unsigned char *sbuf[4];
    for (int r = 1; r < 4; r++) {
        assert_int_equal(pipe_open(&stage[r], &rc, ep[r], &err), STF_OK);
        assert_true(stage[r].m->sel.layer_end > stage[r].m->sel.layer_begin);
        sbuf[r] = malloc(stage[r].max_frame);
    }
    assert_int_equal(engine_open(&rc, ep[0], &fx.e, &err), STF_OK);
    struct engine_request req[6] = {
        request(prompt0, 7, 16, 0.0f, 42), request(prompt1, 3, 16, 0.8f, 7),
        request(prompt2, 12, 12, 0.8f, 9), request(prompt1, 3, 10, 0.8f, 5),
        request(prompt0, 7, 10, 0.8f, 3)};
    uint64_t id[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(engine_submit(fx.e, &req[i], &callbacks, NULL, &id[i], &err), STF_OK);
    assert_int_equal(id[0], 1);
    fx.res[id[3]].stop_after = 3; /* its callback cancels it after 3 tokens */
    engine_cancel(fx.e, id[4]);   /* cancelled while waiting: never runs */
    uint32_t rounds = 0;
    while (!engine_idle(fx.e)) {
        assert_int_equal(engine_step(fx.e, 0, &err), STF_OK);
        for (int r = 1; r < 4; r++) {
            bool shutdown;
            if (stage_step(&stage[r], sbuf[r], 0, &shutdown, &err)) fail_msg("%s", err.msg);
        }
        assert_true(++rounds < 100000);
    }
    /* every session as if alone, bitwise, also after eviction and recompute */
    expect_equal(id[0], &req[0], 0);
    expect_equal(id[1], &req[1], 0);
    expect_equal(id[2], &req[2], 0);
    assert_int_not_equal(fx.chained, 0);
    struct engine_request chained = request(prompt3, 5, 10, 0.8f, 11);
    expect_equal(fx.chained, &chained, 0);
    expect_equal(id[3], &req[3], 3);
    assert_int_equal(fx.res[id[3]].ended, 1 + ENGINE_END_CANCELLED);
    assert_int_equal(fx.res[id[4]].ended, 1 + ENGINE_END_CANCELLED);
    assert_int_equal(fx.res[id[4]].n_tokens, 0);
    assert_int_equal(fx.res[id[0]].ended, 1 + ENGINE_END_LENGTH);
    const struct engine_report *rep = engine_progress(fx.e);
    assert_true(rep->evictions > 0); /* 2 slots for 4 sessions at once */
    assert_int_equal(rep->sessions, 6);
    engine_close(fx.e);
    for (int r = 1; r < 4; r++) {
        pipe_close(&stage[r]);
        free(sbuf[r]);
    }
    for (int r = 0; r < 4; r++)
        transport_close(ep[r]);
    run_config_free(&rc);
}

/* An idle multi-rank engine keeps the stages alive (they give up after 2 * timeout + 2 s
 * without a frame), and the keep-alive does not disturb the next session. */
static void test_engine_idle_keep_alive(void **state)
{
    (void)state;
    struct stf_error err = {0};
    struct transport *ep[4];
    struct run_config rc;
    resolve_timeout(4, 1, 0.1, &rc);
    reset_fixture(rc.model.vocab_size);
    fx.chained = 1;
    assert_int_equal(transport_loopback_create(4, ep, &err), STF_OK);
    struct pipe stage[4];
    unsigned char *sbuf[4];
    for (int r = 1; r < 4; r++) {
        assert_int_equal(pipe_open(&stage[r], &rc, ep[r], &err), STF_OK);
        sbuf[r] = malloc(stage[r].max_frame);
    }
    assert_int_equal(engine_open(&rc, ep[0], &fx.e, &err), STF_OK);
    struct engine_request req = request(prompt0, 7, 12, 0.8f, 4);
    for (int phase = 0; phase < 2; phase++) {
        if (phase == 1)
            assert_int_equal(engine_submit(fx.e, &req, &callbacks, NULL, NULL, &err), STF_OK);
        double t_end = phase == 0 ? stf_now() + 0.25 : stf_now() + 30;
        while (stf_now() < t_end && (phase == 0 || !engine_idle(fx.e))) {
            assert_int_equal(engine_step(fx.e, 0, &err), STF_OK);
            for (int r = 1; r < 4; r++) {
                bool shutdown;
                if (stage_step(&stage[r], sbuf[r], 0, &shutdown, &err)) fail_msg("%s", err.msg);
            }
        }
        if (phase == 0) /* two or more keep-alives in 0.25 s at one per 0.05 s of quiet */
            for (int r = 1; r < 4; r++)
                assert_true(stage[r].stats.frames_recv >= 2);
    }
    expect_equal(1, &req, 0);
    engine_close(fx.e);
    for (int r = 1; r < 4; r++) {
        pipe_close(&stage[r]);
        free(sbuf[r]);
    }
    for (int r = 0; r < 4; r++)
        transport_close(ep[r]);
    run_config_free(&rc);
}

static void test_engine_single_endpoint_allocation_free(void **state)
{
    (void)state;
    struct stf_error err = {0};
    struct transport *ep;
    struct run_config rc;
    resolve(1, 2, &rc);
    reset_fixture(rc.model.vocab_size);
    fx.chained = 1; /* no submission from a callback here */
    assert_int_equal(transport_loopback_create(1, &ep, &err), STF_OK);
    assert_int_equal(engine_open(&rc, ep, &fx.e, &err), STF_OK);
    struct engine_request req[3] = {request(prompt2, 12, 20, 0.8f, 1),
                                    request(prompt0, 7, 20, 0.0f, 2),
                                    request(prompt1, 3, 20, 0.8f, 3)};
    uint64_t id[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(engine_submit(fx.e, &req[i], &callbacks, NULL, &id[i], &err), STF_OK);
    long before = allocations;
    while (!engine_idle(fx.e))
        assert_int_equal(engine_step(fx.e, 0, &err), STF_OK);
    assert_int_equal(allocations - before, 0); /* the token loop allocates nothing */
    for (int i = 0; i < 3; i++)
        expect_equal(id[i], &req[i], 0);
    const struct engine_report *r;
    assert_int_equal(engine_finish(fx.e, &r, &err), STF_OK);
    assert_int_equal(r->n_ranks, 1);
    assert_true(r->evictions > 0);
    assert_int_equal(engine_submit(fx.e, &req[0], &callbacks, NULL, NULL, &err), STF_ERR_ARG);
    engine_close(fx.e);
    transport_close(ep);
    run_config_free(&rc);
}

static void test_engine_submit_errors(void **state)
{
    (void)state;
    struct stf_error err = {0};
    struct transport *ep;
    struct run_config rc;
    resolve(1, 1, &rc);
    assert_int_equal(transport_loopback_create(1, &ep, &err), STF_OK);
    struct engine *e;
    assert_int_equal(engine_open(&rc, ep, &e, &err), STF_OK);
    uint32_t bad[2] = {1, rc.model.vocab_size};
    struct engine_request req = request(bad, 2, 4, 0, 1);
    assert_int_equal(engine_submit(e, &req, &callbacks, NULL, NULL, &err), STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "out of range"));
    req = request(prompt0, 7, CTX - 6, 0, 1);
    assert_int_equal(engine_submit(e, &req, &callbacks, NULL, NULL, &err), STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "exceeds the context of 64"));
    req = request(prompt0, 0, 4, 0, 1);
    assert_int_equal(engine_submit(e, &req, &callbacks, NULL, NULL, &err), STF_ERR_ARG);
    req = request(prompt0, 7, 4, -1, 1);
    assert_int_equal(engine_submit(e, &req, &callbacks, NULL, NULL, &err), STF_ERR_ARG);
    assert_true(engine_idle(e));
    engine_close(e);
    transport_close(ep);
    run_config_free(&rc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_slot_directives),
        cmocka_unit_test(test_engine_sessions_lru),
        cmocka_unit_test(test_engine_pipeline_loopback4),
        cmocka_unit_test(test_engine_idle_keep_alive),
        cmocka_unit_test(test_engine_single_endpoint_allocation_free),
        cmocka_unit_test(test_engine_submit_errors),
    };
    int rc = cmocka_run_group_tests(tests, write_model, remove_model);
    for (int i = 0; i < MAX_SESS; i++)
        free(fx.res[i].rows);
    return rc;
}
