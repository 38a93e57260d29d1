/* journal: see journal.h. */
#include "pipeline/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crc32c.h"
#include "util/le.h"

enum journal_kind { JOURNAL_HEADER = 1, JOURNAL_SESSION = 2, JOURNAL_TOKEN = 3, JOURNAL_END = 4 };

#define RECORD_HEAD     8u  /* u32 length, u32 CRC-32C */
#define RNG_BYTES       40u /* 4 u64, u32 has_spare, f32 spare */
#define TOKEN_BODY      (1u + 8u + RNG_BYTES)
#define MAX_RECORD      (64u << 20) /* longer is a damaged length field */
#define HEADER_MAX_TEXT 8192u

static void put_rng(unsigned char *p, const struct rng *r)
{
    for (int i = 0; i < 4; i++)
        le_put_u64(p + 8 * i, r->s[i]);
    uint32_t spare;
    memcpy(&spare, &r->spare, sizeof spare);
    le_put_u32(p + 32, (uint32_t)r->has_spare);
    le_put_u32(p + 36, spare);
}

static void get_rng(const unsigned char *p, struct rng *r)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = le_get_u64(p + 8 * i);
    r->has_spare = (int)le_get_u32(p + 32);
    uint32_t spare = le_get_u32(p + 36);
    memcpy(&r->spare, &spare, sizeof spare);
}

/* Frames the body already in j->buf + RECORD_HEAD (len bytes) and appends it in one write. */
static enum stf_status append(struct journal *j, size_t len, bool sync, struct stf_error *err)
{
    le_put_u32(j->buf, (uint32_t)len);
    le_put_u32(j->buf + 4, crc32c_update(0, j->buf + RECORD_HEAD, len));
    size_t total = RECORD_HEAD + len;
    ssize_t n;
    do
        n = write(j->fd, j->buf, total);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)total)
        return stf_fail(err, STF_ERR_IO, "%s: write failed: %s", j->path,
                        n < 0 ? strerror(errno) : "short write (disk full?)");
    if (sync && fdatasync(j->fd) != 0)
        return stf_fail(err, STF_ERR_IO, "%s: flush to disk failed: %s", j->path, strerror(errno));
    return STF_OK;
}

static enum stf_status check_index(const struct journal *j, uint32_t index, struct stf_error *err)
{
    if (index < j->n_sessions) return STF_OK;
    return stf_fail(err, STF_ERR_ARG, "%s: session %u of a job of %u", j->path, index,
                    j->n_sessions);
}

enum stf_status journal_session(struct journal *j, uint32_t index, uint64_t seed,
                                const uint32_t *prompt, uint32_t n_prompt, struct stf_error *err)
{
    enum stf_status st = check_index(j, index, err);
    if (st) return st;
    size_t len = 1 + 4 + 8 + 4 + (size_t)n_prompt * 4;
    if (RECORD_HEAD + len > j->cap)
        return stf_fail(err, STF_ERR_ARG, "%s: a prompt of %u ids is longer than announced",
                        j->path, n_prompt);
    unsigned char *p = j->buf + RECORD_HEAD;
    p[0] = JOURNAL_SESSION;
    le_put_u32(p + 1, index);
    le_put_u64(p + 5, seed);
    le_put_u32(p + 13, n_prompt);
    for (uint32_t i = 0; i < n_prompt; i++)
        le_put_u32(p + 17 + 4 * (size_t)i, prompt[i]);
    return append(j, len, false, err);
}

enum stf_status journal_token(struct journal *j, uint32_t index, uint32_t token,
                              const struct rng *state, struct stf_error *err)
{
    enum stf_status st = check_index(j, index, err);
    if (st) return st;
    unsigned char *p = j->buf + RECORD_HEAD;
    p[0] = JOURNAL_TOKEN;
    le_put_u32(p + 1, index);
    le_put_u32(p + 5, token);
    put_rng(p + 9, state);
    return append(j, TOKEN_BODY, false, err);
}

enum stf_status journal_end(struct journal *j, uint32_t index, enum journal_end end,
                            uint64_t dump_bytes, struct stf_error *err)
{
    enum stf_status st = check_index(j, index, err);
    if (st) return st;
    unsigned char *p = j->buf + RECORD_HEAD;
    p[0] = JOURNAL_END;
    le_put_u32(p + 1, index);
    le_put_u32(p + 5, (uint32_t)end);
    le_put_u64(p + 9, dump_bytes);
    return append(j, 17, true, err);
}

/* ---- reading ---- */

/* The value of key in "key=value\n" text, as a pointer and length; NULL when absent. */
static const char *header_value(const char *text, size_t text_len, const char *key, size_t key_len,
                                size_t *len)
{
    const char *p = text, *end = text + text_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        if ((size_t)(line_end - p) > key_len && memcmp(p, key, key_len) == 0 && p[key_len] == '=') {
            *len = (size_t)(line_end - p) - key_len - 1;
            return p + key_len + 1;
        }
        p = line_end + 1;
    }
    return NULL;
}

