/* test_journal: what a journal gives back after a crash is exactly the records written
 * wholly before it — for a cut at every byte and for a flipped byte — never a misread
 * record; another job's header is refused naming the key; one job at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pipeline/journal.h"

#define HEADER "journal=1\nmodel=123 bytes\ntemperature=0.8\n"

struct job {
    char dir[64];
    char path[96];
    unsigned char *bytes; /* the complete file */
    size_t size;
    size_t ends[16]; /* file size after each record */
    int n_records;
};

static size_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (size_t)sb.st_size;
}

static struct rng rng_after(uint32_t i)
{
    struct rng r;
    rng_seed(&r, 1000 + i);
    return r;
}

/* Session 0: prompt, 3 tokens, end; session 1: prompt, 2 tokens; session 2: nothing. */
static void write_job(struct job *jb)
{
    snprintf(jb->dir, sizeof jb->dir, "/tmp/test_journal.XXXXXX");
    assert_non_null(mkdtemp(jb->dir));
    snprintf(jb->path, sizeof jb->path, "%s/journal", jb->dir);
    struct journal *j = NULL;
    struct stf_error err = {0};
    assert_int_equal(journal_open(jb->dir, HEADER, 3, 4, &j, &err), STF_OK);
    assert_false(j->resumed);
    jb->n_records = 0;
    jb->ends[jb->n_records++] = file_size(jb->path);
    const uint32_t p0[] = {1, 2, 3, 4}, p1[] = {9};
    assert_int_equal(journal_session(j, 0, 42, p0, 4, &err), STF_OK);
    jb->ends[jb->n_records++] = file_size(jb->path);
    assert_int_equal(journal_session(j, 1, 43, p1, 1, &err), STF_OK);
    jb->ends[jb->n_records++] = file_size(jb->path);
    for (uint32_t t = 0; t < 3; t++) {
        struct rng r = rng_after(t);
        assert_int_equal(journal_token(j, 0, 100 + t, &r, &err), STF_OK);
        jb->ends[jb->n_records++] = file_size(jb->path);
        if (t < 2) {
            r = rng_after(10 + t);
            assert_int_equal(journal_token(j, 1, 200 + t, &r, &err), STF_OK);
            jb->ends[jb->n_records++] = file_size(jb->path);
        }
    }
    assert_int_equal(journal_end(j, 0, JOURNAL_END_EOS, 777, &err), STF_OK);
    jb->ends[jb->n_records++] = file_size(jb->path);
    journal_close(j);
    jb->size = file_size(jb->path);
    assert_int_equal(jb->size, jb->ends[jb->n_records - 1]);
    FILE *f = fopen(jb->path, "rb");
    assert_non_null(f);
    jb->bytes = malloc(jb->size);
    assert_int_equal(fread(jb->bytes, 1, jb->size, f), jb->size);
    fclose(f);
}

static void job_free(struct job *jb)
{
    unlink(jb->path);
    rmdir(jb->dir);
    free(jb->bytes);
}

