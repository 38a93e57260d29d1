/*
 * sparsetf-tok-bench: encoding throughput of the tokenizer on one core, beside the
 * reference SentencePiece (python3-sentencepiece) on the same text.
 *
 * Every line of --text is encoded once as warm-up, then --reps timed passes over all
 * lines follow; the median pass gives MB/s (input bytes) and the min/max the spread.
 * The reference is timed the same way in a child /usr/bin/python3 (per-line
 * sp.encode, and one batched sp.encode(list, num_threads=1)). Output: a human table
 * and one JSON line per result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"
#include "util/timer.h"

struct lines {
    char *data;
    size_t len;
    size_t *start; /* (n + 1) offsets; line i is [start[i], start[i+1] - 1) */
    int n;
};

static int read_lines(const char *path, struct lines *l)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 20;
    l->data = malloc(cap);
    l->len = 0;
    size_t got;
    while (l->data && (got = fread(l->data + l->len, 1, cap - l->len, f)) > 0) {
        l->len += got;
        if (l->len == cap) {
            cap *= 2;
            char *grown = realloc(l->data, cap);
            if (!grown) {
                free(l->data);
                l->data = NULL;
            }
            l->data = grown;
        }
    }
    fclose(f);
    if (!l->data) return -1;
    if (l->len == 0 || l->data[l->len - 1] != '\n')
        l->data[l->len++] = '\n'; /* cap > len here: the loop grows before it fills */
    l->n = 0;
    for (size_t i = 0; i < l->len; ++i)
        l->n += l->data[i] == '\n';
    l->start = malloc(((size_t)l->n + 1) * sizeof *l->start);
    if (!l->start) return -1;
    int k = 0;
    l->start[k++] = 0;
    for (size_t i = 0; i < l->len; ++i)
        if (l->data[i] == '\n') l->start[k++] = i + 1;
    return 0;
}

static const char python_bench[] =
    "import sys, time, statistics\n"
    "import sentencepiece as spm\n"
    "sp = spm.SentencePieceProcessor(model_file=sys.argv[1])\n"
    "data = open(sys.argv[2], 'rb').read()\n"
    "lines = data.split(b'\\n')\n"
    "if lines and lines[-1] == b'': lines.pop()\n"
    "strs = [l.decode('utf-8', 'surrogateescape') for l in lines]\n"
    "strs = [s.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace') for s in strs]\n"
    "reps = int(sys.argv[3])\n"
    "nbytes = sum(len(l) for l in lines)\n"
    "def per_line():\n"
    "    for l in lines: sp.encode(l)\n"
    "def batch():\n"
    "    sp.encode(strs, num_threads=1)\n"
    "for name, fn in (('per_line', per_line), ('batch', batch)):\n"
    "    fn()\n"
    "    t = []\n"
    "    for _ in range(reps):\n"
    "        t0 = time.perf_counter(); fn(); t.append(time.perf_counter() - t0)\n"
    "    print(name, nbytes, statistics.median(t), min(t), max(t))\n";

static void print_result(const char *impl, double bytes, double med, double lo, double hi, int n)
{
    printf("%-28s %10.2f MB/s  (%.2f .. %.2f)  %9.0f lines/s\n", impl, bytes / med / 1e6,
           bytes / hi / 1e6, bytes / lo / 1e6, n / med);
}

static void print_json(const char *impl, const char *model, double bytes, double med, double lo,
                       double hi, int n, int reps)
{
    printf("{\"bench\":\"tokenizer_encode\",\"impl\":\"%s\",\"model\":\"%s\",\"lines\":%d,"
           "\"bytes\":%.0f,\"reps\":%d,\"median_s\":%.6f,\"min_s\":%.6f,\"max_s\":%.6f,"
           "\"mb_per_s\":%.3f}\n",
           impl, model, n, bytes, reps, med, lo, hi, bytes / med / 1e6);
}

static void usage(FILE *out)
{
    fputs("usage: sparsetf-tok-bench --model FILE --text FILE [--reps N] [--no-python]\n"
          "Encodes every line of --text (warm-up + N timed passes, default 5) on one core\n"
          "and prints MB/s, then times /usr/bin/python3 sentencepiece on the same lines.\n",
          out);
}

