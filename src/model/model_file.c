#include "model/model_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kernels_q8.h"
#include "model.pb-c.h"
#include "model/tp.h"
#include "util/crc32c.h"
#include "util/le.h"

#define WRITE_CHUNK_ELEMS (1u << 20) /* 4 MiB of floats per write */
#define MAP_MERGE_GAP     (1u << 20) /* tensors closer than this share one mapping */

/* ---- little-endian header encoding ---- */

static void header_encode(const struct model_file_header *h, unsigned char out[MODEL_HEADER_SIZE])
{
    memset(out, 0, MODEL_HEADER_SIZE);
    memcpy(out, h->magic, 8);
    le_put_u32(out + offsetof(struct model_file_header, version), h->version);
    le_put_u32(out + offsetof(struct model_file_header, header_size), h->header_size);
    le_put_u64(out + offsetof(struct model_file_header, manifest_offset), h->manifest_offset);
    le_put_u64(out + offsetof(struct model_file_header, manifest_size), h->manifest_size);
    le_put_u64(out + offsetof(struct model_file_header, data_offset), h->data_offset);
    le_put_u64(out + offsetof(struct model_file_header, file_size), h->file_size);
    le_put_u32(out + offsetof(struct model_file_header, manifest_crc32c), h->manifest_crc32c);
}

static void header_decode(const unsigned char in[MODEL_HEADER_SIZE], struct model_file_header *h)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, in, 8);
    h->version = le_get_u32(in + offsetof(struct model_file_header, version));
    h->header_size = le_get_u32(in + offsetof(struct model_file_header, header_size));
    h->manifest_offset = le_get_u64(in + offsetof(struct model_file_header, manifest_offset));
    h->manifest_size = le_get_u64(in + offsetof(struct model_file_header, manifest_size));
    h->data_offset = le_get_u64(in + offsetof(struct model_file_header, data_offset));
    h->file_size = le_get_u64(in + offsetof(struct model_file_header, file_size));
    h->manifest_crc32c = le_get_u32(in + offsetof(struct model_file_header, manifest_crc32c));
    for (int i = 0; i < 3; i++)
        h->reserved[i] = le_get_u32(in + offsetof(struct model_file_header, reserved) + 4 * i);
}

/* ---- config <-> protobuf (every field of MODEL_CONFIG_FIELDS has the same name there) ---- */

static void config_to_proto(const struct model_config *c, Sparsetf__Model__Config *p)
{
#define TO_U32(name, min, max, comment) p->name = c->name;
/* through uint32_t: the proto enums and ours have the same values, not the same type */
#define TO_ENUM(name, type, choices, comment) p->name = (uint32_t)c->name;
    MODEL_CONFIG_FIELDS(TO_U32, TO_ENUM)
#undef TO_U32
#undef TO_ENUM
}

/* Out-of-range enum values are kept as they are: model_config_validate names the field. */
static void config_from_proto(const Sparsetf__Model__Config *p, struct model_config *c)
{
    memset(c, 0, sizeof *c);
#define FROM_U32(name, min, max, comment)       c->name = p->name;
#define FROM_ENUM(name, type, choices, comment) c->name = (type)(uint32_t)p->name;
    MODEL_CONFIG_FIELDS(FROM_U32, FROM_ENUM)
#undef FROM_U32
#undef FROM_ENUM
}

/* ---- dtype <-> protobuf ---- */

static const struct {
    Sparsetf__Model__DType proto;
    enum stf_dtype dtype;
} dtype_map[] = {
    {SPARSETF__MODEL__DTYPE__DTYPE_F32, STF_DTYPE_F32},
    {SPARSETF__MODEL__DTYPE__DTYPE_U8, STF_DTYPE_U8},
    {SPARSETF__MODEL__DTYPE__DTYPE_Q8_0, STF_DTYPE_Q8_0},
};

static Sparsetf__Model__DType dtype_to_proto(enum stf_dtype t)
{
    for (size_t i = 0; i < sizeof dtype_map / sizeof dtype_map[0]; i++)
        if (dtype_map[i].dtype == t) return dtype_map[i].proto;
    return SPARSETF__MODEL__DTYPE__DTYPE_INVALID;
}

/* false when the file's dtype has no counterpart in this build */
static bool dtype_from_proto(Sparsetf__Model__DType p, enum stf_dtype *t)
{
    for (size_t i = 0; i < sizeof dtype_map / sizeof dtype_map[0]; i++)
        if (dtype_map[i].proto == p) {
            *t = dtype_map[i].dtype;
            return true;
        }
    return false;
}

/* Fields that only a kind not chosen would use (ff_rank of a dense FF, ...) size nothing
 * and match no tensor, so nothing may depend on them: they read as zero after loading. */
