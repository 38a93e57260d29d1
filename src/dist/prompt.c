#include "dist/prompt.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

enum stf_status prompt_parse_ids(const char *text, uint32_t vocab, uint32_t **ids, uint32_t *n,
                                 struct stf_error *err)
{
    *ids = NULL;
    *n = 0;
    uint32_t cap = 16, count = 0;
    uint32_t *out = malloc(cap * sizeof *out);
    if (!out)
        return stf_fail(err, STF_ERR_NOMEM, "out of memory for the prompt");
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            break;
        if (!isdigit((unsigned char)*p)) {
            free(out);
            return stf_fail(err, STF_ERR_ARG, "prompt tokens: `%.20s` is not a token id", p);
        }
        char *end;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (errno || v >= vocab) {
            free(out);
            return stf_fail(err, STF_ERR_ARG,
                            "prompt tokens: id %.20s is out of range for a vocabulary of %u", p,
                            vocab);
        }
        if (count == cap) {
            uint32_t *grown = realloc(out, 2 * cap * sizeof *out);
            if (!grown) {
                free(out);
                return stf_fail(err, STF_ERR_NOMEM, "out of memory for the prompt");
            }
            out = grown;
            cap *= 2;
        }
        out[count++] = (uint32_t)v;
        p = end;
    }
    if (count == 0) {
        free(out);
        return stf_fail(err, STF_ERR_ARG, "prompt tokens: the prompt is empty");
    }
    *ids = out;
    *n = count;
    return STF_OK;
}
