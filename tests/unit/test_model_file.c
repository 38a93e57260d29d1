/* Model file: round trip, layer-range maps, and a clear error for each kind of corruption. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "model.pb-c.h"
#include "model/init.h"
#include "model/model_file.h"
#include "util/crc32c.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/stf_test_model_file_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void write_preset_as(const char *path, const char *preset, uint64_t seed,
                            enum weight_type weights)
{
    struct model_config cfg = {0};
    struct stf_error err = {0};
    assert_int_equal(model_config_parse(&cfg, model_preset_text(preset), preset, &err), STF_OK);
    cfg.weights = weights;
    struct model_init ini;
    model_init_begin(&ini, seed);
    static const char tok[] = "not really a tokenizer";
    struct model_write_opts wo = {.name = preset,
                                  .generator = "test",
                                  .tokenizer = tok,
                                  .tokenizer_len = sizeof tok,
                                  .fill = model_init_fill,
                                  .fill_ctx = &ini};
    if (model_write(path, &cfg, &wo, &err) != STF_OK) fail_msg("write: %s", err.msg);
}

static void write_preset(const char *path, const char *preset, uint64_t seed)
{
    write_preset_as(path, preset, seed, WEIGHTS_F32);
}

static void path_for(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

/* Expects model_open to fail with a message containing needle. */
static void expect_open_error(const char *path, unsigned flags, const char *needle)
{
    struct model *m = NULL;
    struct stf_error err = {0};
    enum stf_status st = model_open(path, NULL, flags, &m, &err);
    if (st == STF_OK) {
        model_close(m);
        fail_msg("%s opened, expected an error containing `%s`", path, needle);
    }
    assert_null(m);
    if (!strstr(err.msg, needle) || !strstr(err.msg, path))
        fail_msg("error `%s` should name the file and contain `%s`", err.msg, needle);
}

static Sparsetf__Model__Tensor *removed;        /* taken out of the list by a mutation */
static Sparsetf__Model__Config *removed_config; /* taken out of the manifest by a mutation */

/* Rewrites the manifest of a file through mutate, keeping the header consistent. */
static void rewrite_manifest(const char *path, void (*mutate)(Sparsetf__Model__Manifest *))
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    unsigned char h[64];
    assert_int_equal(fread(h, 1, 64, f), 64);
    uint64_t msize, doff;
    memcpy(&msize, h + 24, 8);
    memcpy(&doff, h + 32, 8);
    unsigned char *buf = malloc(msize);
    assert_int_equal(fread(buf, 1, msize, f), msize);
    Sparsetf__Model__Manifest *man = sparsetf__model__manifest__unpack(NULL, msize, buf);
    assert_non_null(man);
    mutate(man);
    size_t nsize = sparsetf__model__manifest__get_packed_size(man);
    assert_true(64 + nsize <= doff);
    unsigned char *nbuf = malloc(nsize);
    sparsetf__model__manifest__pack(man, nbuf);
    uint32_t crc = crc32c_update(0, nbuf, nsize);
    uint64_t ns = nsize;
    memcpy(h + 24, &ns, 8);
    memcpy(h + 48, &crc, 4);
    fseek(f, 0, SEEK_SET);
    fwrite(h, 1, 64, f);
    fwrite(nbuf, 1, nsize, f);
    fclose(f);
    /* put back what a mutation took out, so that everything unpacked is freed */
    if (removed) man->n_tensors++; /* it was moved to the last slot */
    if (removed_config) man->config = removed_config;
    removed = NULL;
    removed_config = NULL;
    sparsetf__model__manifest__free_unpacked(man, NULL);
    free(buf);
    free(nbuf);
}

static Sparsetf__Model__Tensor *find(Sparsetf__Model__Manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i]->name, name) == 0) return m->tensors[i];
    fail_msg("no tensor %s", name);
    return NULL;
}

