/*
 * sparsetf-tok: SentencePiece encoding and decoding on the command line, the same
 * job as spm_encode --output_format=id / spm_decode --input_format=id, built on the
 * tokenizer module. One line in, one line out.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_file.h"
#include "tokenizer/tokenizer.h"

static void print_usage(FILE *out)
{
    fputs("usage: sparsetf-tok --model FILE COMMAND\n"
          "\n"
          "Reads lines from stdin and writes one line per input line to stdout.\n"
          "\n"
          "commands:\n"
          "  encode     text -> token ids, space-separated (like spm_encode --output_format=id)\n"
          "  pieces     text -> pieces, space-separated (like spm_encode --output_format=piece)\n"
          "  decode     space-separated ids -> text (like spm_decode --input_format=id)\n"
          "  normalize  text -> normalised text (spaces shown as U+2581 when escaped)\n"
          "  info       print the model type, vocabulary size and special ids\n"
          "\n"
          "options:\n"
          "  -m, --model FILE  SentencePiece .model file, or a sparsetf .stf model file that\n"
          "                    embeds one (sparsetf-gen --tokenizer) (required)\n"
          "  -h, --help        show this help;  --version  the version\n"
          "\n"
          "No BOS/EOS ids are added. Exit status: 0 ok, 1 error, 2 bad usage.\n",
          out);
}

struct id_buffer {
    int32_t *ids;
    int cap;
};

static int grow_ids(struct id_buffer *b, int need)
{
    if (need <= b->cap) return 0;
    int cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > INT_MAX / 2 ? need : cap * 2;
    int32_t *ids = realloc(b->ids, (size_t)cap * sizeof *ids);
    if (!ids) return -1;
    b->ids = ids;
    b->cap = cap;
    return 0;
}

static int encode_line(struct tokenizer *tok, struct id_buffer *buf, const char *line, size_t len,
                       int *n, struct stf_error *err)
{
    enum stf_status st = tokenizer_encode(tok, line, len, buf->ids, buf->cap, n, err);
    if (st == STF_ERR_ARG && *n > buf->cap) {
        if (grow_ids(buf, *n) != 0)
            return stf_fail(err, STF_ERR_NOMEM, "out of memory for %d ids", *n);
        st = tokenizer_encode(tok, line, len, buf->ids, buf->cap, n, err);
    }
    return st;
}

/* Parses a line of space-separated ids; returns 0 or -1 with a message in err. */
static int parse_ids(char *line, struct id_buffer *buf, int *n, struct stf_error *err)
{
    *n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            ++p;
        if (*p == '\0') return 0;
        errno = 0;
        char *end;
        const long v = strtol(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX ||
            !(*end == '\0' || *end == ' ' || *end == '\t' || *end == '\r')) {
            stf_fail(err, STF_ERR_ARG, "\"%.40s\" is not an integer id", p);
            return -1;
        }
        if (grow_ids(buf, *n + 1) != 0) {
            stf_fail(err, STF_ERR_NOMEM, "out of memory");
            return -1;
        }
        buf->ids[(*n)++] = (int32_t)v;
        p = end;
    }
}

/* A SentencePiece .model file, or the tokenizer embedded in a sparsetf model file (which
 * starts with the magic "SPARSETF"; only its embedding part is opened). */