static void config_clear_unused(struct model_config *c)
{
    if (c->ff != FF_SPARSE) c->ff_block = c->ff_rank = 0;
    if (c->attn != ATTN_SPARSE_QKV) c->qkv_modules = 0;
    if (c->out != OUT_MULT) c->out_modules = 0;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

/* ---- writing ---- */

static enum stf_status write_all(int fd, const void *buf, size_t len, uint64_t offset,
                                 const char *path, struct stf_error *err)
{
    const char *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return stf_fail(err, STF_ERR_IO, "%s: write failed at byte %llu: %s", path,
                            (unsigned long long)offset, strerror(errno));
        }
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return STF_OK;
}

/* Elements of one stored row (everything after the row axis). */
static uint64_t desc_row_elems(const struct tensor_desc *t)
{
    uint64_t n = 1;
    for (int i = 1; i < t->rank; i++)
        n *= t->shape[i];
    return n;
}

/* Writes q8 tensor t at offset: the fill callback gives its values in f32 order (it sees an
 * f32 desc), quantised one stored row at a time (q8_quantize_row). A transposed tensor's rows
 * are f32 columns, so it is filled whole first: the largest such tensor bounds the memory
 * (out.p, 147 MB at 17b-sparse; ff.w1, 1.5 GB at 17b-dense); others stream in chunks. */
static enum stf_status write_q8(int fd, const char *tmp_path, const struct model_write_opts *o,
                                const struct tensor_desc *t, uint64_t offset, uint32_t *crc,
                                uint64_t *done, uint64_t total, struct stf_error *err)
{
    uint64_t rows = t->shape[0], n = desc_row_elems(t), nb = q8_row_blocks((uint32_t)n);
    uint64_t row_bytes = nb * STF_Q8_BLOCK_BYTES, elems = rows * n;
    struct tensor_desc f = *t; /* what the fill callback sees: f32, in f32 order */
    f.dtype = STF_DTYPE_F32;
    f.transposed = false;
    if (t->transposed) {
        memset(f.shape, 0, sizeof f.shape);
        f.rank = 2;
        f.shape[0] = n;
        f.shape[1] = rows;
    }
    uint64_t batch = t->transposed ? 1 : (WRITE_CHUNK_ELEMS / n ? WRITE_CHUNK_ELEMS / n : 1);
    float *vals = stf_alloc((t->transposed ? elems : batch * n) * sizeof(float));
    float *col = stf_alloc(n * sizeof(float));
    uint64_t qrows = WRITE_CHUNK_ELEMS / n ? WRITE_CHUNK_ELEMS / n : 1;
    struct q8_block *q = stf_alloc(qrows * row_bytes);
    enum stf_status st = STF_OK;
    if (!vals || !col || !q) {
        st = stf_fail(err, STF_ERR_NOMEM, "out of memory quantising tensor %s (%llu values)",
                      t->name, (unsigned long long)(t->transposed ? elems : batch * n));
        goto out;
    }
    if (t->transposed) /* the whole f32 tensor, in order */
        for (uint64_t s = 0; s < elems; s += WRITE_CHUNK_ELEMS) {
            uint64_t cnt = elems - s < WRITE_CHUNK_ELEMS ? elems - s : WRITE_CHUNK_ELEMS;
            if ((st = o->fill(o->fill_ctx, &f, vals + s, s, cnt, err))) goto out;
        }
    for (uint64_t r0 = 0; r0 < rows; r0 += qrows) {
        uint64_t cnt = rows - r0 < qrows ? rows - r0 : qrows;
        for (uint64_t r = 0; r < cnt; r++) {
            const float *src;
            if (t->transposed) { /* stored row r0 + r = f32 column r0 + r */
                for (uint64_t i = 0; i < n; i++)
                    col[i] = vals[i * rows + r0 + r];
                src = col;
            } else {
                if ((r % batch) == 0) {
                    uint64_t k = cnt - r < batch ? cnt - r : batch;
                    if ((st = o->fill(o->fill_ctx, &f, vals, (r0 + r) * n, k * n, err))) goto out;
                }
                src = vals + (r % batch) * n;
            }
            q8_quantize_row((struct q8_block *)((unsigned char *)q + r * row_bytes), src,
                            (uint32_t)n);
        }
        *crc = crc32c_update(*crc, q, cnt * row_bytes);
        if ((st = write_all(fd, q, cnt * row_bytes, offset + r0 * row_bytes, tmp_path, err)))
            goto out;
        *done += cnt * row_bytes;
        if (o->progress) o->progress(o->progress_ctx, *done, total);
    }
out:
    stf_free(vals);
    stf_free(col);
    stf_free(q);
    return st;
}