static void mut_out_of_bounds(Sparsetf__Model__Manifest *m)
{
    find(m, "layers.1.ff.w1")->offset = 1ull << 40;
}
static void mut_misaligned(Sparsetf__Model__Manifest *m)
{
    find(m, "layers.0.ln1.g")->offset += 4;
}
static void mut_shape(Sparsetf__Model__Manifest *m)
{
    Sparsetf__Model__Tensor *t = find(m, "layers.0.ff.w1");
    uint64_t a = t->shape[0];
    t->shape[0] = t->shape[1];
    t->shape[1] = a;
}
static void mut_dtype(Sparsetf__Model__Manifest *m)
{
    find(m, "embed")->dtype = SPARSETF__MODEL__DTYPE__DTYPE_I8;
}
static void mut_missing(Sparsetf__Model__Manifest *m)
{
    /* move the tensor out of the list; it is freed after the rewrite by the test */
    for (size_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i]->name, "layers.1.ln2.b") == 0) {
            removed = m->tensors[i];
            m->tensors[i] = m->tensors[m->n_tensors - 1];
            m->tensors[m->n_tensors - 1] = removed;
        }
    m->n_tensors--;
}
static void mut_unknown(Sparsetf__Model__Manifest *m)
{
    Sparsetf__Model__Tensor *t = find(m, "layers.0.ff.b1");
    t->name[strlen(t->name) - 1] = '9'; /* layers.0.ff.b9 */
}
static void mut_heads(Sparsetf__Model__Manifest *m)
{
    m->config->n_heads = 5;
}
static void mut_q8_nbytes(Sparsetf__Model__Manifest *m)
{
    find(m, "embed")->nbytes -= STF_Q8_BLOCK_BYTES;
}

static void mut_version(Sparsetf__Model__Manifest *m)
{
    m->format_version = 7;
}
static void mut_no_config(Sparsetf__Model__Manifest *m)
{
    removed_config = m->config;
    m->config = NULL;
}

static void mut_overlap(Sparsetf__Model__Manifest *m)
{
    /* same size as layers.0.ln1.b, placed on it: two views of the same bytes */
    find(m, "layers.0.ln1.g")->offset = find(m, "layers.0.ln1.b")->offset;
}
static void mut_into_manifest(Sparsetf__Model__Manifest *m)
{
    find(m, "layers.0.ln2.g")->offset = 64; /* the manifest's own bytes */
}
static void mut_huge_unused_ff_rank(Sparsetf__Model__Manifest *m)
{
    m->config->ff_rank = 4000000000u; /* ignored by a dense FF */
    m->config->qkv_modules = 4000000000u;
    m->config->out_modules = 7;
}
static void mut_tokenizer_shape(Sparsetf__Model__Manifest *m)
{
    find(m, "tokenizer.model")->shape[0] += 1;
}

static void test_model_file_round_trip_values(void **state)
{
    (void)state;
    char path[300];
    path_for(path, sizeof path, "rt.stf");
    write_preset(path, "tiny-sparse-sru", 5);
    struct model *m = NULL, *mem = NULL;
    struct stf_error err = {0};
    assert_int_equal(model_open(path, NULL, MODEL_OPEN_VERIFY, &m, &err), STF_OK);
    assert_string_equal(m->name, "tiny-sparse-sru");
    struct model_config want = {0};
    assert_int_equal(
        model_config_parse(&want, model_preset_text("tiny-sparse-sru"), "preset", &err), STF_OK);
    assert_memory_equal(&m->cfg, &want, sizeof want); /* every field through the manifest */
    assert_int_equal(m->tokenizer_len, sizeof "not really a tokenizer");
    assert_memory_equal(m->tokenizer, "not really a tokenizer", m->tokenizer_len);
    struct model_select all = {
        .layer_begin = 0, .layer_end = m->cfg.n_layers, .embed = true, .head = true};
    assert_int_equal(model_create_random(&m->cfg, 5, &all, 0, &mem, &err), STF_OK);
    int n = model_tensor_list(&m->cfg, NULL, NULL, 0);
    struct tensor_desc *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b);
    model_tensor_list(&m->cfg, &m->w, a, n);
    model_tensor_list(&mem->cfg, &mem->w, b, n);
    for (int i = 0; i < n; i++) {
        assert_non_null(a[i].slot->data);
        assert_true(((uintptr_t)a[i].slot->data) % 64 == 0); /* SIMD-aligned views */
        assert_int_equal(a[i].slot->dtype, STF_DTYPE_F32);
        assert_int_equal(a[i].slot->nbytes, tensor_desc_elements(&a[i]) * 4);
        assert_memory_equal(a[i].slot->data, b[i].slot->data, a[i].slot->nbytes);
    }
    /* LayerNorm gains start near 1, the position table is sin/cos */
    const float *ln1_g = view_f32(&m->w.layers[0].ln1_g), *pos = view_f32(&m->w.pos);
    assert_true(ln1_g[0] > 0.5f && ln1_g[0] < 1.5f);
    assert_float_equal(pos[1 * 64 + 0], 0.8414709848, 1e-6); /* sin(1) */
    assert_float_equal(pos[1 * 64 + 1], 0.5403023059, 1e-6); /* cos(1) */
    free(a), free(b);
    model_close(mem);
    model_close(m);
}