static enum stf_status open_tokenizer(const char *path, struct tokenizer **tok,
                                      struct stf_error *err)
{
    char magic[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return stf_fail(err, STF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got != sizeof magic || memcmp(magic, "SPARSETF", sizeof magic) != 0)
        return tokenizer_open_file(path, tok, err);
    struct model_select sel = {.layer_begin = 0, .layer_end = 0, .embed = true, .head = false};
    struct model *m = NULL;
    enum stf_status st = model_open(path, &sel, 0, &m, err);
    if (st) return st;
    if (!m->tokenizer || !m->tokenizer_len)
        st = stf_fail(err, STF_ERR_ARG,
                      "%s embeds no tokenizer (sparsetf-gen --tokenizer FILE embeds one)", path);
    else {
        char what[512];
        snprintf(what, sizeof what, "%s: embedded tokenizer", path);
        st = tokenizer_open_bytes(m->tokenizer, m->tokenizer_len, what, tok, err);
    }
    model_close(m); /* the tokenizer keeps its own copy of what it needs */
    return st;
}

int main(int argc, char **argv)
{
    const char *model_path = NULL;
    const char *command = NULL;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("sparsetf-tok %s\n", PROJECT_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--model") == 0 || strcmp(argv[i], "-m") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sparsetf-tok: --model needs a file name\n");
                return 2;
            }
            model_path = argv[++i];
        } else if (strncmp(argv[i], "--model=", 8) == 0) {
            model_path = argv[i] + 8;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "sparsetf-tok: unknown option %s (see --help)\n", argv[i]);
            return 2;
        } else if (!command) {
            command = argv[i];
        } else {
            fprintf(stderr, "sparsetf-tok: unexpected argument %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!model_path || !command) {
        fprintf(stderr, "sparsetf-tok: %s is required\n\n",
                !model_path ? "--model FILE" : "a command");
        print_usage(stderr);
        return 2;
    }
    enum { CMD_ENCODE, CMD_PIECES, CMD_DECODE, CMD_NORMALIZE, CMD_INFO } cmd;
    if (strcmp(command, "encode") == 0)
        cmd = CMD_ENCODE;
    else if (strcmp(command, "pieces") == 0)
        cmd = CMD_PIECES;
    else if (strcmp(command, "decode") == 0)
        cmd = CMD_DECODE;
    else if (strcmp(command, "normalize") == 0)
        cmd = CMD_NORMALIZE;
    else if (strcmp(command, "info") == 0)
        cmd = CMD_INFO;
    else {
        fprintf(stderr,
                "sparsetf-tok: unknown command \"%s\", expected encode, pieces, decode, "
                "normalize or info\n",
                command);
        return 2;
    }

    struct stf_error err = {0};
    struct tokenizer *tok = NULL;
    if (open_tokenizer(model_path, &tok, &err) != STF_OK) {
        fprintf(stderr, "sparsetf-tok: %s\n", err.msg);
        return 1;
    }
    if (cmd == CMD_INFO) {
        printf("model: %s\ntype: %s\npieces: %d\nunk_id: %d\nbos_id: %d\neos_id: %d\npad_id: %d\n",
               model_path, tokenizer_model_name(tok), tokenizer_piece_count(tok),
               tokenizer_unk_id(tok), tokenizer_bos_id(tok), tokenizer_eos_id(tok),
               tokenizer_pad_id(tok));
        tokenizer_close(tok);
        return 0;
    }

    int rc = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t got;
    long lineno = 0;
    struct id_buffer buf = {0};
    if (grow_ids(&buf, 256) != 0) {
        fprintf(stderr, "sparsetf-tok: out of memory\n");
        tokenizer_close(tok);
        return 1;
    }
    while ((got = getline(&line, &line_cap, stdin)) >= 0) {
        ++lineno;
        size_t len = (size_t)got;
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        int n = 0;
        if (cmd == CMD_ENCODE || cmd == CMD_PIECES) {
            if (encode_line(tok, &buf, line, len, &n, &err) != STF_OK) {
                fprintf(stderr, "sparsetf-tok: stdin line %ld: %s\n", lineno, err.msg);
                rc = 1;
                break;
            }
            for (int i = 0; i < n; ++i) {
                if (i) putchar(' ');
                if (cmd == CMD_ENCODE) {
                    printf("%d", buf.ids[i]);
                } else {
                    size_t plen;
                    const char *piece = tokenizer_piece(tok, buf.ids[i], &plen);
                    fwrite(piece, 1, plen, stdout);
                }
            }
            putchar('\n');
        } else if (cmd == CMD_DECODE) {
            const char *text;
            size_t text_len;
            if (parse_ids(line, &buf, &n, &err) != 0 ||
                tokenizer_decode(tok, buf.ids, n, &text, &text_len, &err) != STF_OK) {
                fprintf(stderr, "sparsetf-tok: stdin line %ld: %s\n", lineno, err.msg);
                rc = 1;
                break;
            }
            fwrite(text, 1, text_len, stdout);
            putchar('\n');
        } else {
            const char *text;
            size_t text_len;
            if (tokenizer_normalize(tok, line, len, &text, &text_len, &err) != STF_OK) {
                fprintf(stderr, "sparsetf-tok: stdin line %ld: %s\n", lineno, err.msg);
                rc = 1;
                break;
            }
            fwrite(text, 1, text_len, stdout);
            putchar('\n');
        }
    }
    if (rc == 0 && ferror(stdin)) {
        fprintf(stderr, "sparsetf-tok: reading stdin: %s\n", strerror(errno));
        rc = 1;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sparsetf-tok: writing stdout: %s\n", strerror(errno));
        rc = 1;
    }
    free(line);
    free(buf.ids);
    tokenizer_close(tok);
    return rc;
}