enum stf_status model_write(const char *path, const struct model_config *cfg,
                            const struct model_write_opts *opts, struct stf_error *err)
{
    enum stf_status st = model_config_validate(cfg, err);
    if (st) return st;
    int n = model_tensor_list(cfg, NULL, NULL, 0);
    int n_all = n + (opts->tokenizer ? 1 : 0);
    struct tensor_desc *descs = calloc((size_t)n, sizeof *descs);
    Sparsetf__Model__Tensor *tensors = calloc((size_t)n_all, sizeof *tensors);
    Sparsetf__Model__Tensor **tensor_ptrs = calloc((size_t)n_all, sizeof *tensor_ptrs);
    uint64_t *shapes = calloc((size_t)n_all * 4, sizeof *shapes);
    float *chunk = stf_alloc(WRITE_CHUNK_ELEMS * sizeof(float));
    unsigned char *manifest_buf = NULL;
    char *tmp_path = malloc(strlen(path) + 16);
    int fd = -1;
    if (!descs || !tensors || !tensor_ptrs || !shapes || !chunk || !tmp_path) {
        st = stf_fail(err, STF_ERR_NOMEM, "%s: out of memory building the manifest", path);
        goto fail;
    }
    model_tensor_list(cfg, NULL, descs, n);
    for (int i = 0; i < n; i++)
        if (descs[i].dtype != STF_DTYPE_F32 && descs[i].dtype != STF_DTYPE_Q8_0) {
            st = stf_fail(err, STF_ERR_UNSUPPORTED, "%s: tensor %s: cannot write dtype %s", path,
                          descs[i].name, stf_dtype_name(descs[i].dtype));
            goto fail;
        }

    Sparsetf__Model__Config pcfg = SPARSETF__MODEL__CONFIG__INIT;
    config_to_proto(cfg, &pcfg);
    Sparsetf__Model__Manifest man = SPARSETF__MODEL__MANIFEST__INIT;
    man.format_version = MODEL_FILE_VERSION;
    man.config = &pcfg;
    man.name = (char *)(opts->name ? opts->name : "");
    man.generator = (char *)(opts->generator ? opts->generator : "");
    man.n_tensors = (size_t)n_all;
    man.tensors = tensor_ptrs;
    for (int i = 0; i < n_all; i++) {
        Sparsetf__Model__Tensor *t = &tensors[i];
        sparsetf__model__tensor__init(t);
        tensor_ptrs[i] = t;
        t->shape = &shapes[4 * i];
        if (i < n) {
            t->name = descs[i].name;
            t->dtype = dtype_to_proto(descs[i].dtype);
            t->n_shape = (size_t)descs[i].rank;
            memcpy(t->shape, descs[i].shape, sizeof descs[i].shape);
            t->nbytes = tensor_desc_bytes(&descs[i]);
        } else {
            t->name = (char *)MODEL_TOKENIZER_TENSOR;
            t->dtype = dtype_to_proto(STF_DTYPE_U8);
            t->n_shape = 1;
            t->shape[0] = opts->tokenizer_len;
            t->nbytes = opts->tokenizer_len;
        }
    }
    /* Offsets and CRCs are fixed-width fields, so sizing the manifest with non-zero
     * placeholders gives an upper bound (proto3 omits zero values) before they are known. */
    for (int i = 0; i < n_all; i++) {
        tensors[i].offset = 1;
        tensors[i].crc32c = 0xffffffffu;
    }
    size_t manifest_cap = sparsetf__model__manifest__get_packed_size(&man);
    uint64_t data_offset = align_up(MODEL_HEADER_SIZE + manifest_cap, MODEL_DATA_ALIGN);
    uint64_t off = data_offset, total = 0;
    for (int i = 0; i < n_all; i++) {
        tensors[i].offset = off;
        off = align_up(off + tensors[i].nbytes, MODEL_TENSOR_ALIGN);
        total += tensors[i].nbytes;
    }
    uint64_t file_size = off;

    snprintf(tmp_path, strlen(path) + 16, "%s.partial", path);
    fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        st = stf_fail(err, STF_ERR_IO, "%s: cannot create: %s", tmp_path, strerror(errno));
        goto fail;
    }
    if (ftruncate(fd, (off_t)file_size) != 0) {
        st = stf_fail(err, STF_ERR_IO, "%s: cannot size to %llu bytes: %s", tmp_path,
                      (unsigned long long)file_size, strerror(errno));
        goto fail;
    }
    uint64_t done = 0;
    for (int i = 0; i < n_all; i++) {
        Sparsetf__Model__Tensor *t = &tensors[i];
        uint32_t crc = 0;
        if (i == n) { /* the tokenizer blob */
            crc = crc32c_update(0, opts->tokenizer, opts->tokenizer_len);
            st = write_all(fd, opts->tokenizer, opts->tokenizer_len, t->offset, tmp_path, err);
            if (st) goto fail;
            done += t->nbytes;
        } else if (descs[i].dtype == STF_DTYPE_Q8_0) {
            st = write_q8(fd, tmp_path, opts, &descs[i], t->offset, &crc, &done, total, err);
            if (st) {
                stf_wrap(err, "%s: tensor %s", path, descs[i].name);
                goto fail;
            }
        } else {
            uint64_t elems = tensor_desc_elements(&descs[i]);
            for (uint64_t s = 0; s < elems; s += WRITE_CHUNK_ELEMS) {
                uint64_t cnt = elems - s < WRITE_CHUNK_ELEMS ? elems - s : WRITE_CHUNK_ELEMS;
                st = opts->fill(opts->fill_ctx, &descs[i], chunk, s, cnt, err);
                if (st) {
                    stf_wrap(err, "%s: tensor %s", path, descs[i].name);
                    goto fail;
                }
                crc = crc32c_update(crc, chunk, cnt * sizeof(float));
                st = write_all(fd, chunk, cnt * sizeof(float), t->offset + s * sizeof(float),
                               tmp_path, err);
                if (st) goto fail;
                done += cnt * sizeof(float);
                if (opts->progress) opts->progress(opts->progress_ctx, done, total);
            }
        }
        t->crc32c = crc;
    }
    size_t manifest_size = sparsetf__model__manifest__get_packed_size(&man);
    manifest_buf = malloc(manifest_cap);
    if (!manifest_buf) {
        st = stf_fail(err, STF_ERR_NOMEM, "%s: out of memory packing the manifest", path);
        goto fail;
    }
    if (manifest_size > manifest_cap ||
        sparsetf__model__manifest__pack(&man, manifest_buf) != manifest_size) {
        st = stf_fail(err, STF_ERR_FORMAT, "%s: manifest size changed while packing", path);
        goto fail;
    }
    struct model_file_header h = {.version = MODEL_FILE_VERSION,
                                  .header_size = MODEL_HEADER_SIZE,
                                  .manifest_offset = MODEL_HEADER_SIZE,
                                  .manifest_size = manifest_size,
                                  .data_offset = data_offset,
                                  .file_size = file_size,
                                  .manifest_crc32c = crc32c_update(0, manifest_buf, manifest_size)};
    memcpy(h.magic, MODEL_FILE_MAGIC, 8);
    unsigned char hbuf[MODEL_HEADER_SIZE];
    header_encode(&h, hbuf);
    if ((st = write_all(fd, manifest_buf, manifest_size, MODEL_HEADER_SIZE, tmp_path, err)) ||
        (st = write_all(fd, hbuf, sizeof hbuf, 0, tmp_path, err)))
        goto fail;
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        st = stf_fail(err, STF_ERR_IO, "%s: cannot flush: %s", tmp_path, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp_path, path) != 0) {
        st = stf_fail(err, STF_ERR_IO, "%s: cannot rename from %s: %s", path, tmp_path,
                      strerror(errno));
        goto fail;
    }
    st = STF_OK;
