/* stop: see stop.h. */
#include "server/stop.h"

#include <string.h>

/* Bytes at the end of text[0..len) that form an incomplete UTF-8 sequence (0..3). */
static size_t incomplete_utf8_tail(const unsigned char *t, size_t len)
{
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned c = t[len - back];
        if ((c & 0xc0) == 0x80) continue; /* continuation byte: look further back */
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

size_t stop_release(const char *const *stop, size_t n_stop, const char *text, size_t len,
                    size_t sent, bool final, bool *hit)
{
    *hit = false;
    if (sent > len) return len;
    /* the earliest stop string at or after `sent` (none starts before: it would have been
     * held back) */
    size_t first = len;
    for (size_t i = 0; i < n_stop; i++) {
        size_t n = strlen(stop[i]);
        if (!n || n > len - sent) continue;
        for (size_t p = sent; p + n <= len && p < first; p++)
            if (text[p] == stop[i][0] && memcmp(text + p, stop[i], n) == 0) {
                first = p;
                break;
            }
    }
    if (first < len) {
        *hit = true;
        return first;
    }
    if (final) return len;
    /* hold back the longest tail that is a proper prefix of a stop string */
    size_t keep = len;
    for (size_t i = 0; i < n_stop; i++) {
        size_t n = strlen(stop[i]);
        if (!n) continue;
        for (size_t k = n - 1 < len - sent ? n - 1 : len - sent; k > 0; k--)
            if (memcmp(text + len - k, stop[i], k) == 0) {
                if (len - k < keep) keep = len - k;
                break;
            }
    }
    size_t tail = incomplete_utf8_tail((const unsigned char *)text, keep);
    keep -= tail;
    if (keep >= 3 && memcmp(text + keep - 3, "\xef\xbf\xbd", 3) == 0) keep -= 3;
    return keep < sent ? sent : keep;
}
