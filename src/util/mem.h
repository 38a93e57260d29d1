/*
 * mem: aligned allocation (64 bytes, a cache line and an AVX-512 register) and
 * read-only memory maps of file ranges.
 */
#ifndef STF_UTIL_MEM_H
#define STF_UTIL_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define STF_ALIGN 64

/* Zeroed, 64-byte aligned; free with stf_free. Returns NULL on failure. */
void *stf_alloc(size_t bytes);
void stf_free(void *p);

/* A read-only mapping of bytes [offset, offset+len) of a file. */
struct file_map {
    const unsigned char *data; /* points at byte `offset` of the file */
    size_t len;
    void *base; /* page-aligned start of the mapping, for munmap */
    size_t base_len;
};

/* Maps [offset, offset+len) of fd read-only; path is only for the message. */
enum stf_status file_map_open(struct file_map *map, int fd, const char *path, uint64_t offset,
                              uint64_t len, struct stf_error *err);
/* Anonymous writable memory with the same lifetime rules (for in-memory models). */
enum stf_status file_map_anon(struct file_map *map, uint64_t len, struct stf_error *err);
void file_map_close(struct file_map *map);

/* Bytes of memory this process may use: $STF_MEMORY_LIMIT when set (bytes, or with a K, M
 * or G suffix: to leave room for other jobs), else the machine's physical memory, or the
 * cgroup's memory limit when that is lower (a container, a Slurm job). */
uint64_t stf_memory_limit(void);

#endif
