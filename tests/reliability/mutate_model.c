/*
 * mutate_model: writes a damaged copy of a model file, for the mutation campaign
 * (tests/reliability/mutation_campaign.py, docs/reliability.md).
 *
 *   mutate_model SRC DST SEED
 *
 * The seed picks one mutation of one part, and the program prints one line saying what
 * it did: `<class> <detail>`, where class is
 *   header    a header field set to an edge value (checksums left as they were)
 *   config    a config field of the manifest (manifest re-packed, checksum fixed)
 *   table     a tensor table entry: offset, nbytes, shape, dtype, name, crc, count
 *   data      tensor bytes: NaN, Inf, huge or random values, flipped bits (CRCs stale)
 *   bytes     the file cut, extended, or random bytes overwritten anywhere
 * Mutations of the manifest keep it before data_offset; one that does not fit is reported
 * as `skip`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.pb-c.h"
#include "util/crc32c.h"
#include "util/le.h"

static uint64_t state;

static uint64_t next(void) /* splitmix64 */
{
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t pick(uint64_t n)
{
    return n ? next() % n : 0;
}

/* Edge values around a field's current value. */
static uint64_t edge_u64(uint64_t cur)
{
    static const uint64_t fixed[] = {0,
                                     1,
                                     2,
                                     63,
                                     64,
                                     65,
                                     4095,
                                     4096,
                                     1ull << 31,
                                     1ull << 32,
                                     (1ull << 32) - 1,
                                     1ull << 63,
                                     UINT64_MAX,
                                     UINT64_MAX - 63};
    switch (pick(4)) {
    case 0:
        return fixed[pick(sizeof fixed / sizeof fixed[0])];
    case 1:
        return cur + 1 + pick(64);
    case 2:
        return cur - 1 - pick(cur ? cur : 1);
    default:
        return next();
    }
}

static uint32_t edge_u32(uint32_t cur)
{
    static const uint32_t fixed[] = {0,
                                     1,
                                     2,
                                     3,
                                     4,
                                     7,
                                     8,
                                     16,
                                     64,
                                     1000,
                                     65536,
                                     1u << 20,
                                     (1u << 20) + 1,
                                     0x7fffffffu,
                                     0x80000000u,
                                     0xffffffffu};
    switch (pick(4)) {
    case 0:
        return fixed[pick(sizeof fixed / sizeof fixed[0])];
    case 1:
        return cur * (uint32_t)(2 + pick(1000));
    case 2:
        return cur ? cur - 1 - (uint32_t)pick(cur) : 1;
    default:
        return (uint32_t)next();
    }
}

static unsigned char *file;
static size_t size;

static int write_out(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(file, 1, size, f) != size || fclose(f) != 0) {
        fprintf(stderr, "mutate_model: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

/* Re-packs man into the file (header manifest_size and checksum fixed); 0 if it fits. */
static int repack(Sparsetf__Model__Manifest *man)
{
    size_t n = sparsetf__model__manifest__get_packed_size(man);
    uint64_t doff = le_get_u64(file + 32);
    if (64 + n > doff || 64 + n > size) return -1;
    memset(file + 64, 0, (size_t)(doff < size ? doff : size) - 64);
    sparsetf__model__manifest__pack(man, file + 64);
    le_put_u64(file + 24, n);
    le_put_u32(file + 48, crc32c_update(0, file + 64, n));
    return 0;
}

static void mutate_header(char *what, size_t wn)
{
    static const struct {
        const char *name;
        int at, width;
    } fields[] = {{"magic", 0, 8},          {"version", 8, 4},
                  {"header_size", 12, 4},   {"manifest_offset", 16, 8},
                  {"manifest_size", 24, 8}, {"data_offset", 32, 8},
                  {"file_size", 40, 8},     {"manifest_crc32c", 48, 4},
                  {"reserved", 52, 12}};
    int f = (int)pick(sizeof fields / sizeof fields[0]);
    int at = fields[f].at;
    if (fields[f].width == 8 && f != 0) {
        uint64_t v = edge_u64(le_get_u64(file + at));
        le_put_u64(file + at, v);
        snprintf(what, wn, "header %s=%llu", fields[f].name, (unsigned long long)v);
    } else if (fields[f].width == 4) {
        uint32_t cur = (uint32_t)le_get_u64(file + at) & 0xffffffffu;
        uint32_t v = edge_u32(cur);
        le_put_u32(file + at, v);
        snprintf(what, wn, "header %s=%u", fields[f].name, v);
    } else {
        int k = at + (int)pick((uint64_t)fields[f].width);
        file[k] ^= (unsigned char)(1 + pick(255));
        snprintf(what, wn, "header %s byte %d", fields[f].name, k);
    }
}

static void mutate_config(Sparsetf__Model__Manifest *man, char *what, size_t wn)
{
    Sparsetf__Model__Config *c = man->config;
    struct {
        const char *name;
        uint32_t *field;
    } fields[] = {
        {"arch", (uint32_t *)&c->arch},
        {"d_model", &c->d_model},
        {"n_heads", &c->n_heads},
        {"n_layers", &c->n_layers},
        {"d_ff", &c->d_ff},
        {"vocab_size", &c->vocab_size},
        {"max_seq_len", &c->max_seq_len},
        {"ff", (uint32_t *)&c->ff},
        {"ff_block", &c->ff_block},
        {"ff_rank", &c->ff_rank},
        {"attn", (uint32_t *)&c->attn},
        {"qkv_modules", &c->qkv_modules},
        {"out", (uint32_t *)&c->out},
        {"out_modules", &c->out_modules},
        {"sru_units", &c->sru_units},
        {"bos_id", &c->bos_id},
        {"eos_id", &c->eos_id},
        {"format_version", &man->format_version},
    };
    int f = (int)pick(sizeof fields / sizeof fields[0]);
    uint32_t v = edge_u32(*fields[f].field);
    *fields[f].field = v;
    snprintf(what, wn, "config %s=%u", fields[f].name, v);
}

static void mutate_table(Sparsetf__Model__Manifest *man, char *what, size_t wn)
{
    if (!man->n_tensors) {
        snprintf(what, wn, "table none");
        return;
    }
    Sparsetf__Model__Tensor *t = man->tensors[pick(man->n_tensors)];
    Sparsetf__Model__Tensor *o = man->tensors[pick(man->n_tensors)];
    switch (pick(9)) {
    case 0:
        t->offset = edge_u64(t->offset);
        snprintf(what, wn, "table %s offset=%llu", t->name, (unsigned long long)t->offset);
        break;
    case 1:
        t->offset = o->offset + 64 * pick(4); /* onto or into another tensor */
        snprintf(what, wn, "table %s offset=%s+%llu", t->name, o->name,
                 (unsigned long long)(t->offset - o->offset));
        break;
    case 2:
        t->nbytes = edge_u64(t->nbytes);
        snprintf(what, wn, "table %s nbytes=%llu", t->name, (unsigned long long)t->nbytes);
        break;
    case 3:
        if (t->n_shape) {
            size_t k = pick(t->n_shape);
            t->shape[k] = edge_u64(t->shape[k]) & (pick(2) ? 0xffffull : UINT64_MAX);
            snprintf(what, wn, "table %s shape[%zu]=%llu", t->name, k,
                     (unsigned long long)t->shape[k]);
        } else {
            snprintf(what, wn, "table %s (no shape)", t->name);
        }
        break;
    case 4:
        t->n_shape = pick(5) < t->n_shape ? pick(t->n_shape + 1) : t->n_shape;
        snprintf(what, wn, "table %s rank=%zu", t->name, t->n_shape);
        break;
    case 5:
        t->dtype = (Sparsetf__Model__DType)pick(8);
        snprintf(what, wn, "table %s dtype=%d", t->name, (int)t->dtype);
        break;
    case 6: {
        /* swap two tensors' places, not their checksums (same shape: a mix-up that only
         * --verify can see) */
        uint64_t a = t->offset;
        t->offset = o->offset;
        o->offset = a;
        snprintf(what, wn, "table swap %s<->%s", t->name, o->name);
        break;
    }
    case 7:
        t->crc32c ^= 1u << pick(32);
        snprintf(what, wn, "table %s crc32c", t->name);
        break;
    default:
        if (t->name && t->name[0]) {
            size_t len = strlen(t->name);
            t->name[pick(len)] = (char)(32 + pick(95));
            snprintf(what, wn, "table name %s", t->name);
        }
        break;
    }
}

static void mutate_data(Sparsetf__Model__Manifest *man, char *what, size_t wn)
{
    Sparsetf__Model__Tensor *t = man->tensors[pick(man->n_tensors)];
    if (t->nbytes < 4 || t->offset > size || t->nbytes > size - t->offset) {
        snprintf(what, wn, "data %s (empty)", t->name);
        return;
    }
    uint64_t n = t->nbytes / 4;
    static const char *const kinds[] = {"nan",         "inf",      "-inf",    "huge",
                                        "random-bits", "flip-bit", "all-nan", "denormal"};
    int k = (int)pick(sizeof kinds / sizeof kinds[0]);
    uint64_t count = k == 6 ? n : 1 + pick(n < 8 ? n : 8);
    for (uint64_t i = 0; i < count; i++) {
        uint64_t e = k == 6 ? i : pick(n);
        unsigned char *p = file + t->offset + 4 * e;
        float v;
        memcpy(&v, p, 4);
        switch (k) {
        case 0:
        case 6:
            v = NAN;
            break;
        case 1:
            v = INFINITY;
            break;
        case 2:
            v = -INFINITY;
            break;
        case 3:
            v = pick(2) ? 3e38f : -1e30f;
            break;
        case 4: {
            uint32_t b = (uint32_t)next();
            memcpy(&v, &b, 4);
            break;
        }
        case 5: {
            uint32_t b;
            memcpy(&b, &v, 4);
            b ^= 1u << pick(32);
            memcpy(&v, &b, 4);
            break;
        }
        default:
            v = 1e-40f;
            break;
        }
        memcpy(p, &v, 4);
    }
    snprintf(what, wn, "data %s %s x%llu", t->name, kinds[k], (unsigned long long)count);
}

static void mutate_bytes(char *what, size_t wn)
{
    switch (pick(3)) {
    case 0: {
        size_t cut = (size_t)pick(size);
        size = cut;
        snprintf(what, wn, "bytes truncate=%zu", cut);
        break;
    }
    case 1: {
        size_t more = 1 + (size_t)pick(8192);
        unsigned char *grown = realloc(file, size + more);
        if (!grown) exit(1);
        file = grown;
        memset(file + size, (int)pick(256), more);
        size += more;
        snprintf(what, wn, "bytes extend=%zu", more);
        break;
    }
    default: {
        int n = 1 + (int)pick(16);
        uint64_t doff = le_get_u64(file + 32);
        /* half of the time inside the header + manifest, where the parser reads */
        uint64_t span = pick(2) && doff < size ? doff : size;
        for (int i = 0; i < n; i++)
            file[pick(span)] = (unsigned char)next();
        snprintf(what, wn, "bytes overwrite x%d in [0, %llu)", n, (unsigned long long)span);
        break;
    }
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: mutate_model SRC DST SEED\n");
        return 2;
    }
    state = strtoull(argv[3], NULL, 10) * 0x2545f4914f6cdd1dull + 1;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 2;
    fseek(f, 0, SEEK_END);
    size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    file = malloc(size);
    if (!file || fread(file, 1, size, f) != size) return 2;
    fclose(f);
    uint64_t msize = le_get_u64(file + 24);
    Sparsetf__Model__Manifest *man = sparsetf__model__manifest__unpack(NULL, msize, file + 64);
    if (!man) return 2;
    char what[256] = "";
    const char *cls;
    switch (pick(5)) {
    case 0:
        cls = "header";
        mutate_header(what, sizeof what);
        break;
    case 1:
        cls = "config";
        mutate_config(man, what, sizeof what);
        if (repack(man)) cls = "skip";
        break;
    case 2:
        cls = "table";
        mutate_table(man, what, sizeof what);
        if (repack(man)) cls = "skip";
        break;
    case 3:
        cls = "data";
        mutate_data(man, what, sizeof what);
        break;
    default:
        cls = "bytes";
        mutate_bytes(what, sizeof what);
        break;
    }
    sparsetf__model__manifest__free_unpacked(man, NULL);
    printf("%s %s\n", cls, what);
    int rc = write_out(argv[2]);
    free(file);
    return rc;
}