static void test_model_file_maps_only_selected_layers(void **state)
{
    (void)state;
    char path[300];
    path_for(path, sizeof path, "sel.stf");
    write_preset(path, "tiny-sparse", 1);
    struct model *m = NULL;
    struct stf_error err = {0};
    struct model_select sel = {.layer_begin = 1, .layer_end = 2, .embed = false, .head = false};
    assert_int_equal(model_open(path, &sel, 0, &m, &err), STF_OK);
    assert_null(m->w.embed.data);
    assert_null(model_weights_find(&m->cfg, &m->w, "out.g")->data);
    assert_null(m->tokenizer);
    assert_null(model_weights_find(&m->cfg, &m->w, "layers.0.ff.w1t")->data);
    assert_non_null(model_weights_find(&m->cfg, &m->w, "layers.1.ff.w1t")->data);
    int n = model_tensor_list(&m->cfg, NULL, NULL, 0);
    struct tensor_desc *d = calloc((size_t)n, sizeof *d);
    model_tensor_list(&m->cfg, NULL, d, n);
    uint64_t want = 0;
    for (int i = 0; i < n; i++)
        if (d[i].group == GROUP_LAYER && d[i].layer == 1) want += tensor_desc_elements(&d[i]) * 4;
    assert_int_equal(want, model_layer_bytes(&m->cfg));
    assert_int_equal(m->mapped_bytes, want);
    free(d);
    model_close(m);
    struct model_select bad = {.layer_begin = 1, .layer_end = 3, .embed = false, .head = false};
    assert_int_equal(model_open(path, &bad, 0, &m, &err), STF_ERR_ARG);
    assert_non_null(strstr(err.msg, "outside the model's 2 layers"));
}

static void test_model_file_header_errors(void **state)
{
    (void)state;
    char path[300];
    path_for(path, sizeof path, "h.stf");

    write_preset(path, "tiny-dense", 1);
    off_t size;
    {
        FILE *f = fopen(path, "rb");
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fclose(f);
    }
    assert_int_equal(truncate(path, size - 100), 0);
    expect_open_error(path, 0, "file is truncated");

    write_preset(path, "tiny-dense", 1);
    FILE *f = fopen(path, "r+b");
    fwrite("GGUF", 1, 4, f);
    fclose(f);
    expect_open_error(path, 0, "not a sparsetf model file");

    write_preset(path, "tiny-dense", 1);
    f = fopen(path, "r+b");
    fseek(f, 8, SEEK_SET);
    uint32_t v = 99;
    fwrite(&v, 4, 1, f);
    fclose(f);
    expect_open_error(path, 0, "format version 99");

    write_preset(path, "tiny-dense", 1);
    f = fopen(path, "r+b");
    fseek(f, 80, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 80, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
    expect_open_error(path, 0, "manifest checksum mismatch");

    assert_int_equal(truncate(path, 10), 0);
    expect_open_error(path, 0, "only 10 bytes");

    expect_open_error("/nonexistent/model.stf", 0, "cannot open");
}

static void test_model_file_tensor_errors(void **state)
{
    (void)state;
    struct {
        void (*mutate)(Sparsetf__Model__Manifest *);
        const char *needle;
    } cases[] = {
        {mut_out_of_bounds, "tensor layers.1.ff.w1: bytes"},
        {mut_misaligned, "tensor layers.0.ln1.g: bytes"},
        {mut_shape,
         "tensor layers.0.ff.w1: shape (256, 64) does not match the config, expected (64, 256)"},
        {mut_dtype, "tensor embed: dtype 3, expected f32"},
        {mut_missing, "tensor layers.1.ln2.b is missing"},
        {mut_unknown, "tensor layers.0.ff.b9 is not part of this config"},
        {mut_heads, "n_heads (5) must divide d_model (64)"},
        {mut_version, "manifest: format_version 7, this build reads version 1"},
        {mut_no_config, "manifest: the config is missing"},
    };
    char path[300];
    path_for(path, sizeof path, "t.stf");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_preset(path, "tiny-dense", 1);
        rewrite_manifest(path, cases[i].mutate);
        expect_open_error(path, 0, cases[i].needle);
    }
}

/* Writes a u64 / u32 at byte `at` of the header. */
static void poke_header(const char *path, long at, uint64_t v, int width)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, at, SEEK_SET);
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    assert_int_equal(fwrite(b, 1, (size_t)width, f), (size_t)width);
    fclose(f);
}

