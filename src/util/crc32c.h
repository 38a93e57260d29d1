/*
 * crc32c: CRC-32C (Castagnoli), the checksum of tensors in model files and of wire frames.
 * Incremental: crc = crc32c_update(0, a, n); crc = crc32c_update(crc, b, m).
 */
#ifndef STF_UTIL_CRC32C_H
#define STF_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);
/* Table-driven, for any CPU; crc32c_update uses the SSE4.2 instruction where built for it. */
uint32_t crc32c_update_portable(uint32_t crc, const void *data, size_t len);

#endif
