#include "pipeline/prompt.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum stf_status prompt_parse_ids(const char *text, uint32_t vocab, uint32_t **ids, uint32_t *n,
                                 struct stf_error *err)
{
    *ids = NULL;
    *n = 0;
    uint32_t cap = 16, count = 0;
    uint32_t *out = malloc(cap * sizeof *out);
    if (!out) return stf_fail(err, STF_ERR_NOMEM, "out of memory for the prompt");
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n' || *p == '\r')
            p++;
        if (!*p) break;
        if (!isdigit((unsigned char)*p)) {
            free(out);
            return stf_fail(err, STF_ERR_ARG, "prompt tokens: `%.20s` is not a token id", p);
        }
        char *end;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (errno || v >= vocab) {
            int len = (int)(end - p);
            free(out);
            return stf_fail(err, STF_ERR_ARG,
                            "prompt tokens: id %.*s%s is out of range for a vocabulary of %u "
                            "(ids 0..%u)",
                            len > 24 ? 24 : len, p, len > 24 ? "..." : "", vocab, vocab - 1);
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

void prompt_lines_free(char **lines, uint32_t n)
{
    if (!lines) return;
    for (uint32_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

enum stf_status prompt_read_lines(const char *path, char ***lines, uint32_t *n,
                                  struct stf_error *err)
{
    *lines = NULL;
    *n = 0;
    const bool std_in = strcmp(path, "-") == 0;
    FILE *f = std_in ? stdin : fopen(path, "r");
    if (!f) return stf_fail(err, STF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (std_in) path = "standard input";
    char *line = NULL, **out = NULL;
    size_t line_cap = 0;
    uint32_t count = 0, cap = 0;
    ssize_t got;
    enum stf_status st = STF_OK;
    while ((got = getline(&line, &line_cap, f)) >= 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        if (strspn(line, " \t") == (size_t)got) continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(out, cap * sizeof *grown);
            if (!grown) {
                st = stf_fail(err, STF_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            out = grown;
        }
        if (!(out[count] = strdup(line))) {
            st = stf_fail(err, STF_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        count++;
    }
    if (ferror(f)) {
        st = stf_fail(err, STF_ERR_IO, "%s: read failed", path);
        goto done;
    }
    if (count == 0) {
        st = stf_fail(err, STF_ERR_ARG, "%s: no prompts (every line is blank)", path);
        goto done;
    }
done:
    free(line);
    if (!std_in) fclose(f);
    if (st) {
        prompt_lines_free(out, count);
        return st;
    }
    *lines = out;
    *n = count;
    return STF_OK;
}

enum stf_status prompt_read_text(const char *path, char **text, struct stf_error *err)
{
    *text = NULL;
    const bool std_in = strcmp(path, "-") == 0;
    FILE *f = std_in ? stdin : fopen(path, "r");
    if (!f) return stf_fail(err, STF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    const char *name = std_in ? "standard input" : path;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    enum stf_status st = STF_OK;
    if (!buf) {
        st = stf_fail(err, STF_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            char *grown = cap < ((size_t)1 << 30) ? realloc(buf, 2 * cap) : NULL;
            if (!grown) {
                st = stf_fail(err, STF_ERR_NOMEM, "%s: prompt too large", name);
                goto done;
            }
            buf = grown;
            cap *= 2;
        }
    }
    if (ferror(f)) {
        st = stf_fail(err, STF_ERR_IO, "%s: read failed", name);
        goto done;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    buf[len] = 0;
    if (strspn(buf, " \t\r\n") == len)
        st = stf_fail(err, STF_ERR_ARG, "%s: the prompt is empty", name);
done:
    if (!std_in) fclose(f);
    if (st) {
        free(buf);
        return st;
    }
    *text = buf;
    return STF_OK;
}