static void test_model_file_untrusted_layout(void **state)
{
    (void)state;
    char path[300];
    path_for(path, sizeof path, "u.stf");
    struct {
        long at;
        uint64_t value;
        int width;
        const char *needle;
    } header_cases[] = {
        {32, 0xffffffffffffff00ull, 8, "header: data_offset 18446744073709551360 must be"},
        {32, 8192 + 64, 8, "header: data_offset 8256 must be a multiple of 4096"},
        {32, 64, 8, "header: data_offset 64 must be"},
        {52, 1, 4, "header: reserved bytes 52..63 are not zero"},
        {60, 0x80000000u, 4, "header: reserved bytes 52..63 are not zero"},
    };
    for (size_t i = 0; i < sizeof header_cases / sizeof header_cases[0]; i++) {
        write_preset(path, "tiny-dense", 1);
        poke_header(path, header_cases[i].at, header_cases[i].value, header_cases[i].width);
        expect_open_error(path, 0, header_cases[i].needle);
    }
    struct {
        void (*mutate)(Sparsetf__Model__Manifest *);
        const char *needle;
    } cases[] = {
        {mut_overlap, ") overlap"},
        {mut_into_manifest, "tensor layers.0.ln2.g: bytes 64..320 are out of bounds"},
        {mut_tokenizer_shape, "tensor tokenizer.model: must appear once, with dtype u8 and shape"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_preset(path, "tiny-dense", 1);
        rewrite_manifest(path, cases[i].mutate);
        expect_open_error(path, 0, cases[i].needle);
    }
    /* fields of kinds not chosen size nothing: they read as zero */
    write_preset(path, "tiny-dense", 1);
    rewrite_manifest(path, mut_huge_unused_ff_rank);
    struct model *m = NULL;
    struct stf_error err = {0};
    assert_int_equal(model_open(path, NULL, 0, &m, &err), STF_OK);
    assert_int_equal(m->cfg.ff_rank, 0);
    assert_int_equal(m->cfg.ff_block, 0);
    assert_int_equal(m->cfg.qkv_modules, 0);
    assert_int_equal(m->cfg.out_modules, 0);
    model_close(m);
    struct model_config cfg;
    assert_int_equal(model_read_config(path, &cfg, &err), STF_OK);
    assert_int_equal(cfg.ff_rank, 0);
    /* the tensors to map are checked against the memory this process may use */
    setenv("STF_MEMORY_LIMIT", "100K", 1);
    expect_open_error(path, 0, "the tensors this process needs are");
    unsetenv("STF_MEMORY_LIMIT");
}

static void test_model_file_verify_catches_flipped_byte(void **state)
{
    (void)state;
    char path[300];
    path_for(path, sizeof path, "v.stf");
    write_preset(path, "tiny-sparse", 1);
    struct model *m = NULL;
    struct stf_error err = {0};
    /* flip one byte in the middle of layers.1.ff.w1t, found through the manifest */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "r+b");
    unsigned char h[64];
    assert_int_equal(fread(h, 1, 64, f), 64);
    uint64_t msize;
    memcpy(&msize, h + 24, 8);
    unsigned char *buf = malloc(msize);
    assert_int_equal(fread(buf, 1, msize, f), msize);
    Sparsetf__Model__Manifest *man = sparsetf__model__manifest__unpack(NULL, msize, buf);
    uint64_t toff = find(man, "layers.1.ff.w1t")->offset + 1000;
    sparsetf__model__manifest__free_unpacked(man, NULL);
    free(buf);
    fseek(f, (long)toff, SEEK_SET);
    int c = fgetc(f);
    fseek(f, (long)toff, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    assert_int_equal(model_open(path, NULL, 0, &m, &err), STF_OK); /* not checked by default */
    model_close(m);
    expect_open_error(path, MODEL_OPEN_VERIFY, "tensor layers.1.ff.w1t: checksum mismatch");
}

/* Overwrites `len` bytes at byte `at` of tensor `name` of the file at path. */
static void patch_tensor(const char *path, const char *name, uint64_t at, const void *bytes,
                         size_t len)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    unsigned char h[64];
    assert_int_equal(fread(h, 1, 64, f), 64);
    uint64_t msize;
    memcpy(&msize, h + 24, 8);
    unsigned char *buf = malloc(msize);
    assert_int_equal(fread(buf, 1, msize, f), msize);
    Sparsetf__Model__Manifest *man = sparsetf__model__manifest__unpack(NULL, msize, buf);
    uint64_t off = find(man, name)->offset + at;
    sparsetf__model__manifest__free_unpacked(man, NULL);
    free(buf);
    fseek(f, (long)off, SEEK_SET);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    fclose(f);
}

