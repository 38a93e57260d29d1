/*
 * stop: stop strings matched on the decoded text of a completion, as it grows token by
 * token. Text that could still be the start of a stop string is held back, so a client
 * never receives part of a stop string; text is also held back while it ends in an
 * incomplete UTF-8 sequence or in U+FFFD (a byte-fallback character whose other bytes come
 * with the next tokens).
 */
#ifndef STF_SERVER_STOP_H
#define STF_SERVER_STOP_H

#include <stdbool.h>
#include <stddef.h>

/* text[0..len) is the whole completion so far, of which text[0..sent) was already released
 * (it never contains the start of a stop string). Returns how many bytes of text may be
 * released in total (>= sent): up to the first stop string when one occurs (*hit set), else
 * all but the tail that may begin one. final: no more text will come (nothing is held for
 * UTF-8 reasons then). */
size_t stop_release(const char *const *stop, size_t n_stop, const char *text, size_t len,
                    size_t sent, bool final, bool *hit);

#endif
