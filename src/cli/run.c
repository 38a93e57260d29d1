/* run: see run.h. */
#include "cli/run.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/eval.h"
#include "cli/generate.h"
#include "server/serve.h"
#include "pipeline/engine.h"
#include "pipeline/prompt.h"

/* Whether a launcher (Open MPI, MPICH/Hydra, Slurm PMI/PMIx) started this process. */
static bool launched_by_mpi(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

static enum stf_status print_plan(const struct dist_options *o, uint32_t n_ranks,
                                  struct stf_error *err)
{
    struct run_config rc;
    enum stf_status st = run_config_resolve(&o->run, n_ranks, 1, &rc, err);
    if (st) return st;
    plan_print(stdout, &rc.plan, rc.model_path);
    run_config_free(&rc);
    return STF_OK;
}

/* --serve on rank 0: the engine under the HTTP server until a signal or a failure. */
static enum stf_status serve_front(const struct dist_options *o, const struct run_config *rc,
                                   struct transport *t, struct stf_error *err)
{
    struct engine *e = NULL;
    const struct engine_report *r = NULL;
    struct serve_options so = {.listen = o->serve,
                               .api_key = o->api_key,
                               .max_queue = o->max_queue,
                               .max_body = o->max_body,
                               .max_prompt_bytes = 65536,
                               .client_timeout = o->client_timeout,
                               .default_max_tokens = o->max_tokens,
                               .defaults = o->sampling,
                               .model_path = rc->model_path,
                               .n_ranks = (int)rc->n_ranks,
                               .slots = rc->n_slots,
                               .ctx = rc->ctx,
                               .quiet = o->quiet};
    enum stf_status st = engine_open(rc, t, &e, err);
    if (!st) st = serve_run(e, &so, err);
    if (!st) st = engine_finish(e, &r, err);
    if (!st && !o->quiet && r) {
        fprintf(stderr,
                "sparsetf-dist: served %llu sessions, %llu tokens on %d rank%s; decode latency "
                "median %.3f ms, p90 %.3f ms\n",
                (unsigned long long)r->sessions, (unsigned long long)r->generated_tokens,
                r->n_ranks, r->n_ranks == 1 ? "" : "s", 1e3 * r->latency_median_s,
                1e3 * r->latency_p90_s);
        for (int i = 0; i < r->n_ranks; i++)
            fprintf(stderr, "  rank %d (%s): layers [%u, %u), compute %.3f s, wait %.3f s\n",
                    r->ranks[i].rank, r->ranks[i].host, r->ranks[i].layer_begin,
                    r->ranks[i].layer_end, r->ranks[i].compute_s, r->ranks[i].wait_s);
    }
    /* the stages of a multi-rank job wait for rank 0: a failure here ends the job */
    if (st && transport_size(t) > 1) engine_abort(t, err);
    engine_close(e);
    return st;
}

/* The prompts, read once (a --prompts file may be a pipe): one line each. */
static enum stf_status read_prompts(const struct dist_options *o, char ***lines, uint32_t *n,
                                    struct stf_error *err)
{
    const char *path = o->prompts_file ? o->prompts_file : o->prompts_tokens_file;
    if (path) return prompt_read_lines(path, lines, n, err);
    if (o->prompt_file) {
        char *text;
        enum stf_status st = prompt_read_text(o->prompt_file, &text, err);
        if (st) return st;
        if (!(*lines = calloc(1, sizeof **lines))) {
            free(text);
            return stf_fail(err, STF_ERR_NOMEM, "out of memory");
        }
        (*lines)[0] = text;
        *n = 1;
        return STF_OK;
    }
    *n = 1;
    if (!(*lines = calloc(1, sizeof **lines)) ||
        !((*lines)[0] = strdup(o->prompt ? o->prompt : o->prompt_tokens))) {
        free(*lines);
        *lines = NULL;
        return stf_fail(err, STF_ERR_NOMEM, "out of memory");
    }
    return STF_OK;
}

enum stf_status dist_run(const struct dist_options *o, int *argc, char ***argv,
                         struct stf_error *err)
{
    struct run_config rc;
    enum stf_status st;
    if (o->eval_file) {
        /* one process: the launcher's environment tells whether mpirun started several */
        const char *size = getenv("OMPI_COMM_WORLD_SIZE");
        if (size && atoi(size) > 1)
            return stf_fail(err, STF_ERR_ARG,
                            "--eval runs on one process; start it without "
                            "mpirun (or with -np 1)");
        if ((st = run_config_resolve(&o->run, 1, 1, &rc, err))) return st;
        st = dist_eval(o, &rc, err);
        run_config_free(&rc);
        return st;
    }
    if (o->local && o->plan_only) return print_plan(o, o->plan_ranks ? o->plan_ranks : 1, err);
    /* --local, or started without mpirun/srun: one rank, and no MPI runtime to start (a
     * singleton MPI start costs ~0.5 s and a daemon); the engine runs on a loopback endpoint. */
    const bool mpi = !o->local && launched_by_mpi();
    struct transport *t = NULL;
    st = mpi ? transport_mpi_init(argc, argv, &t, err) : transport_loopback_create(1, &t, err);
    if (st) return st;
    int rank = transport_rank(t), size = transport_size(t);
    if (o->plan_only) {
        if (rank == 0) st = print_plan(o, o->plan_ranks ? o->plan_ranks : (uint32_t)size, err);
        transport_close(t);
        if (mpi) transport_mpi_finalize();
        return rank == 0 ? st : STF_OK;
    }
    /* Rank 0 reads the prompts and resolves the configuration (model header, ctx, plan);
     * errors every rank would hit alike are found here once, so they are printed once. The
     * job header tells the others whether to go on and the slot count (it depends on the
     * number of prompts, which only rank 0 reads). */
    char **lines = NULL;
    uint32_t n_lines = 0;
    uint32_t header[2] = {0, 0}; /* slots, ok */
    if (rank == 0) {
        if (!o->serve) st = read_prompts(o, &lines, &n_lines, err);
        if (!st) st = run_config_resolve(&o->run, (uint32_t)size, n_lines, &rc, err);
        if (!st) header[0] = rc.n_slots;
        header[1] = st == STF_OK;
    }
    struct stf_error bcast_err;
    if (size > 1 && transport_bcast(t, 0, header, sizeof header, &bcast_err))
        engine_abort(t, &bcast_err);
    if (header[1] && rank != 0) {
        struct run_settings s = o->run;
        s.slots = header[0];
        if ((st = run_config_resolve(&s, (uint32_t)size, 0, &rc, err))) engine_abort(t, err);
    }
    if (header[1]) {
        /* serving, only rank 0 reacts to SIGINT/SIGTERM (mpirun forwards them to every rank):
         * it answers what is open, then ends the stages with the shutdown frame */
        if (o->serve && rank != 0) {
            signal(SIGINT, SIG_IGN);
            signal(SIGTERM, SIG_IGN);
        }
        st = rank != 0  ? engine_run_stage(&rc, t, err)
             : o->serve ? serve_front(o, &rc, t, err)
                        : generate_run(o, &rc, t, lines, n_lines, err);
        run_config_free(&rc);
    } else {
        /* A start-up error every rank now agrees on. Rank 0 prints it before any rank may
         * exit: a rank that exits non-zero makes mpirun kill the others at once, and rank 0
         * would often die before its message is out. */
        if (rank == 0) {
            fprintf(stderr, "sparsetf-dist: error: %s\n", err->msg);
            fflush(stderr);
            err->msg[0] = 0; /* printed */
        } else {
            st = STF_ERR_ARG; /* rank 0 reports the job's error */
        }
        struct stf_error ignored;
        if (size > 1) transport_barrier(t, &ignored);
    }
    prompt_lines_free(lines, n_lines);
    transport_close(t);
    if (mpi) transport_mpi_finalize();
    return st;
}

void dist_report_usage_error(int *argc, char ***argv, const struct stf_error *e)
{
    if (!launched_by_mpi()) {
        fprintf(stderr, "sparsetf-dist: %s\n", e->msg);
        return;
    }
    struct transport *t = NULL;
    struct stf_error ignored;
    if (transport_mpi_init(argc, argv, &t, &ignored)) {
        fprintf(stderr, "sparsetf-dist: %s\n", e->msg); /* every rank: better twice than never */
        return;
    }
    if (transport_rank(t) == 0) {
        fprintf(stderr, "sparsetf-dist: %s\n", e->msg);
        fflush(stderr);
    }
    transport_barrier(t, &ignored);
    transport_close(t);
    transport_mpi_finalize();
}