/* A q8 file: the writer's tensors equal q8_quantize_row of the f32 file's (transposed ones
 * column by column), the loader binds q8 views of the right size, and a non-finite scale or
 * a wrong byte length is an error naming the tensor. */
static void test_model_file_q8(void **state)
{
    (void)state;
    char p32[300], p8[300];
    path_for(p32, sizeof p32, "f.stf");
    path_for(p8, sizeof p8, "q.stf");
    write_preset(p32, "tiny-sparse-sru", 3);
    write_preset_as(p8, "tiny-sparse-sru", 3, WEIGHTS_Q8);
    struct model *a = NULL, *q = NULL;
    struct stf_error err = {0};
    assert_int_equal(model_open(p32, NULL, MODEL_OPEN_VERIFY, &a, &err), STF_OK);
    if (model_open(p8, NULL, MODEL_OPEN_VERIFY, &q, &err)) fail_msg("%s", err.msg);
    assert_int_equal(q->cfg.weights, WEIGHTS_Q8);
    const char *rows_as_is[] = {"embed", "layers.1.ff.w1t", "layers.0.attn.mult.g"};
    for (size_t i = 0; i < 3; i++) { /* row r of the q8 tensor = row r of the f32 one */
        const struct tensor_view *vf = model_weights_find(&a->cfg, &a->w, rows_as_is[i]);
        const struct tensor_view *vq = model_weights_find(&q->cfg, &q->w, rows_as_is[i]);
        assert_int_equal(vq->dtype, STF_DTYPE_Q8_0);
        uint32_t d = a->cfg.d_model, nb = q8_row_blocks(d);
        uint64_t rows = vf->nbytes / 4 / d;
        assert_int_equal(vq->nbytes, rows * nb * STF_Q8_BLOCK_BYTES);
        struct q8_block *want = malloc(nb * sizeof *want);
        for (uint64_t r = 0; r < rows; r++) {
            q8_quantize_row(want, (const float *)vf->data + r * d, d);
            assert_memory_equal(want, (const struct q8_block *)vq->data + r * nb,
                                nb * sizeof *want);
        }
        free(want);
    }
    { /* attn.mult.p (d, M) is stored as M rows of d: row m = column m */
        const struct tensor_view *vf = model_weights_find(&a->cfg, &a->w, "layers.0.attn.mult.p");
        const struct tensor_view *vq = model_weights_find(&q->cfg, &q->w, "layers.0.attn.mult.p");
        uint32_t d = a->cfg.d_model, M = d / a->cfg.qkv_modules, nb = q8_row_blocks(d);
        float *col = malloc(d * sizeof *col);
        struct q8_block *want = malloc(nb * sizeof *want);
        for (uint32_t m = 0; m < M; m++) {
            for (uint32_t i = 0; i < d; i++)
                col[i] = ((const float *)vf->data)[(uint64_t)i * M + m];
            q8_quantize_row(want, col, d);
            assert_memory_equal(want, (const struct q8_block *)vq->data + (uint64_t)m * nb,
                                nb * sizeof *want);
        }
        free(col);
        free(want);
    }
    const struct tensor_view *c1 = model_weights_find(&q->cfg, &q->w, "layers.0.ff.ctrl.c1");
    assert_int_equal(c1->dtype, STF_DTYPE_F32); /* the controller stays f32 */
    model_close(a);
    model_close(q);
    /* an infinite scale in block 3 of layers.1.ff.w2 */
    uint16_t inf = 0x7c00;
    patch_tensor(p8, "layers.1.ff.w2", 3 * STF_Q8_BLOCK_BYTES, &inf, sizeof inf);
    expect_open_error(p8, 0, "tensor layers.1.ff.w2: q8 block 3 has scale inf");
    /* a q8 tensor whose byte length does not match its rows and blocks */
    write_preset_as(p8, "tiny-sparse-sru", 3, WEIGHTS_Q8);
    rewrite_manifest(p8, mut_q8_nbytes);
    expect_open_error(p8, 0, "tensor embed: nbytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_file_round_trip_values),
        cmocka_unit_test(test_model_file_maps_only_selected_layers),
        cmocka_unit_test(test_model_file_header_errors),
        cmocka_unit_test(test_model_file_tensor_errors),
        cmocka_unit_test(test_model_file_untrusted_layout),
        cmocka_unit_test(test_model_file_verify_catches_flipped_byte),
        cmocka_unit_test(test_model_file_q8),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