int main(int argc, char **argv)
{
    const char *model = NULL, *text = NULL;
    int reps = 5, python = 1;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model = argv[++i];
        else if (strcmp(argv[i], "--text") == 0 && i + 1 < argc)
            text = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-python") == 0)
            python = 0;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("sparsetf-tok-bench %s\n", PROJECT_VERSION);
            return 0;
        } else {
            fprintf(stderr, "sparsetf-tok-bench: unexpected argument %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!model || !text || reps < 1 || reps > 1000) {
        usage(stderr);
        return 2;
    }

    struct lines l = {0};
    if (read_lines(text, &l) != 0) {
        fprintf(stderr, "sparsetf-tok-bench: cannot read %s\n", text);
        return 1;
    }
    struct stf_error err = {0};
    struct tokenizer *tok = NULL;
    if (tokenizer_open_file(model, &tok, &err) != STF_OK) {
        fprintf(stderr, "sparsetf-tok-bench: %s\n", err.msg);
        return 1;
    }
    int cap = 1 << 16;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!ids || !t) return 1;
    double bytes = 0;
    long total_ids = 0;
    for (int rep = -1; rep < reps; ++rep) {
        const double t0 = stf_now();
        for (int i = 0; i < l.n; ++i) {
            const size_t len = l.start[i + 1] - 1 - l.start[i];
            int n;
            if (tokenizer_encode(tok, l.data + l.start[i], len, ids, cap, &n, &err) != STF_OK) {
                fprintf(stderr, "sparsetf-tok-bench: line %d: %s\n", i + 1, err.msg);
                return 1;
            }
            if (rep < 0) {
                bytes += (double)len;
                total_ids += n;
            }
        }
        if (rep >= 0) t[rep] = stf_now() - t0;
    }
    double lo = t[0], hi = t[0];
    for (int r = 0; r < reps; ++r) {
        lo = t[r] < lo ? t[r] : lo;
        hi = t[r] > hi ? t[r] : hi;
    }
    const double med = stf_median(t, reps);

    printf("model %s (%s, %d pieces), text %s: %d lines, %.0f bytes, %ld ids\n", model,
           tokenizer_model_name(tok), tokenizer_piece_count(tok), text, l.n, bytes, total_ids);
    printf("%-28s %10s  %-16s  %9s\n", "encoder (1 core)", "median", "(min .. max)", "");
    print_result("sparsetf tokenizer_encode", bytes, med, lo, hi, l.n);
    print_json("sparsetf", model, bytes, med, lo, hi, l.n, reps);

    if (python) {
        char cmd[8192];
        FILE *script = fopen("/tmp/sparsetf_tok_bench.py", "w");
        if (script) {
            fputs(python_bench, script);
            fclose(script);
        }
        snprintf(cmd, sizeof cmd,
                 "taskset -c 0 /usr/bin/python3 /tmp/sparsetf_tok_bench.py '%s' '%s' %d 2>&1 || "
                 "/usr/bin/python3 /tmp/sparsetf_tok_bench.py '%s' '%s' %d",
                 model, text, reps, model, text, reps);
        FILE *p = script ? popen(cmd, "r") : NULL;
        char line[512];
        while (p && fgets(line, sizeof line, p)) {
            char name[64];
            double pb, pmed, plo, phi;
            if (sscanf(line, "%63s %lf %lf %lf %lf", name, &pb, &pmed, &plo, &phi) == 5) {
                char impl[96];
                snprintf(impl, sizeof impl, "python spm %s", name);
                print_result(impl, pb, pmed, plo, phi, l.n);
                print_json(impl, model, pb, pmed, plo, phi, l.n, reps);
            } else {
                fputs(line, stdout);
            }
        }
        if (!p || pclose(p) != 0) printf("(reference python sentencepiece timing unavailable)\n");
    }
    free(ids);
    free(t);
    free(l.data);
    free(l.start);
    tokenizer_close(tok);
    return 0;
}
