/* test_transport: the loopback back end and the shared polling/deadline logic — ordering,
 * probing by source, the size check on receive, timeouts that name the peer, gather, and a
 * frame travelling through wire + transport. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transport/transport.h"
#include "util/timer.h"
#include "wire/frame.h"

struct fixture {
    struct transport *ep[3];
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    struct stf_error err;
    if (!fx || transport_loopback_create(3, fx->ep, &err)) return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < 3; i++)
        transport_close(fx->ep[i]);
    free(fx);
    return 0;
}

static void test_transport_rank_and_size(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(transport_rank(fx->ep[i]), i);
        assert_int_equal(transport_size(fx->ep[i]), 3);
    }
    assert_string_equal(transport_kind(fx->ep[0]), "loopback");
}

static void test_transport_order_and_source(void **state)
{
    struct fixture *fx = *state;
    struct stf_error err;
    assert_int_equal(transport_send(fx->ep[1], 0, 7, "one", 4, 1.0, &err), STF_OK);
    assert_int_equal(transport_send(fx->ep[2], 0, 7, "two!", 5, 1.0, &err), STF_OK);
    assert_int_equal(transport_send(fx->ep[1], 0, 7, "three", 6, 1.0, &err), STF_OK);
    struct transport_msg msg;
    char buf[16];
    /* by source: rank 2's message first even though it arrived second */
    assert_int_equal(transport_probe(fx->ep[0], 2, 1.0, NULL, &msg, &err), STF_OK);
    assert_int_equal(msg.source, 2);
    assert_int_equal(msg.len, 5);
    assert_int_equal(transport_recv(fx->ep[0], &msg, buf, sizeof buf, &err), STF_OK);
    assert_string_equal(buf, "two!");
    /* any source: rank 1's messages in order */
    assert_int_equal(transport_probe(fx->ep[0], TRANSPORT_ANY_SOURCE, 1.0, NULL, &msg, &err),
                     STF_OK);
    assert_int_equal(transport_recv(fx->ep[0], &msg, buf, sizeof buf, &err), STF_OK);
    assert_string_equal(buf, "one");
    assert_int_equal(transport_probe(fx->ep[0], 1, 1.0, NULL, &msg, &err), STF_OK);
    assert_int_equal(transport_recv(fx->ep[0], &msg, buf, sizeof buf, &err), STF_OK);
    assert_string_equal(buf, "three");
    const struct transport_counters *c = transport_counters(fx->ep[1]);
    assert_int_equal(c->bytes_sent, 10);
    assert_int_equal(c->msgs_sent, 2);
    assert_int_equal(transport_counters(fx->ep[0])->bytes_recv, 15);
}

static void test_transport_recv_too_large(void **state)
{
    struct fixture *fx = *state;
    struct stf_error err = {0};
    char big[64] = {0}, small[8];
    assert_int_equal(transport_send(fx->ep[2], 1, 0, big, sizeof big, 1.0, &err), STF_OK);
    struct transport_msg msg;
    assert_int_equal(transport_probe(fx->ep[1], 2, 1.0, NULL, &msg, &err), STF_OK);
    assert_int_equal(transport_recv(fx->ep[1], &msg, small, sizeof small, &err), STF_ERR_PROTOCOL);
    assert_non_null(strstr(err.msg, "64 bytes from rank 2"));
}

static void test_transport_probe_timeout_names_peer(void **state)
{
    struct fixture *fx = *state;
    struct stf_error err = {0};
    struct transport_msg msg;
    double t0 = stf_now();
    assert_int_equal(transport_probe(fx->ep[0], 2, 0.05, "a result", &msg, &err),
                     STF_ERR_TRANSPORT);
    assert_true(stf_now() - t0 < 1.0);
    assert_non_null(strstr(err.msg, "rank 0: timed out"));
    assert_non_null(strstr(err.msg, "waiting for rank 2 to send a result"));
    assert_true(transport_counters(fx->ep[0])->wait_seconds >= 0.05);
}

static void test_transport_bad_peer(void **state)
{
    struct fixture *fx = *state;
    struct stf_error err = {0};
    assert_int_equal(transport_send(fx->ep[0], 3, 0, "x", 1, 1.0, &err), STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "outside 0..2"));
}

static void test_transport_gather(void **state)
{
    struct fixture *fx = *state;
    struct stf_error err;
    uint32_t mine[3] = {10, 11, 12}, all[3] = {0};
    assert_int_equal(transport_gather(fx->ep[1], 0, &mine[1], 4, NULL, &err), STF_OK);
    assert_int_equal(transport_gather(fx->ep[2], 0, &mine[2], 4, NULL, &err), STF_OK);
    assert_int_equal(transport_gather(fx->ep[0], 0, &mine[0], 4, all, &err), STF_OK);
    assert_memory_equal(all, mine, sizeof mine);
}

