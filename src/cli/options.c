#include "cli/options.h"

#include "server/serve.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dist_options_usage(FILE *f)
{
    /* the whole text (over 4 KiB) in one write at exit, so a reader that stops early
     * (`sparsetf-dist -h | grep -q ...`) cannot make the second write fail with SIGPIPE;
     * usage is printed before anything else on the stream */
    static char whole[1 << 14];
    setvbuf(f, whole, _IOFBF, sizeof whole);
    fprintf(
        f,
        "usage: [mpirun -np N] sparsetf-dist -m FILE (-p TEXT | -f FILE | --prompt-tokens IDS |\n"
        "                                    --prompts FILE | --serve [ADDR:]PORT) [options]\n"
        "\n"
        "Generates text with a sparse (or dense) Transformer LM. Under mpirun the layers are\n"
        "split across ranks (pipeline stages); rank 0 tokenises, samples and prints.\n"
        "\n"
        "Input:\n"
        "  -m, --model FILE     sparsetf model file (see sparsetf-gen)\n"
        "  -p, --prompt TEXT    prompt text (the model must embed a tokenizer); `-` reads it\n"
        "                       from standard input\n"
        "  -f, --file FILE      the whole file as one prompt text (several lines; `-`: stdin)\n"
        "  --prompt-tokens IDS  prompt as token ids, e.g. \"1 345 78\"\n"
        "  --prompts FILE       one text prompt per line, run as concurrent sessions (`-`:\n"
        "                       standard input)\n"
        "  --prompts-tokens FILE  one prompt of token ids per line, concurrent sessions\n"
        "  --eval FILE          instead of generating: log-perplexity of a UTF-8 text file,\n"
        "                       one paragraph per line (JSON on stdout; one process)\n");
    fputs("Serving (docs/server.md):\n"
          "  --serve [ADDR:]PORT  answer an OpenAI-style HTTP API on rank 0: /v1/completions,\n"
          "                       /v1/chat/completions, /v1/models, /health, /metrics; ADDR\n"
          "                       an IP address or localhost (default 127.0.0.1), PORT 0 =\n"
          "                       any free port;\n"
          "                       requests are sessions, --slots at once (default 16); the\n"
          "                       generation options below are the requests' defaults\n"
          "  --api-key KEY        require `Authorization: Bearer KEY` (or $SPARSETF_API_KEY)\n"
          "  --max-queue N        requests waiting for a slot before 429 (default 64)\n"
          "  --max-body BYTES     request body limit (default 1048576)\n"
          "  --client-timeout S   drop a client idle for S seconds (default 30)\n",
          f);
    fprintf(
        f,
        "Generation:\n"
        "  -n, --max-tokens N   tokens to generate (default 64); stops early at end-of-text\n"
        "  --temperature T      0 = greedy (default 0.8)\n"
        "  --top-k K            keep the K most likely tokens, 0 = off (default 40)\n"
        "  --top-p P            nucleus filter in (0, 1], 1 = off (default 0.95)\n"
        "  --repeat-penalty P   divide the logits of tokens among the last N (positive; negative\n"
        "                       ones are multiplied) by P before sampling; 1 = off (default)\n"
        "  --repeat-last-n N    the window of --repeat-penalty, prompt included (default 64)\n"
        "  --stop STR           end a session once its generated text contains STR (the text\n"
        "                       printed ends with it); up to 8; needs the model's tokenizer\n"
        "  -s, --seed S         sampling seed (default 42); session i (0-based, input order)\n"
        "                       samples with seed S + i\n"
        "  -c, --ctx N          KV cache positions (default: the model's max_seq_len)\n"
        "Output:\n"
        "  --print-tokens       print generated token ids (one line, space separated)\n"
        "                       Output streams as tokens are sampled; with several sessions\n"
        "                       every line starts with \"[i] \" (i: the session's index)\n"
        "  --output-json        instead of text: one JSON object per session and line, when it\n"
        "                       ends: {\"session\", \"text\" (the continuation; null without\n"
        "                       a tokenizer), \"ids\", \"prompt_tokens\", \"end\" (length, eos,\n"
        "                       stop), \"first_token_ms\", \"ms_per_token\"}\n"
        "  --stats-json FILE    write latency, per-rank time and traffic as JSON, with each\n"
        "                       rank's per-token split (ms): compute, pack_unpack, send,\n"
        "                       wait, collectives\n"
        "  --dump-logits FILE   write every computed logit row as raw little-endian f32\n"
        "  --quiet              no summary on stderr\n"
        "  --journal DIR        survive a crash: rank 0 records each session's prompt,\n"
        "                       sampling state and tokens in DIR/journal as they are made;\n"
        "                       run the same command again after a failure and finished\n"
        "                       sessions are replayed, unfinished ones resume where the\n"
        "                       journal ends, the output the same as an uninterrupted run's\n"
        "                       (launch/local.sh --restart N reruns by itself;\n"
        "                       docs/reliability.md)\n"
        "Engine:\n"
        "  -t, --threads N      compute threads per rank (default 1; results do not depend on it)\n"
        "  --kernels fast|ref   kernel implementation (default fast; ref is for checking)\n"
        "  --verify             check every tensor checksum at load\n"
        "  --plan               print the grid and layer plan per rank and exit\n"
        "  --ranks N            with --plan outside mpirun: plan for N ranks\n"
        "  --balance memory|time  split layers for equal weight bytes per rank (default) or\n"
        "                       equal estimated time per token (throughput)\n"
        "  --tp T               ranks per stage that split its layers (default: chosen)\n"
        "Pipeline:\n"
        "  --slots N            cache slots per rank (default: one per session, max 16);\n"
        "                       when sessions outnumber slots, the least recently used is\n"
        "                       evicted and later recomputed\n"
        "  --prefill-chunk N    prompt positions per prefill frame (default 32)\n"
        "  --timeout S          seconds to wait for a peer before failing the job (default 60)\n"
        "  --local              the whole model in this process, without MPI (even under\n"
        "                       mpirun)\n"
        "  --fault-inject SPEC  TESTING ONLY: kill-rank=R,after=T | stall-rank=R,after=T |\n"
        "                       corrupt-frame=R,after=T | bad-directive=R,after=T |\n"
        "                       nan-rows=R,after=T\n"
        "                       (also read from $STF_FAULT_INJECT; see docs/protocol.md)\n"
        "  -h, --help           this text;  --version  the version\n");
}

