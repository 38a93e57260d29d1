#include "util/mem.h"

#include <errno.h>
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
