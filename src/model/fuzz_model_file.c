/*
 * libFuzzer target: a hostile model file (-DSTF_FUZZ=ON, clang). The first byte picks how
 * the rest is used:
 *   0  the bytes are the file as is (header, manifest parser, every check);
 *   1  the header's file_size and manifest checksum are set to match the bytes first, so
 *      that mutations of the manifest (config, tensor table) reach the checks behind them.
 * Opening must fail with a message naming the file, or give a model whose views all lie
 * inside the mapped file; an opened model then decodes a few tokens, where each step must
 * either finish or report a non-finite value (never read outside a view or overflow).
 * The memory limit is set low ($STF_MEMORY_LIMIT) so that sizes claimed by a small file
 * are refused instead of allocated.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/forward.h"
#include "model/model_file.h"
#include "util/crc32c.h"
#include "util/le.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_a_few(const struct model *m)
{
    const struct model_config *c = &m->cfg;
    struct stf_error err = {0};
    struct seq_state *s = NULL;
    struct workspace *ws = NULL;
    uint32_t cap = c->max_seq_len < 3 ? c->max_seq_len : 3;
    float *x = NULL, *logits = NULL;
    if (seq_state_create(c, 0, c->n_layers, cap, &s, &err) ||
        workspace_create(c, cap, &kernels_ref, &ws, &err))
        goto done;
    x = stf_alloc(c->d_model * sizeof *x);
    logits = stf_alloc((size_t)c->vocab_size * sizeof *logits);
    if (!x || !logits) goto done;
    seq_state_reset(s);
    for (uint32_t pos = 0; pos < cap; pos++) {
        uint32_t tok = (pos * 7 + c->bos_id) % c->vocab_size;
        if (forward_embed(m, tok, pos, x) != FORWARD_FINITE) break;
        if (forward_layers(m, s, ws, pos, x) != FORWARD_FINITE) break;
        if (forward_head(m, ws, x, logits) != FORWARD_FINITE) break;
    }
done:
    stf_free(x);
    stf_free(logits);
    workspace_free(ws);
    seq_state_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    static unsigned char *copy;
    static size_t copy_cap;
    if (fd < 0) {
        setenv("STF_MEMORY_LIMIT", "256M", 1);
        fd = memfd_create("fuzz_model_file", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (size == 0) return 0;
    size_t n = size - 1;
    if (n > copy_cap) {
        free(copy);
        copy = malloc(n);
        copy_cap = n;
        if (!copy) abort();
    }
    if (n) memcpy(copy, data + 1, n);
    if (data[0] % 2 == 1 && n >= MODEL_HEADER_SIZE) {
        le_put_u64(copy + offsetof(struct model_file_header, file_size), n);
        uint64_t msize = le_get_u64(copy + offsetof(struct model_file_header, manifest_size));
        if (msize <= n - MODEL_HEADER_SIZE) {
            uint32_t crc = crc32c_update(0, copy + MODEL_HEADER_SIZE, msize);
            for (int i = 0; i < 4; i++)
                copy[offsetof(struct model_file_header, manifest_crc32c) + i] =
                    (unsigned char)(crc >> (8 * i));
        }
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, copy, n, 0) != (ssize_t)n) abort();

    struct model *m = NULL;
    struct stf_error err = {0};
    if (model_open(path, NULL, 0, &m, &err) != STF_OK) {
        if (!strstr(err.msg, path)) abort(); /* every failure names the file */
        return 0;
    }
    decode_a_few(m);
    model_close(m);
    /* a file that opens also opens with its checksums checked, or fails on one */
    if (model_open(path, NULL, MODEL_OPEN_VERIFY, &m, &err) == STF_OK) model_close(m);
    return 0;
}
