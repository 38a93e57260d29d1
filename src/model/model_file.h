/*
 * model_file: the sparsetf model file (docs/file-format.md) — writing it as a stream and
 * opening it as a memory map whose tensors become the views of struct model_weights.
 *
 * Layout: a 64-byte little-endian header, a protobuf Manifest (proto/model.proto: config
 * and tensor table), then each tensor's raw little-endian bytes at a 64-byte aligned offset.
 * This module is the only user of the generated model.pb-c code.
 */
#ifndef STF_MODEL_MODEL_FILE_H
#define STF_MODEL_MODEL_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/config.h"
#include "model/layer_kinds.h"
#include "model/weights.h"
#include "util/mem.h"
#include "util/status.h"

#define MODEL_FILE_MAGIC   "SPARSETF" /* 8 bytes, no terminator in the file */
#define MODEL_FILE_VERSION 1u
#define MODEL_HEADER_SIZE  64u
#define MODEL_TENSOR_ALIGN 64u
#define MODEL_DATA_ALIGN   4096u /* data_offset: a page */

/* The fixed header at byte 0 (all integers little-endian). */
struct model_file_header {
    char magic[8];            /* "SPARSETF" */
    uint32_t version;         /* MODEL_FILE_VERSION */
    uint32_t header_size;     /* 64 */
    uint64_t manifest_offset; /* 64 */
    uint64_t manifest_size;
    uint64_t data_offset; /* first tensor byte, page aligned */
    uint64_t file_size;   /* total bytes, to detect truncation */
    uint32_t manifest_crc32c;
    uint32_t reserved[3]; /* zero; a reader rejects anything else */
};
_Static_assert(sizeof(struct model_file_header) == MODEL_HEADER_SIZE, "header is 64 bytes");

/* Which parts of a model a process maps (a pipeline stage maps only its own layers). */
struct model_select {
    uint32_t layer_begin, layer_end; /* half-open range of layers */
    bool embed;                      /* embedding, positions and tokenizer */
    bool head;                       /* final norm and output layer */
    /* tensor parallelism (model/tp.h): with tp_size > 1, a layer tensor that T ranks split
     * (tensor_desc.tp_units) is mapped only in the rows of rank tp_rank (its views then
     * start at tensor_view.first_row); 0 or 1: every tensor whole */
    uint32_t tp_size, tp_rank;
};

#define MODEL_OPEN_VERIFY 1u /* check every mapped tensor's CRC-32C */

struct model {
    char *path;
    struct model_config cfg;
    struct layer_kinds kinds; /* the config's sub-layer kinds, picked at open */
    struct model_weights w;
    struct model_select sel;
    char name[128];
    char generator[256];
    const unsigned char *tokenizer; /* embedded SentencePiece model bytes, or NULL */
    size_t tokenizer_len;
    uint64_t mapped_bytes; /* bytes of tensors this process mapped */
    uint64_t file_size;
    uint32_t manifest_crc32c; /* with file_size, what identifies the model (a journal's check) */
    int fd;
    struct file_map *maps;
    int n_maps;
};

/* Opens path and maps the tensors of sel (NULL = the whole model). Every error names the
 * file and, where it applies, the tensor and field. */
enum stf_status model_open(const char *path, const struct model_select *sel, unsigned flags,
                           struct model **out, struct stf_error *err);
void model_close(struct model *m);

/* Reads only the header and manifest: the config (for planning without mapping). */
enum stf_status model_read_config(const char *path, struct model_config *cfg,
                                  struct stf_error *err);

/* Fills count elements starting at element `start` of tensor t (an f32 tensor). */
typedef enum stf_status (*model_fill_fn)(void *ctx, const struct tensor_desc *t, float *buf,
                                         uint64_t start, uint64_t count, struct stf_error *err);
/* Called after each chunk with bytes written so far and the total. */
typedef void (*model_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct model_write_opts {
    const char *name;
    const char *generator;
    const void *tokenizer; /* optional SentencePiece .model bytes */
    size_t tokenizer_len;
    model_fill_fn fill;
    void *fill_ctx;
    model_progress_fn progress;
    void *progress_ctx;
};

/* Streams a model to path (never holding more than one chunk in memory), writing to a
 * temporary name and renaming at the end so that a failed write leaves no partial file. */
enum stf_status model_write(const char *path, const struct model_config *cfg,
                            const struct model_write_opts *opts, struct stf_error *err);

#endif
