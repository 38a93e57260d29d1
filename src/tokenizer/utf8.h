/*
 * utf8: the two UTF-8 rules SentencePiece applies, as inline helpers.
 *
 * utf8_char_len is SentencePiece's "one character" step: it looks only at the lead
 * byte (0xxx and stray continuation bytes count 1, 110x 2, 1110 3, 1111 4), so it
 * never fails; callers clamp it to the bytes left. utf8_valid_prefix is its strict
 * decoder (shortest form, no surrogates, <= U+10FFFF): it says whether the text
 * starts with one well-formed character and how many bytes that character takes
 * (1 when it does not). Internal to the tokenizer module.
 */
#ifndef STF_TOKENIZER_UTF8_H
#define STF_TOKENIZER_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline size_t utf8_char_len(uint8_t lead)
{
    static const uint8_t len_by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len_by_high_nibble[lead >> 4];
}

static inline bool utf8_is_trail(uint8_t b)
{
    return (b & 0xC0) == 0x80;
}

static inline bool utf8_codepoint_ok(uint32_t c)
{
    return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF);
}

/* True when s[0..len) (len >= 1) starts with a well-formed character; *mblen gets its
 * byte length, or 1 for a malformed byte. An encoded U+FFFD counts as well-formed. */
static inline bool utf8_valid_prefix(const uint8_t *s, size_t len, size_t *mblen)
{
    const uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *mblen = 1;
        return true;
    }
    if (len >= 2 && (b0 & 0xE0) == 0xC0) {
        const uint32_t cp = ((uint32_t)(b0 & 0x1F) << 6) | (s[1] & 0x3F);
        if (utf8_is_trail(s[1]) && cp >= 0x80 && utf8_codepoint_ok(cp)) {
            *mblen = 2;
            return true;
        }
    } else if (len >= 3 && (b0 & 0xF0) == 0xE0) {
        const uint32_t cp =
            ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (utf8_is_trail(s[1]) && utf8_is_trail(s[2]) && cp >= 0x800 && utf8_codepoint_ok(cp)) {
            *mblen = 3;
            return true;
        }
    } else if (len >= 4 && (b0 & 0xF8) == 0xF0) {
        const uint32_t cp = ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                            ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (utf8_is_trail(s[1]) && utf8_is_trail(s[2]) && utf8_is_trail(s[3]) && cp >= 0x10000 &&
            utf8_codepoint_ok(cp)) {
            *mblen = 4;
            return true;
        }
    }
    *mblen = 1;
    return false;
}

#endif
