#include "util/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void *stf_alloc(size_t bytes)
{
    void *p = NULL;
    size_t rounded = (bytes + STF_ALIGN - 1) / STF_ALIGN * STF_ALIGN;
    if (rounded == 0) rounded = STF_ALIGN;
    if (posix_memalign(&p, STF_ALIGN, rounded) != 0) return NULL;
    memset(p, 0, rounded);
    return p;
}

void stf_free(void *p)
{
    free(p);
}

enum stf_status file_map_open(struct file_map *map, int fd, const char *path, uint64_t offset,
                              uint64_t len, struct stf_error *err)
{
    memset(map, 0, sizeof *map);
    if (len == 0) return STF_OK;
    long page = sysconf(_SC_PAGESIZE);
    uint64_t start = offset / (uint64_t)page * (uint64_t)page;
    size_t base_len = (size_t)(offset + len - start);
    void *base = mmap(NULL, base_len, PROT_READ, MAP_SHARED, fd, (off_t)start);
    if (base == MAP_FAILED)
        return stf_fail(err, STF_ERR_IO, "%s: cannot map bytes %llu..%llu: %s", path,
                        (unsigned long long)offset, (unsigned long long)(offset + len),
                        strerror(errno));
    map->base = base;
    map->base_len = base_len;
    map->data = (const unsigned char *)base + (offset - start);
    map->len = (size_t)len;
    return STF_OK;
}

enum stf_status file_map_anon(struct file_map *map, uint64_t len, struct stf_error *err)
{
    memset(map, 0, sizeof *map);
    size_t n = len ? (size_t)len : 1;
    void *base = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return stf_fail(err, STF_ERR_NOMEM, "cannot allocate %llu bytes: %s",
                        (unsigned long long)len, strerror(errno));
    map->base = base;
    map->base_len = n;
    map->data = base;
    map->len = (size_t)len;
    return STF_OK;
}

void file_map_close(struct file_map *map)
{
    if (map->base) munmap(map->base, map->base_len);
    memset(map, 0, sizeof *map);
}

/* A cgroup limit file holds a number of bytes or "max". */
static uint64_t read_limit_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return UINT64_MAX;
    unsigned long long v = 0;
    int ok = fscanf(f, "%llu", &v) == 1;
    fclose(f);
    return ok && v > 0 ? (uint64_t)v : UINT64_MAX;
}

uint64_t stf_memory_limit(void)
{
    const char *env = getenv("STF_MEMORY_LIMIT");
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        unsigned shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
        if (v > 0 && (shift == 0 ? *end == '\0' : end[1] == '\0') && v <= (UINT64_MAX >> shift))
            return (uint64_t)v << shift;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t limit = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
    uint64_t v2 = read_limit_file("/sys/fs/cgroup/memory.max");
    uint64_t v1 = read_limit_file("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    if (v2 < limit) limit = v2;
    if (v1 < limit) limit = v1;
    return limit;
}