/* The stored header against this job's: every key of either must have the same value. */
static enum stf_status compare_header(const struct journal *j, const char *stored,
                                      size_t stored_len, const char *header, struct stf_error *err)
{
    const char *texts[2] = {header, stored};
    const size_t lens[2] = {strlen(header), stored_len};
    for (int side = 0; side < 2; side++) {
        const char *p = texts[side], *end = p + lens[side];
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *line_end = nl ? nl : end;
            const char *eq = memchr(p, '=', (size_t)(line_end - p));
            size_t key_len = eq ? (size_t)(eq - p) : (size_t)(line_end - p);
            size_t a_len = 0, b_len = 0;
            const char *a = header_value(header, lens[0], p, key_len, &a_len);
            const char *b = header_value(stored, stored_len, p, key_len, &b_len);
            if (!a || !b || a_len != b_len || memcmp(a, b, a_len) != 0)
                return stf_fail(err, STF_ERR_ARG,
                                "%s belongs to another job: %.*s is `%.*s` there but `%.*s` "
                                "here (restart with the same model and options, or give a new "
                                "--journal directory)",
                                j->path, (int)key_len, p, b ? (int)b_len : 6, b ? b : "absent",
                                a ? (int)a_len : 6, a ? a : "absent");
            p = line_end + 1;
        }
    }
    return STF_OK;
}

static enum stf_status session_grow(struct journal_session *s, struct stf_error *err)
{
    uint32_t cap = s->cap ? 2 * s->cap : 64;
    uint32_t *tokens = realloc(s->tokens, (size_t)cap * sizeof *tokens);
    if (tokens) s->tokens = tokens;
    struct rng *rng = realloc(s->rng, (size_t)cap * sizeof *rng);
    if (rng) s->rng = rng;
    if (!tokens || !rng) return stf_fail(err, STF_ERR_NOMEM, "out of memory reading the journal");
    s->cap = cap;
    return STF_OK;
}

/* One checked record (kind + body, len bytes) at byte off into the recovered state. */
static enum stf_status apply_record(struct journal *j, const unsigned char *p, size_t len,
                                    uint64_t off, struct stf_error *err)
{
    const uint32_t index = len >= 5 ? le_get_u32(p + 1) : UINT32_MAX;
    struct journal_session *s = index < j->n_sessions ? &j->s[index] : NULL;
    const char *bad = NULL;
    switch (p[0]) {
    case JOURNAL_SESSION:
        if (len < 17 || !s || s->started || len != 17 + 4 * (size_t)le_get_u32(p + 13)) {
            bad = "a session record that fits no session";
            break;
        }
        s->started = true;
        s->seed = le_get_u64(p + 5);
        s->n_prompt = le_get_u32(p + 13);
        if (!(s->prompt = malloc(((size_t)s->n_prompt + 1) * sizeof *s->prompt)))
            return stf_fail(err, STF_ERR_NOMEM, "out of memory reading the journal");
        for (uint32_t i = 0; i < s->n_prompt; i++)
            s->prompt[i] = le_get_u32(p + 17 + 4 * (size_t)i);
        return STF_OK;
    case JOURNAL_TOKEN:
        if (len != TOKEN_BODY || !s || !s->started || s->ended) {
            bad = "a token record of no running session";
            break;
        }
        if (s->n_tokens == s->cap) {
            enum stf_status st = session_grow(s, err);
            if (st) return st;
        }
        s->tokens[s->n_tokens] = le_get_u32(p + 5);
        get_rng(p + 9, &s->rng[s->n_tokens]);
        s->n_tokens++;
        return STF_OK;
    case JOURNAL_END:
        /* a session ended again: its logits file was recomputed (the later record holds) */
        if (len != 17 || !s || !s->started || le_get_u32(p + 5) < JOURNAL_END_LENGTH ||
            le_get_u32(p + 5) > JOURNAL_END_STOP) {
            bad = "an end record of no session";
            break;
        }
        s->ended = true;
        s->end = (enum journal_end)le_get_u32(p + 5);
        s->dump_bytes = le_get_u64(p + 9);
        return STF_OK;
    default:
        bad = "a record of an unknown kind";
    }
    /* the checksum matched: not a torn write but a file this program did not write */
    return stf_fail(err, STF_ERR_FORMAT, "%s: byte %llu: %s (the file is not this job's journal)",
                    j->path, (unsigned long long)off, bad);
}

