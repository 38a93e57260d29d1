/* run: see run.h. */
#include "pipeline/run.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/eval.h"
#include "pipeline/local.h"
#include "pipeline/pipeline.h"
#include "pipeline/prompt.h"
#include "model/model_file.h"

/* Whether a launcher (Open MPI, MPICH/Hydra, Slurm PMI/PMIx) started this process. */
static bool launched_by_mpi(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

/* The plan for n_ranks, from the model's header alone (no weights are mapped). */
static enum stf_status make_plan(const struct dist_options *o, uint32_t n_ranks, uint32_t slots,
                                 struct dist_plan *plan, struct stf_error *err)
{
    struct model_config cfg;
    enum stf_status st = model_read_config(o->model_path, &cfg, err);
    if (st) return st;
    uint32_t cap = o->ctx ? o->ctx : cfg.max_seq_len;
    if (cap > cfg.max_seq_len)
        return stf_fail(err, STF_ERR_ARG, "--ctx %u exceeds the model's max_seq_len %u", cap,
                        cfg.max_seq_len);
    uint32_t rows = o->prefill_chunk < cap ? o->prefill_chunk : cap;
    return plan_make(&cfg, n_ranks, slots, cap, rows, o->balance, plan, err);
}

static enum stf_status print_plan(const struct dist_options *o, uint32_t n_ranks,
                                  struct stf_error *err)
{
    struct dist_plan plan;
    enum stf_status st = make_plan(o, n_ranks, o->slots ? o->slots : 1, &plan, err);
    if (st) return st;
    plan_print(stdout, &plan, o->model_path);
    plan_free(&plan);
    return STF_OK;
}

static uint32_t slots_for(const struct dist_options *o, uint32_t sessions)
{
    return o->slots ? o->slots : (sessions < 16 ? sessions : 16);
}

/* Rank 0 counts the sessions (every rank needs the same slot count). */
static enum stf_status count_sessions(const struct dist_options *o, uint32_t *n,
                                      struct stf_error *err)
{
    *n = 1;
    const char *path = o->prompts_file ? o->prompts_file : o->prompts_tokens_file;
    if (!path) return STF_OK;
    char **lines;
    enum stf_status st = prompt_read_lines(path, &lines, n, err);
    if (!st) prompt_lines_free(lines, *n);
    return st;
}

enum stf_status dist_run(const struct dist_options *o, int *argc, char ***argv,
                         struct stf_error *err)
{
    if (o->eval_file) {
        /* one process: the launcher's environment tells whether mpirun started several */
        const char *size = getenv("OMPI_COMM_WORLD_SIZE");
        if (size && atoi(size) > 1)
            return stf_fail(err, STF_ERR_ARG,
                            "--eval runs on one process; start it without "
                            "mpirun (or with -np 1)");
        return dist_eval(o, err);
    }
    if (o->local) {
        if (o->plan_only) return print_plan(o, o->plan_ranks ? o->plan_ranks : 1, err);
        return dist_run_local(o, err);
    }
    /* Started without mpirun/srun: one rank, and no MPI runtime to start (a singleton MPI
     * start costs ~0.5 s and a daemon); the same pipeline code runs on a loopback endpoint. */
    const bool mpi = launched_by_mpi();
    struct transport *t = NULL;
    enum stf_status st =
        mpi ? transport_mpi_init(argc, argv, &t, err) : transport_loopback_create(1, &t, err);
    if (st) return st;
    int rank = transport_rank(t), size = transport_size(t);
    if (o->plan_only) {
        if (rank == 0) st = print_plan(o, o->plan_ranks ? o->plan_ranks : (uint32_t)size, err);
        transport_close(t);
        if (mpi) transport_mpi_finalize();
        return rank == 0 ? st : STF_OK;
    }
    struct pipe p = {.t = t, .rank = rank, .size = size, .o = o};
    /* the job header: the session count, from rank 0 */
    uint32_t header[2] = {0, 0};
    if (rank == 0) {
        /* errors every rank would hit alike (prompts, model header, plan) are found here
         * once, so they are printed once */
        struct dist_plan plan;
        st = count_sessions(o, &header[0], err);
        if (!st && !(st = make_plan(o, (uint32_t)size, slots_for(o, header[0]), &plan, err)))
            plan_free(&plan);
        header[1] = st == STF_OK;
    }
    struct stf_error bcast_err;
    if (transport_bcast(t, 0, header, sizeof header, &bcast_err)) pipe_fail(&p, &bcast_err);
    if (!header[1]) {
        /* every rank stops; rank 0 returns its message */
        transport_close(t);
        if (mpi) transport_mpi_finalize();
        return rank == 0 ? st : STF_ERR_ARG;
    }
    if ((st = pipe_open(&p, o, t, slots_for(o, header[0]), err))) pipe_fail(&p, err);
    st = rank == 0 ? coordinator_run(&p, err) : stage_run(&p, err);
    if (st) pipe_fail(&p, err);
    pipe_close(&p);
    transport_close(t);
    if (mpi) transport_mpi_finalize();
    return STF_OK;
}
