#include "util/crc32c.h"

#include <string.h>

/* Slice-by-8 tables for the reflected polynomial 0x82F63B78, built once on first use. */
static uint32_t crc_table[8][256];
static int crc_table_ready;

static void crc32c_init_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
    crc_table_ready = 1;
}

#if defined(__SSE4_2__) && defined(__x86_64__)
#include <nmmintrin.h>
/* The SSE4.2 crc32 instruction computes exactly CRC-32C: 8 bytes per instruction. */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t c = ~crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}

/* The table version stays as the portable reference (tests compare the two). */
uint32_t crc32c_update_portable(uint32_t crc, const void *data, size_t len)
#else
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len)
{
    return crc32c_update_portable(crc, data, len);
}

uint32_t crc32c_update_portable(uint32_t crc, const void *data, size_t len)
#endif
{
    if (!crc_table_ready) crc32c_init_tables();
    const unsigned char *p = data;
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= crc;
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
              crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^
              crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}