/* Reads the whole file: the header, then every record up to the first torn one. */
static enum stf_status journal_read(struct journal *j, const char *header, struct stf_error *err)
{
    struct stat sb;
    if (fstat(j->fd, &sb) != 0)
        return stf_fail(err, STF_ERR_IO, "%s: %s", j->path, strerror(errno));
    size_t size = (size_t)sb.st_size;
    unsigned char *data = size ? malloc(size) : NULL;
    if (size && !data) return stf_fail(err, STF_ERR_NOMEM, "out of memory reading %s", j->path);
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(j->fd, data + got, size - got, (off_t)got);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            free(data);
            return stf_fail(err, STF_ERR_IO, "%s: read failed: %s", j->path,
                            n < 0 ? strerror(errno) : "the file shrank");
        }
        got += (size_t)n;
    }
    enum stf_status st = STF_OK;
    size_t off = 0;
    bool have_header = false;
    while (!st && off < size) {
        size_t len = size - off >= RECORD_HEAD ? le_get_u32(data + off) : 0;
        if (size - off < RECORD_HEAD || len == 0 || len > MAX_RECORD ||
            len > size - off - RECORD_HEAD ||
            crc32c_update(0, data + off + RECORD_HEAD, len) != le_get_u32(data + off + 4))
            break; /* torn: dropped below */
        const unsigned char *p = data + off + RECORD_HEAD;
        if (!have_header) {
            if (p[0] != JOURNAL_HEADER)
                st = stf_fail(err, STF_ERR_FORMAT,
                              "%s: does not start with a journal header (not a journal?)", j->path);
            else
                st = compare_header(j, (const char *)p + 1, len - 1, header, err);
            have_header = true;
        } else if (p[0] == JOURNAL_HEADER) {
            st = stf_fail(err, STF_ERR_FORMAT, "%s: byte %llu: a second header", j->path,
                          (unsigned long long)off);
        } else {
            st = apply_record(j, p, len, off, err);
        }
        off += RECORD_HEAD + len;
    }
    free(data);
    if (st) return st;
    j->resumed = have_header;
    if (off < size) {
        j->dropped_at = off;
        j->dropped_bytes = size - off;
        if (ftruncate(j->fd, (off_t)off) != 0)
            return stf_fail(err, STF_ERR_IO, "%s: cannot drop the torn record at byte %zu: %s",
                            j->path, off, strerror(errno));
    }
    return STF_OK;
}

enum stf_status journal_open(const char *dir, const char *header, uint32_t n_sessions,
                             uint32_t max_prompt, struct journal **out, struct stf_error *err)
{
    *out = NULL;
    size_t header_len = strlen(header);
    if (header_len > HEADER_MAX_TEXT)
        return stf_fail(err, STF_ERR_ARG, "journal header of %zu bytes is too long", header_len);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return stf_fail(err, STF_ERR_IO, "--journal %s: cannot create the directory: %s", dir,
                        strerror(errno));
    struct journal *j = calloc(1, sizeof *j);
    if (!j) return stf_fail(err, STF_ERR_NOMEM, "out of memory");
    j->fd = -1;
    j->n_sessions = n_sessions;
    size_t prompt_rec = 17 + 4 * (size_t)max_prompt, header_rec = 1 + header_len;
    j->cap = RECORD_HEAD + (prompt_rec > header_rec ? prompt_rec : header_rec);
    if (j->cap < RECORD_HEAD + TOKEN_BODY) j->cap = RECORD_HEAD + TOKEN_BODY;
    size_t path_len = strlen(dir) + sizeof "/journal";
    enum stf_status st = STF_OK;
    if (!(j->path = malloc(path_len)) || !(j->buf = malloc(j->cap)) ||
        !(j->s = calloc(n_sessions ? n_sessions : 1, sizeof *j->s))) {
        journal_close(j);
        return stf_fail(err, STF_ERR_NOMEM, "out of memory");
    }
    snprintf(j->path, path_len, "%s/journal", dir);
    if ((j->fd = open(j->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0666)) < 0)
        st = stf_fail(err, STF_ERR_IO, "%s: cannot open: %s", j->path, strerror(errno));
    else if (flock(j->fd, LOCK_EX | LOCK_NB) != 0)
        st = stf_fail(err, STF_ERR_IO, "%s: in use by another running job (%s)", j->path,
                      strerror(errno));
    if (!st) st = journal_read(j, header, err);
    if (!st && !j->resumed) {
        if (ftruncate(j->fd, 0) != 0)
            st = stf_fail(err, STF_ERR_IO, "%s: %s", j->path, strerror(errno));
        j->buf[RECORD_HEAD] = JOURNAL_HEADER;
        memcpy(j->buf + RECORD_HEAD + 1, header, header_len);
        if (!st) st = append(j, 1 + header_len, true, err);
    }
    if (st) {
        journal_close(j);
        return st;
    }
    *out = j;
    return STF_OK;
}

void journal_close(struct journal *j)
{
    if (!j) return;
    for (uint32_t i = 0; j->s && i < j->n_sessions; i++) {
        free(j->s[i].prompt);
        free(j->s[i].tokens);
        free(j->s[i].rng);
    }
    free(j->s);
    if (j->fd >= 0) close(j->fd);
    free(j->buf);
    free(j->path);
    free(j);
}