static void put_file(const struct job *jb, const unsigned char *bytes, size_t n)
{
    FILE *f = fopen(jb->path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

/* The state the first `records` records give (in write order), checked field by field. */
static void check_state(const struct journal *j, int records)
{
    /* write order: header, s0, s1, t0/0, t1/0, t0/1, t1/1, t0/2, end0 */
    static const int kind_of[] = {0, 1, 2, 3, 4, 3, 4, 3, 5}; /* 3: token of 0, 4: of 1 */
    uint32_t tok0 = 0, tok1 = 0;
    bool s0 = false, s1 = false, end0 = false;
    for (int r = 1; r < records; r++) {
        s0 |= kind_of[r] == 1;
        s1 |= kind_of[r] == 2;
        tok0 += kind_of[r] == 3;
        tok1 += kind_of[r] == 4;
        end0 |= kind_of[r] == 5;
    }
    assert_int_equal(j->s[0].started, s0);
    assert_int_equal(j->s[1].started, s1);
    assert_false(j->s[2].started);
    if (s0) {
        assert_int_equal(j->s[0].n_prompt, 4);
        assert_int_equal(j->s[0].prompt[3], 4);
        assert_int_equal(j->s[0].seed, 42);
    }
    if (s1) assert_int_equal(j->s[1].prompt[0], 9);
    assert_int_equal(j->s[0].n_tokens, tok0);
    assert_int_equal(j->s[1].n_tokens, tok1);
    for (uint32_t t = 0; t < tok0; t++) {
        struct rng r = rng_after(t);
        assert_int_equal(j->s[0].tokens[t], 100 + t);
        assert_memory_equal(j->s[0].rng[t].s, r.s, sizeof r.s);
    }
    for (uint32_t t = 0; t < tok1; t++) {
        struct rng r = rng_after(10 + t);
        assert_int_equal(j->s[1].tokens[t], 200 + t);
        assert_memory_equal(j->s[1].rng[t].s, r.s, sizeof r.s);
    }
    assert_int_equal(j->s[0].ended, end0);
    if (end0) {
        assert_int_equal(j->s[0].end, JOURNAL_END_EOS);
        assert_int_equal(j->s[0].dump_bytes, 777);
    }
    assert_false(j->s[1].ended);
}

static void test_journal_reads_back_everything(void **state)
{
    (void)state;
    struct job jb;
    write_job(&jb);
    struct journal *j = NULL;
    struct stf_error err = {0};
    assert_int_equal(journal_open(jb.dir, HEADER, 3, 4, &j, &err), STF_OK);
    assert_true(j->resumed);
    assert_int_equal(j->dropped_bytes, 0);
    check_state(j, jb.n_records);
    journal_close(j);
    job_free(&jb);
}

static void test_journal_cut_at_every_byte(void **state)
{
    (void)state;
    struct job jb;
    write_job(&jb);
    for (size_t cut = 0; cut <= jb.size; cut++) {
        put_file(&jb, jb.bytes, cut);
        int whole = 0; /* records wholly before the cut */
        while (whole < jb.n_records && jb.ends[whole] <= cut)
            whole++;
        struct journal *j = NULL;
        struct stf_error err = {0};
        assert_int_equal(journal_open(jb.dir, HEADER, 3, 4, &j, &err), STF_OK);
        assert_int_equal(j->resumed, whole > 0);
        if (whole > 0) {
            assert_int_equal(j->dropped_bytes, cut - jb.ends[whole - 1]);
            assert_int_equal(file_size(jb.path), jb.ends[whole - 1]);
            check_state(j, whole);
        } else {
            assert_int_equal(file_size(jb.path), jb.ends[0]); /* a new header */
        }
        journal_close(j);
    }
    job_free(&jb);
}

static void test_journal_flipped_byte_drops_the_rest(void **state)
{
    (void)state;
    struct job jb;
    write_job(&jb);
    unsigned char *copy = malloc(jb.size);
    /* a byte flipped anywhere after the header: that record and all after it are dropped */
    for (size_t at = jb.ends[0]; at < jb.size; at++) {
        memcpy(copy, jb.bytes, jb.size);
        copy[at] ^= 0x10;
        put_file(&jb, copy, jb.size);
        int whole = 0;
        while (whole < jb.n_records && jb.ends[whole] <= at)
            whole++;
        struct journal *j = NULL;
        struct stf_error err = {0};
        assert_int_equal(journal_open(jb.dir, HEADER, 3, 4, &j, &err), STF_OK);
        assert_int_equal(j->dropped_bytes, jb.size - jb.ends[whole - 1]);
        check_state(j, whole);
        journal_close(j);
    }
    free(copy);
    job_free(&jb);
}

static void test_journal_refuses_another_job(void **state)
{
    (void)state;
    struct job jb;
    write_job(&jb);
    struct journal *j = NULL;
    struct stf_error err = {0};
    assert_int_equal(
        journal_open(jb.dir, "journal=1\nmodel=123 bytes\ntemperature=0.5\n", 3, 4, &j, &err),
        STF_ERR_ARG);
    assert_null(j);
    assert_non_null(strstr(err.msg, "temperature is `0.8` there but `0.5` here"));
    assert_int_equal(journal_open(jb.dir, "journal=1\nmodel=123 bytes\n", 3, 4, &j, &err),
                     STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "temperature is `0.8` there but `absent` here"));
    assert_int_equal(file_size(jb.path), jb.size); /* untouched */
    /* one job at a time */
    assert_int_equal(journal_open(jb.dir, HEADER, 3, 4, &j, &err), STF_OK);
    struct journal *j2 = NULL;
    assert_int_equal(journal_open(jb.dir, HEADER, 3, 4, &j2, &err), STF_ERR_IO);
    assert_non_null(strstr(err.msg, "in use by another running job"));
    journal_close(j);
    job_free(&jb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_reads_back_everything),
        cmocka_unit_test(test_journal_cut_at_every_byte),
        cmocka_unit_test(test_journal_flipped_byte_drops_the_rest),
        cmocka_unit_test(test_journal_refuses_another_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