fail:
    if (fd >= 0) {
        close(fd);
        unlink(tmp_path);
    }
    free(manifest_buf);
    free(tmp_path);
    stf_free(chunk);
    free(shapes);
    free(tensor_ptrs);
    free(tensors);
    free(descs);
    return st;
}

/* ---- reading ---- */

static enum stf_status read_all(int fd, void *buf, size_t len, uint64_t offset, const char *path,
                                const char *what, struct stf_error *err)
{
    char *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return stf_fail(err, STF_ERR_IO, "%s: cannot read %s at byte %llu: %s", path, what,
                            (unsigned long long)offset, n < 0 ? strerror(errno) : "end of file");
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return STF_OK;
}

/* Reads and checks the header and manifest; *man_out must be freed with
 * sparsetf__model__manifest__free_unpacked. */
static enum stf_status read_manifest(int fd, const char *path, struct model_file_header *hdr,
                                     Sparsetf__Model__Manifest **man_out, struct model_config *cfg,
                                     struct stf_error *err)
{
    *man_out = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return stf_fail(err, STF_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    uint64_t size = (uint64_t)sb.st_size;
    if (size < MODEL_HEADER_SIZE)
        return stf_fail(err, STF_ERR_FORMAT,
                        "%s: not a sparsetf model file: only %llu bytes, a header needs %u", path,
                        (unsigned long long)size, MODEL_HEADER_SIZE);
    unsigned char hbuf[MODEL_HEADER_SIZE];
    enum stf_status st = read_all(fd, hbuf, sizeof hbuf, 0, path, "the header", err);
    if (st) return st;
    struct model_file_header h;
    header_decode(hbuf, &h);
    if (memcmp(h.magic, MODEL_FILE_MAGIC, 8) != 0)
        return stf_fail(err, STF_ERR_FORMAT,
                        "%s: not a sparsetf model file (magic bytes are not \"%s\")", path,
                        MODEL_FILE_MAGIC);
    if (h.version != MODEL_FILE_VERSION)
        return stf_fail(err, STF_ERR_UNSUPPORTED,
                        "%s: file format version %u, this build reads version %u", path, h.version,
                        MODEL_FILE_VERSION);
    if (h.header_size != MODEL_HEADER_SIZE || h.manifest_offset != MODEL_HEADER_SIZE)
        return stf_fail(err, STF_ERR_FORMAT,
                        "%s: header: header_size %u / manifest_offset %llu, expected 64", path,
                        h.header_size, (unsigned long long)h.manifest_offset);
    if (h.file_size != size)
        return stf_fail(err, STF_ERR_FORMAT,
                        "%s: file is %s: header says %llu bytes, the file has %llu", path,
                        size < h.file_size ? "truncated" : "longer than its header says",
                        (unsigned long long)h.file_size, (unsigned long long)size);
    if (h.manifest_size == 0 || h.manifest_size > size - MODEL_HEADER_SIZE ||
        h.manifest_size > (1ull << 30))
        return stf_fail(err, STF_ERR_FORMAT, "%s: header: manifest_size %llu is out of bounds",
                        path, (unsigned long long)h.manifest_size);
    /* the data section starts after the manifest, at a page boundary, inside the file */
    if (h.data_offset < MODEL_HEADER_SIZE + h.manifest_size || h.data_offset > size ||
        h.data_offset % MODEL_DATA_ALIGN != 0)
        return stf_fail(err, STF_ERR_FORMAT,
                        "%s: header: data_offset %llu must be a multiple of %u between the end "
                        "of the manifest (%llu) and the end of the file (%llu)",
                        path, (unsigned long long)h.data_offset, MODEL_DATA_ALIGN,
                        (unsigned long long)(MODEL_HEADER_SIZE + h.manifest_size),
                        (unsigned long long)size);
    if (h.reserved[0] || h.reserved[1] || h.reserved[2])
        return stf_fail(err, STF_ERR_FORMAT,
                        "%s: header: reserved bytes 52..63 are not zero (a newer format, or a "
                        "damaged file)",
                        path);
    unsigned char *mbuf = malloc(h.manifest_size);
    if (!mbuf) return stf_fail(err, STF_ERR_NOMEM, "%s: cannot allocate the manifest", path);
    st = read_all(fd, mbuf, h.manifest_size, MODEL_HEADER_SIZE, path, "the manifest", err);
    if (st) {
        free(mbuf);
        return st;
    }
    if (crc32c_update(0, mbuf, h.manifest_size) != h.manifest_crc32c) {
        free(mbuf);
        return stf_fail(err, STF_ERR_CHECKSUM, "%s: manifest checksum mismatch (corrupt file)",
                        path);
    }
    Sparsetf__Model__Manifest *man = sparsetf__model__manifest__unpack(NULL, h.manifest_size, mbuf);
    free(mbuf);
    if (!man)
        return stf_fail(err, STF_ERR_FORMAT, "%s: manifest is not a valid protobuf Manifest", path);
    if (man->format_version != MODEL_FILE_VERSION || !man->config) {
        /* the message is built before the manifest it quotes is freed */
        if (man->format_version != MODEL_FILE_VERSION)
            st = stf_fail(err, STF_ERR_UNSUPPORTED,
                          "%s: manifest: format_version %u, this build reads version %u", path,
                          man->format_version, MODEL_FILE_VERSION);
        else
            st = stf_fail(err, STF_ERR_FORMAT, "%s: manifest: the config is missing", path);
        sparsetf__model__manifest__free_unpacked(man, NULL);
        return st;
    }
    config_from_proto(man->config, cfg);
    st = model_config_validate(cfg, err);
    if (st) {
        sparsetf__model__manifest__free_unpacked(man, NULL);
        return stf_wrap(err, "%s", path);
    }
    config_clear_unused(cfg);
    *hdr = h;
    *man_out = man;
    return STF_OK;
}

enum stf_status model_read_config(const char *path, struct model_config *cfg, struct stf_error *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return stf_fail(err, STF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    Sparsetf__Model__Manifest *man = NULL;
    struct model_file_header h;
    enum stf_status st = read_manifest(fd, path, &h, &man, cfg, err);
    if (man) sparsetf__model__manifest__free_unpacked(man, NULL);
    close(fd);
    return st;
}

static int cmp_desc_name(const void *a, const void *b)
{
    return strcmp(((const struct tensor_desc *)a)->name, ((const struct tensor_desc *)b)->name);
}

static bool group_selected(const struct tensor_desc *t, const struct model_select *sel)
{
    switch (t->group) {
    case GROUP_EMBED:
        return sel->embed;
    case GROUP_HEAD:
        return sel->head;
    case GROUP_LAYER:
        return (uint32_t)t->layer >= sel->layer_begin && (uint32_t)t->layer < sel->layer_end;
    }
    return false;
}

struct map_request {
    uint64_t offset, nbytes;
    struct tensor_view *slot; /* tensor view to bind, or NULL for the tokenizer */
    enum stf_dtype dtype;
    const char *name;
    uint32_t crc;
    /* a tensor-parallel rank's rows: the mapped bytes start at row first_row; the whole
     * tensor (for the checksum) is bytes whole_offset.. of whole_nbytes */
    uint64_t first_row, whole_offset, whole_nbytes;
};

/* CRC-32C of a tensor of which only some rows are mapped: through a mapping of its own,
 * dropped again so the rest of the tensor does not stay resident in this process. */
static enum stf_status crc_whole(int fd, const char *path, const struct map_request *r,
                                 uint32_t *crc, struct stf_error *err)
{
    struct file_map fm;
    enum stf_status st = file_map_open(&fm, fd, path, r->whole_offset, r->whole_nbytes, err);
    if (st) return st;
    *crc = crc32c_update(0, fm.data, r->whole_nbytes);
    file_map_close(&fm);
    return STF_OK;
}

static int cmp_request_offset(const void *a, const void *b)
{
    uint64_t x = ((const struct map_request *)a)->offset,
             y = ((const struct map_request *)b)->offset;
    return (x > y) - (x < y);
}

/* Every tensor's bytes, selected or not, for the overlap check. */
struct tensor_span {
    uint64_t offset, nbytes;
    const char *name; /* borrowed from the manifest */
};

static int cmp_span_offset(const void *a, const void *b)
{
    uint64_t x = ((const struct tensor_span *)a)->offset,
             y = ((const struct tensor_span *)b)->offset;
    return (x > y) - (x < y);
}

/* No two tensors share a byte (a damaged or crafted table could make one tensor's weights
 * another's, or a write through one view show in another). spans are sorted here. */
static enum stf_status check_no_overlap(struct tensor_span *spans, size_t n, const char *path,
                                        struct stf_error *err)
{
    qsort(spans, n, sizeof *spans, cmp_span_offset);
    for (size_t i = 0; i + 1 < n; i++)
        if (spans[i].offset + spans[i].nbytes > spans[i + 1].offset)
            return stf_fail(err, STF_ERR_FORMAT,
                            "%s: tensors %s (bytes %llu..%llu) and %s (from byte %llu) overlap",
                            path, spans[i].name, (unsigned long long)spans[i].offset,
                            (unsigned long long)(spans[i].offset + spans[i].nbytes),
                            spans[i + 1].name, (unsigned long long)spans[i + 1].offset);
    return STF_OK;
}

enum stf_status model_open(const char *path, const struct model_select *sel_in, unsigned flags,
                           struct model **out, struct stf_error *err)
{
    *out = NULL;
    struct model *m = calloc(1, sizeof *m);
    if (!m) return stf_fail(err, STF_ERR_NOMEM, "%s: out of memory", path);
    m->fd = -1;
    struct tensor_desc *descs = NULL;
    struct map_request *reqs = NULL;
    struct tensor_span *spans = NULL;
    bool *seen = NULL;
    Sparsetf__Model__Manifest *man = NULL;
    enum stf_status st;

    m->path = strdup(path);
    m->fd = open(path, O_RDONLY);
    if (!m->path || m->fd < 0) {
        st = stf_fail(err, STF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct model_file_header hdr;
    st = read_manifest(m->fd, path, &hdr, &man, &m->cfg, err);
    if (st) goto fail;
    m->file_size = hdr.file_size;
    m->manifest_crc32c = hdr.manifest_crc32c;
    if ((st = layer_kinds_pick(&m->cfg, &m->kinds, err))) goto fail; /* validated: cannot fail */
    const struct model_config *c = &m->cfg;
    snprintf(m->name, sizeof m->name, "%s", man->name ? man->name : "");
    snprintf(m->generator, sizeof m->generator, "%s", man->generator ? man->generator : "");
    if (sel_in) {
        m->sel = *sel_in;
        if (m->sel.layer_begin > m->sel.layer_end || m->sel.layer_end > c->n_layers) {
            st = stf_fail(err, STF_ERR_ARG,
                          "%s: layer range %u..%u is outside the model's %u layers", path,
                          m->sel.layer_begin, m->sel.layer_end, c->n_layers);
            goto fail;
        }
    } else {
        m->sel = (struct model_select){
            .layer_begin = 0, .layer_end = c->n_layers, .embed = true, .head = true};
    }

    /* Every allocation below is sized by the validated config (n_layers <= 4096), never by
     * a count read from the file: the manifest may list at most the config's tensors and a
     * tokenizer. */
    int n = model_tensor_list(c, NULL, NULL, 0);
    if (man->n_tensors > (size_t)n + 1) {
        st = stf_fail(err, STF_ERR_FORMAT,
                      "%s: manifest lists %zu tensors, the config has %d (and a tokenizer)", path,
                      man->n_tensors, n);
        goto fail;
    }
    m->w.layers = calloc(c->n_layers, sizeof *m->w.layers);
    descs = calloc((size_t)n, sizeof *descs);
    seen = calloc((size_t)n, sizeof *seen);
    reqs = calloc((size_t)n + 1, sizeof *reqs);
    spans = calloc((size_t)n + 1, sizeof *spans);
    if (!m->w.layers || !descs || !seen || !reqs || !spans) {
        st = stf_fail(err, STF_ERR_NOMEM, "%s: out of memory for the tensor table", path);
        goto fail;
    }
    model_tensor_list(c, &m->w, descs, n);
    qsort(descs, (size_t)n, sizeof *descs, cmp_desc_name);

    int n_req = 0;
    bool have_tokenizer = false;
    for (size_t i = 0; i < man->n_tensors; i++) {
        const Sparsetf__Model__Tensor *t = man->tensors[i];
        const char *tname = t->name ? t->name : "";
        if (t->offset % MODEL_TENSOR_ALIGN != 0 || t->offset < hdr.data_offset ||
            t->nbytes > m->file_size || t->offset > m->file_size - t->nbytes) {
            st = stf_fail(err, STF_ERR_FORMAT,
                          "%s: tensor %s: bytes %llu..%llu are out of bounds or misaligned (the "
                          "data section is bytes %llu..%llu, alignment %u)",
                          path, tname, (unsigned long long)t->offset,
                          (unsigned long long)(t->offset + t->nbytes),
                          (unsigned long long)hdr.data_offset, (unsigned long long)m->file_size,
                          MODEL_TENSOR_ALIGN);
            goto fail;
        }
        spans[i] = (struct tensor_span){t->offset, t->nbytes, tname};
        if (strcmp(tname, MODEL_TOKENIZER_TENSOR) == 0) {
            enum stf_dtype tok_dtype;
            if (!dtype_from_proto(t->dtype, &tok_dtype) || tok_dtype != STF_DTYPE_U8 ||
                have_tokenizer || t->n_shape != 1 || t->shape[0] != t->nbytes) {
                st = stf_fail(err, STF_ERR_FORMAT,
                              "%s: tensor %s: must appear once, with dtype u8 and shape (nbytes)",
                              path, tname);
                goto fail;
            }
            have_tokenizer = true;
            if (m->sel.embed)
                reqs[n_req++] = (struct map_request){.offset = t->offset,
                                                     .nbytes = t->nbytes,
                                                     .dtype = STF_DTYPE_U8,
                                                     .name = tname,
                                                     .crc = t->crc32c,
                                                     .whole_offset = t->offset,
                                                     .whole_nbytes = t->nbytes};
            continue;
        }
        struct tensor_desc key;
        snprintf(key.name, sizeof key.name, "%s", tname);
        struct tensor_desc *d = strlen(tname) < sizeof key.name
                                    ? bsearch(&key, descs, (size_t)n, sizeof *descs, cmp_desc_name)
                                    : NULL;
        if (!d) {
            st = stf_fail(err, STF_ERR_FORMAT,
                          "%s: tensor %s is not part of this config (ff/attn/out/sru settings)",
                          path, tname);
            goto fail;
        }
        size_t di = (size_t)(d - descs);
        if (seen[di]) {
            st = stf_fail(err, STF_ERR_FORMAT, "%s: tensor %s appears twice", path, tname);
            goto fail;
        }
        seen[di] = true;
        enum stf_dtype dtype;
        bool known = dtype_from_proto(t->dtype, &dtype);
        if (!known || dtype != d->dtype) {
            st = stf_fail(err, STF_ERR_UNSUPPORTED, "%s: tensor %s: dtype %d%s%s%s, expected %s",
                          path, tname, (int)t->dtype, known ? " (" : "",
                          known ? stf_dtype_name(dtype) : "", known ? ")" : "",
                          stf_dtype_name(d->dtype));
            goto fail;
        }
        bool shape_ok = t->n_shape == (size_t)d->rank;
        for (int k = 0; shape_ok && k < d->rank; k++)
            shape_ok = t->shape[k] == d->shape[k];
        if (!shape_ok) {
            char got[96] = "", want[96] = "";
            for (size_t k = 0; k < t->n_shape && k < 4; k++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", k ? ", " : "",
                         (unsigned long long)t->shape[k]);
            for (int k = 0; k < d->rank; k++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%llu", k ? ", " : "",
                         (unsigned long long)d->shape[k]);
            st = stf_fail(err, STF_ERR_FORMAT,
                          "%s: tensor %s: shape (%s) does not match the config, expected (%s)",
                          path, tname, got, want);
            goto fail;
        }
        if (t->nbytes != tensor_desc_bytes(d)) {
            st = stf_fail(err, STF_ERR_FORMAT, "%s: tensor %s: nbytes %llu, expected %llu", path,
                          tname, (unsigned long long)t->nbytes,
                          (unsigned long long)tensor_desc_bytes(d));
            goto fail;
        }
        if (group_selected(d, &m->sel)) {
            struct map_request *r = &reqs[n_req++];
            *r = (struct map_request){t->offset, t->nbytes, d->slot,   dtype,    tname,
                                      t->crc32c, 0,         t->offset, t->nbytes};
            uint64_t first, count;
            if (d->group == GROUP_LAYER && m->sel.tp_size > 1 && d->tp_units) {
                model_tp_rows(d, m->sel.tp_size, m->sel.tp_rank, &first, &count);
                uint64_t row_bytes = t->nbytes / d->shape[0];
                r->first_row = first;
                r->offset += first * row_bytes;
                r->nbytes = count * row_bytes;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (!seen[i]) {
            st = stf_fail(err, STF_ERR_FORMAT, "%s: tensor %s is missing", path, descs[i].name);
            goto fail;
        }
    }
    if ((st = check_no_overlap(spans, man->n_tensors, path, err))) goto fail;
    /* What this process will map and read every token must fit in its memory. */
    uint64_t want = 0, limit = stf_memory_limit();
    for (int i = 0; i < n_req; i++)
        want += reqs[i].nbytes;
    if (want > limit) {
        st = stf_fail(err, STF_ERR_NOMEM,
                      "%s: the tensors this process needs are %.3g GB, more than the %.3g GB of "
                      "memory it may use (run more pipeline ranks, on more machines)",
                      path, (double)want / 1e9, (double)limit / 1e9);
        goto fail;
    }

    /* Map the selected tensors, merging neighbours into one mapping per contiguous run. */
    qsort(reqs, (size_t)n_req, sizeof *reqs, cmp_request_offset);
    m->maps = calloc((size_t)n_req + 1, sizeof *m->maps);
    if (!m->maps) {
        st = stf_fail(err, STF_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int i = 0; i < n_req;) {
        int j = i + 1;
        uint64_t end = reqs[i].offset + reqs[i].nbytes;
        while (j < n_req && reqs[j].offset <= end + MAP_MERGE_GAP) {
            if (reqs[j].offset + reqs[j].nbytes > end) end = reqs[j].offset + reqs[j].nbytes;
            j++;
        }
        struct file_map *fm = &m->maps[m->n_maps];
        st = file_map_open(fm, m->fd, path, reqs[i].offset, end - reqs[i].offset, err);
        if (st) goto fail;
        m->n_maps++;
        for (int k = i; k < j; k++) {
            const unsigned char *p = fm->data + (reqs[k].offset - reqs[i].offset);
            if (flags & MODEL_OPEN_VERIFY) {
                uint32_t crc = 0;
                if (reqs[k].nbytes == reqs[k].whole_nbytes)
                    crc = crc32c_update(0, p, reqs[k].nbytes);
                else if ((st = crc_whole(m->fd, path, &reqs[k], &crc, err)))
                    goto fail;
                if (crc != reqs[k].crc) {
                    st = stf_fail(err, STF_ERR_CHECKSUM,
                                  "%s: tensor %s: checksum mismatch (stored %08x, computed %08x)",
                                  path, reqs[k].name, reqs[k].crc, crc);
                    goto fail;
                }
            }
            if (reqs[k].dtype == STF_DTYPE_Q8_0) { /* every block's scale finite, >= 0 */
                const struct q8_block *blk = (const struct q8_block *)p;
                uint64_t nblk = reqs[k].nbytes / STF_Q8_BLOCK_BYTES;
                for (uint64_t b0 = 0; b0 < nblk; b0 += 1u << 20) {
                    uint64_t cnt = nblk - b0 < (1u << 20) ? nblk - b0 : (1u << 20);
                    int64_t bad = q8_check_row(blk + b0, (uint32_t)(cnt * STF_Q8_BLOCK));
                    if (bad >= 0) {
                        st = stf_fail(err, STF_ERR_FORMAT,
                                      "%s: tensor %s: q8 block %llu has scale %g (must be finite "
                                      "and not negative)",
                                      path, reqs[k].name, (unsigned long long)(b0 + (uint64_t)bad),
                                      (double)q8_half_to_float(blk[b0 + (uint64_t)bad].d));
                        goto fail;
                    }
                }
            }
            if (reqs[k].slot) {
                *reqs[k].slot =
                    (struct tensor_view){p, reqs[k].dtype, reqs[k].nbytes, reqs[k].first_row};
            } else {
                m->tokenizer = p;
                m->tokenizer_len = reqs[k].nbytes;
            }
            m->mapped_bytes += reqs[k].nbytes;
        }
        i = j;
    }
    free(descs);
    free(seen);
    free(reqs);
    free(spans);
    sparsetf__model__manifest__free_unpacked(man, NULL);
    *out = m;
    return STF_OK;
fail:
    free(descs);
    free(seen);
    free(reqs);
    free(spans);
    if (man) sparsetf__model__manifest__free_unpacked(man, NULL);
    model_close(m);
    return st;
}

void model_close(struct model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_maps; i++)
        file_map_close(&m->maps[i]);
    free(m->maps);
    if (m->fd >= 0) close(m->fd);
    free(m->w.layers);
    free(m->path);
    free(m);
}