/* A 6-endpoint world split into two groups of 3 by color (rank % 2), ordered by a key that
 * reverses the world order; each group then allgathers its members' world ranks, twice in a
 * row (the second rendezvous must not see the first one's data). One thread per endpoint. */
struct split_arg {
    struct transport *world;
    int got[2][3]; /* two rounds of the group's allgather */
    int sub_rank, sub_size;
    enum stf_status st;
};

static void *split_thread(void *p)
{
    struct split_arg *a = p;
    struct stf_error err;
    struct transport *sub = NULL;
    int me = transport_rank(a->world);
    if ((a->st = transport_split(a->world, me % 2, -me, &sub, &err))) return NULL;
    a->sub_rank = transport_rank(sub);
    a->sub_size = transport_size(sub);
    for (int round = 0; round < 2 && !a->st; round++) {
        int mine = me + 100 * round;
        a->st = transport_allgather(sub, &mine, sizeof mine, a->got[round], 5.0, &err);
    }
    if (!a->st && transport_counters(sub)->collectives != 2) a->st = STF_ERR_TRANSPORT;
    transport_close(sub);
    return NULL;
}

static void test_transport_loopback_split_allgather(void **state)
{
    (void)state;
    struct transport *w[6];
    struct stf_error err;
    assert_int_equal(transport_loopback_create(6, w, &err), STF_OK);
    struct split_arg a[6] = {0};
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        a[i].world = w[i];
        assert_int_equal(pthread_create(&th[i], NULL, split_thread, &a[i]), 0);
    }
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(a[i].st, STF_OK);
        assert_int_equal(a[i].sub_size, 3);
        /* key -rank: the largest world rank of the color comes first */
        int members[3];
        for (int k = 0, j = 4 + i % 2; k < 3; k++, j -= 2)
            members[k] = j;
        assert_int_equal(members[a[i].sub_rank], i);
        for (int round = 0; round < 2; round++)
            for (int k = 0; k < 3; k++)
                assert_int_equal(a[i].got[round][k], members[k] + 100 * round);
    }
    for (int i = 0; i < 6; i++)
        transport_close(w[i]);
}

/* From one thread, a multi-endpoint allgather cannot complete: it must fail after its
 * timeout and say why, not hang. A one-endpoint allgather is a copy. */
static void test_transport_loopback_allgather_needs_threads(void **state)
{
    struct fixture *fx = *state;
    struct stf_error err;
    int x = 5, y[3];
    assert_int_equal(transport_allgather(fx->ep[0], &x, sizeof x, y, 0.05, &err),
                     STF_ERR_TRANSPORT);
    assert_non_null(strstr(err.msg, "one thread per endpoint"));
    struct transport *one;
    assert_int_equal(transport_loopback_create(1, &one, &err), STF_OK);
    assert_int_equal(transport_allgather(one, &x, sizeof x, y, 1.0, &err), STF_OK);
    assert_int_equal(y[0], 5);
    transport_close(one);
}

static void test_transport_frame_through_loopback(void **state)
{
    struct fixture *fx = *state;
    struct stf_error err;
    const struct frame_limits lim = {
        .width = 4, .streams = 1, .max_rows = 2, .n_slots = 1, .capacity = 8};
    float x[4] = {1, -2, 3.5f, 0};
    struct frame f = {.version = FRAME_VERSION,
                      .kind = FRAME_DECODE,
                      .session = 1,
                      .position = 3,
                      .rows = 1,
                      .streams = 1,
                      .width = 4,
                      .dtype = FRAME_F32,
                      .cache = {.slot = 0, .fill = 3},
                      .data = x,
                      .data_len = sizeof x,
                      .origin_rank = 1,
                      .sequence = 1};
    unsigned char out[512], in[512];
    size_t len;
    assert_int_equal(frame_pack(&f, out, sizeof out, &len, &err), STF_OK);
    assert_int_equal(transport_send(fx->ep[1], 2, 1, out, len, 1.0, &err), STF_OK);
    struct transport_msg msg;
    assert_int_equal(transport_probe(fx->ep[2], 1, 1.0, NULL, &msg, &err), STF_OK);
    assert_int_equal(transport_recv(fx->ep[2], &msg, in, sizeof in, &err), STF_OK);
    struct frame_decoder *dec;
    assert_int_equal(frame_decoder_create(&lim, &dec, &err), STF_OK);
    struct frame g;
    assert_int_equal(frame_decode(dec, in, msg.len, msg.source, &g, &err), STF_OK);
    assert_int_equal(g.position, 3);
    assert_memory_equal(g.data, x, sizeof x);
    frame_decoder_free(dec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transport_rank_and_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_order_and_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_recv_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_probe_timeout_names_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_bad_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_gather, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_frame_through_loopback, setup, teardown),
        cmocka_unit_test(test_transport_loopback_split_allgather),
        cmocka_unit_test_setup_teardown(test_transport_loopback_allgather_needs_threads, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