static enum stf_status parse_u32(const char *opt, const char *s, uint32_t *out,
                                 struct stf_error *err)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > 0xffffffffUL)
        return stf_fail(err, STF_ERR_ARG, "%s expects a non-negative integer, got `%s`", opt, s);
    *out = (uint32_t)v;
    return STF_OK;
}

static enum stf_status parse_float(const char *opt, const char *s, float *out,
                                   struct stf_error *err)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return stf_fail(err, STF_ERR_ARG, "%s expects a number, got `%s`", opt, s);
    *out = (float)v;
    return STF_OK;
}

enum stf_status dist_options_parse(struct dist_options *o, int argc, char **argv, bool *exit_now,
                                   bool print, struct stf_error *err)
{
    memset(o, 0, sizeof *o);
    *exit_now = false;
    o->max_tokens = 64;
    o->run.threads = 1;
    o->run.kernels = "fast";
    o->run.prefill_chunk = 32;
    o->run.timeout = 60;
    o->run.fault_inject = getenv("STF_FAULT_INJECT");
    float timeout = 60;
    o->max_queue = 64;
    o->max_body = 1u << 20;
    o->client_timeout = 30;
    o->api_key = getenv("SPARSETF_API_KEY");
    if (o->api_key && !o->api_key[0]) o->api_key = NULL;
    o->sampling = (struct sampler_params){.temperature = 0.8f,
                                          .top_k = 40,
                                          .top_p = 0.95f,
                                          .seed = 42,
                                          .repeat_penalty = 1.0f,
                                          .repeat_last_n = 64};
    enum {
        OPT_MODEL = 256,
        OPT_SERVE,
        OPT_API_KEY,
        OPT_MAX_QUEUE,
        OPT_MAX_BODY,
        OPT_CLIENT_TIMEOUT,
        OPT_PROMPT,
        OPT_PROMPT_TOKENS,
        OPT_PROMPTS,
        OPT_MAX_TOKENS,
        OPT_TEMP,
        OPT_TOPK,
        OPT_TOPP,
        OPT_SEED,
        OPT_CTX,
        OPT_PRINT_TOKENS,
        OPT_STATS,
        OPT_DUMP,
        OPT_QUIET,
        OPT_THREADS,
        OPT_KERNELS,
        OPT_VERIFY,
        OPT_PLAN,
        OPT_VERSION,
        OPT_PROMPTS_TOKENS,
        OPT_LOCAL,
        OPT_RANKS,
        OPT_SLOTS,
        OPT_CHUNK,
        OPT_TIMEOUT,
        OPT_FAULT,
        OPT_BALANCE,
        OPT_TP,
        OPT_EVAL,
        OPT_FILE,
        OPT_STOP,
        OPT_OUTPUT_JSON,
        OPT_REPEAT_PENALTY,
        OPT_REPEAT_LAST_N,
        OPT_JOURNAL
    };
    static const struct option opts[] = {
        {"model", required_argument, 0, OPT_MODEL},
        {"serve", required_argument, 0, OPT_SERVE},
        {"api-key", required_argument, 0, OPT_API_KEY},
        {"max-queue", required_argument, 0, OPT_MAX_QUEUE},
        {"max-body", required_argument, 0, OPT_MAX_BODY},
        {"client-timeout", required_argument, 0, OPT_CLIENT_TIMEOUT},
        {"prompt", required_argument, 0, OPT_PROMPT},
        {"prompt-tokens", required_argument, 0, OPT_PROMPT_TOKENS},
        {"prompts", required_argument, 0, OPT_PROMPTS},
        {"max-tokens", required_argument, 0, OPT_MAX_TOKENS},
        {"temperature", required_argument, 0, OPT_TEMP},
        {"top-k", required_argument, 0, OPT_TOPK},
        {"top-p", required_argument, 0, OPT_TOPP},
        {"seed", required_argument, 0, OPT_SEED},
        {"ctx", required_argument, 0, OPT_CTX},
        {"print-tokens", no_argument, 0, OPT_PRINT_TOKENS},
        {"stats-json", required_argument, 0, OPT_STATS},
        {"dump-logits", required_argument, 0, OPT_DUMP},
        {"quiet", no_argument, 0, OPT_QUIET},
        {"threads", required_argument, 0, OPT_THREADS},
        {"kernels", required_argument, 0, OPT_KERNELS},
        {"verify", no_argument, 0, OPT_VERIFY},
        {"plan", no_argument, 0, OPT_PLAN},
        {"version", no_argument, 0, OPT_VERSION},
        {"prompts-tokens", required_argument, 0, OPT_PROMPTS_TOKENS},
        {"local", no_argument, 0, OPT_LOCAL},
        {"ranks", required_argument, 0, OPT_RANKS},
        {"slots", required_argument, 0, OPT_SLOTS},
        {"prefill-chunk", required_argument, 0, OPT_CHUNK},
        {"timeout", required_argument, 0, OPT_TIMEOUT},
        {"fault-inject", required_argument, 0, OPT_FAULT},
        {"balance", required_argument, 0, OPT_BALANCE},
        {"tp", required_argument, 0, OPT_TP},
        {"eval", required_argument, 0, OPT_EVAL},
        {"file", required_argument, 0, OPT_FILE},
        {"stop", required_argument, 0, OPT_STOP},
        {"output-json", no_argument, 0, OPT_OUTPUT_JSON},
        {"repeat-penalty", required_argument, 0, OPT_REPEAT_PENALTY},
        {"repeat-last-n", required_argument, 0, OPT_REPEAT_LAST_N},
        {"journal", required_argument, 0, OPT_JOURNAL},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int ch;
    enum stf_status st = STF_OK;
    uint32_t u = 0;
    /* the short flags llama.cpp users type: -m -p -f -n -t -c -s */
    while ((ch = getopt_long(argc, argv, ":hm:p:f:n:t:c:s:", opts, NULL)) != -1 && !st) {
        switch (ch) {
        case 'm':
        case OPT_MODEL:
            o->run.model_path = optarg;
            break;
        case 'p':
        case OPT_PROMPT:
            if (strcmp(optarg, "-") == 0)
                o->prompt_file = optarg;
            else
                o->prompt = optarg;
            break;
        case 'f':
        case OPT_FILE:
            o->prompt_file = optarg;
            break;
        case OPT_PROMPT_TOKENS:
            o->prompt_tokens = optarg;
            break;
        case OPT_PROMPTS:
            o->prompts_file = optarg;
            break;
        case 'n':
        case OPT_MAX_TOKENS:
            st = parse_u32("--max-tokens", optarg, &o->max_tokens, err);
            break;
        case OPT_TEMP:
            st = parse_float("--temperature", optarg, &o->sampling.temperature, err);
            break;
        case OPT_TOPK:
            st = parse_u32("--top-k", optarg, &o->sampling.top_k, err);
            break;
        case OPT_TOPP:
            st = parse_float("--top-p", optarg, &o->sampling.top_p, err);
            break;
        case 's':
        case OPT_SEED:
            st = parse_u32("--seed", optarg, &u, err);
            o->sampling.seed = u;
            break;
        case 'c':
        case OPT_CTX:
            st = parse_u32("--ctx", optarg, &o->run.ctx, err);
            if (!st && o->run.ctx == 0)
                st = stf_fail(err, STF_ERR_ARG,
                              "--ctx must be at least 1 (leave it out for the model's "
                              "max_seq_len)");
            break;
        case OPT_STOP:
            if (o->n_stops == DIST_MAX_STOPS)
                st = stf_fail(err, STF_ERR_ARG, "at most %d --stop strings", DIST_MAX_STOPS);
            else if (!*optarg)
                st = stf_fail(err, STF_ERR_ARG, "--stop needs a non-empty string");
            else
                o->stops[o->n_stops++] = optarg;
            break;
        case OPT_OUTPUT_JSON:
            o->output_json = true;
            break;
        case OPT_REPEAT_PENALTY:
            st = parse_float("--repeat-penalty", optarg, &o->sampling.repeat_penalty, err);
            break;
        case OPT_REPEAT_LAST_N:
            st = parse_u32("--repeat-last-n", optarg, &o->sampling.repeat_last_n, err);
            break;
        case OPT_JOURNAL:
            if (!*optarg) st = stf_fail(err, STF_ERR_ARG, "--journal needs a directory");
            o->journal = optarg;
            break;
        case OPT_PRINT_TOKENS:
            o->print_tokens = true;
            break;
        case OPT_STATS:
            o->stats_json = optarg;
            break;
        case OPT_DUMP:
            o->dump_logits = optarg;
            break;
        case OPT_QUIET:
            o->quiet = true;
            break;
        case 't':
        case OPT_THREADS:
            st = parse_u32("--threads", optarg, &u, err);
            if (!st && (u < 1 || u > 256))
                st = stf_fail(err, STF_ERR_ARG, "--threads must be in 1..256, got %u", u);
            o->run.threads = (int)u;
            break;
        case OPT_KERNELS:
            if (strcmp(optarg, "fast") && strcmp(optarg, "ref"))
                st = stf_fail(err, STF_ERR_ARG, "--kernels must be `fast` or `ref`, got `%s`",
                              optarg);
            o->run.kernels = optarg;
            break;
        case OPT_VERIFY:
            o->run.verify = true;
            break;
        case OPT_PLAN:
            o->plan_only = true;
            break;
        case OPT_PROMPTS_TOKENS:
            o->prompts_tokens_file = optarg;
            break;
        case OPT_LOCAL:
            o->local = true;
            break;
        case OPT_BALANCE:
            if (strcmp(optarg, "memory") == 0)
                o->run.balance = PLAN_BALANCE_MEMORY;
            else if (strcmp(optarg, "time") == 0)
                o->run.balance = PLAN_BALANCE_TIME;
            else
                st = stf_fail(err, STF_ERR_ARG, "--balance must be `memory` or `time`, got `%s`",
                              optarg);
            break;
        case OPT_SERVE:
            o->serve = optarg;
            break;
        case OPT_API_KEY:
            o->api_key = optarg;
            break;
        case OPT_MAX_QUEUE:
            st = parse_u32("--max-queue", optarg, &o->max_queue, err);
            if (!st && o->max_queue > 65536)
                st = stf_fail(err, STF_ERR_ARG, "--max-queue must be in 0..65536, got %u",
                              o->max_queue);
            break;
        case OPT_MAX_BODY:
            st = parse_u32("--max-body", optarg, &o->max_body, err);
            if (!st && (o->max_body < 1024 || o->max_body > (1u << 30)))
                st = stf_fail(err, STF_ERR_ARG, "--max-body must be in 1024..%u bytes, got %u",
                              1u << 30, o->max_body);
            break;
        case OPT_CLIENT_TIMEOUT:
            st = parse_u32("--client-timeout", optarg, &o->client_timeout, err);
            if (!st && (o->client_timeout < 1 || o->client_timeout > 86400))
                st = stf_fail(err, STF_ERR_ARG, "--client-timeout must be in 1..86400 s, got %u",
                              o->client_timeout);
            break;
        case OPT_TP:
            st = parse_u32("--tp", optarg, &o->run.tp, err);
            if (!st && o->run.tp < 1) st = stf_fail(err, STF_ERR_ARG, "--tp must be at least 1");
            break;
        case OPT_EVAL:
            o->eval_file = optarg;
            break;
        case OPT_RANKS:
            st = parse_u32("--ranks", optarg, &o->plan_ranks, err);
            if (!st && o->plan_ranks < 1)
                st = stf_fail(err, STF_ERR_ARG, "--ranks must be at least 1");
            break;
        case OPT_SLOTS:
            st = parse_u32("--slots", optarg, &o->run.slots, err);
            if (!st && (o->run.slots < 1 || o->run.slots > 4096))
                st = stf_fail(err, STF_ERR_ARG, "--slots must be in 1..4096, got %u", o->run.slots);
            break;
        case OPT_CHUNK:
            st = parse_u32("--prefill-chunk", optarg, &o->run.prefill_chunk, err);
            if (!st && (o->run.prefill_chunk < 1 || o->run.prefill_chunk > 4096))
                st = stf_fail(err, STF_ERR_ARG, "--prefill-chunk must be in 1..4096, got %u",
                              o->run.prefill_chunk);
            break;
        case OPT_TIMEOUT:
            st = parse_float("--timeout", optarg, &timeout, err);
            if (!st && !(timeout > 0))
                st = stf_fail(err, STF_ERR_ARG, "--timeout must be positive, got %s", optarg);
            o->run.timeout = timeout;
            break;
        case OPT_FAULT:
            o->run.fault_inject = optarg;
            break;
        case OPT_VERSION:
            if (print) printf("sparsetf-dist %s\n", PROJECT_VERSION);
            *exit_now = true;
            return STF_OK;
        case 'h':
            if (print) dist_options_usage(stdout);
            *exit_now = true;
            return STF_OK;
        case ':':
            return stf_fail(err, STF_ERR_ARG, "option `%s` needs a value", argv[optind - 1]);
        default:
            return stf_fail(err, STF_ERR_ARG, "unknown option `%s` (see --help)", argv[optind - 1]);
        }
    }
    if (st) return st;
    if (optind < argc)
        return stf_fail(err, STF_ERR_ARG, "unexpected argument `%s` (see --help)", argv[optind]);
    if (!o->run.model_path)
        return stf_fail(err, STF_ERR_ARG, "--model FILE is required (see --help)");
    int n_inputs = !!o->prompt + !!o->prompt_file + !!o->prompt_tokens + !!o->prompts_file +
                   !!o->prompts_tokens_file;
    if (o->output_json && o->print_tokens)
        return stf_fail(err, STF_ERR_ARG, "--output-json already has the ids: drop --print-tokens");
    if (o->plan_ranks && !o->plan_only)
        return stf_fail(err, STF_ERR_ARG,
                        "--ranks N only applies to --plan (under mpirun the rank count is -np)");
    if (o->journal && (o->serve || o->eval_file || o->plan_only))
        return stf_fail(err, STF_ERR_ARG,
                        "--journal records generation jobs: not with --serve, --eval or --plan");
    const char *input = o->prompt_file    ? o->prompt_file
                        : o->prompts_file ? o->prompts_file
                                          : o->prompts_tokens_file;
    if (o->journal && input && strcmp(input, "-") == 0)
        return stf_fail(err, STF_ERR_ARG,
                        "--journal needs the prompts in a file or on the command line: standard "
                        "input cannot be read again when the job restarts");
    if (o->serve && (n_inputs || o->eval_file || o->dump_logits || o->print_tokens))
        return stf_fail(err, STF_ERR_ARG,
                        "--serve takes its prompts over HTTP: no --prompt*, --eval, "
                        "--dump-logits or --print-tokens");
    if (o->serve) {
        char addr[256];
        uint16_t port;
        enum stf_status lst = serve_parse_listen(o->serve, addr, sizeof addr, &port, err);
        if (lst) return lst;
        return sampler_params_check(&o->sampling, err);
    }
    if (o->eval_file && n_inputs)
        return stf_fail(err, STF_ERR_ARG, "--eval FILE takes no prompt options");
    if (!o->plan_only && !o->eval_file && n_inputs != 1)
        return stf_fail(err, STF_ERR_ARG,
                        "give exactly one of --prompt (-p), --file (-f), --prompt-tokens, "
                        "--prompts or --prompts-tokens");
    return sampler_params_check(&o->sampling, err);
}
