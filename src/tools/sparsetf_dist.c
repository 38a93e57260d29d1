/*
 * sparsetf-dist: generate text with a sparse Transformer LM, on one process or (under
 * mpirun) as a pipeline of ranks: `mpirun -np 8 sparsetf-dist --model M --prompt "..."`.
 * See `sparsetf-dist --help`, docs/architecture.md and docs/protocol.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/options.h"
#include "kernels/kernels.h"
#include "cli/run.h"

/* Before MPI is up, only the launcher's environment tells a rank apart: print argument
 * errors once, from the first rank. */
static int first_rank(void)
{
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    if (!r) r = getenv("PMI_RANK");
    return !r || strcmp(r, "0") == 0;
}

int main(int argc, char **argv)
{
    kernels_prepare_process(argv);
    struct dist_options o;
    struct stf_error err = {0};
    bool exit_now;
    if (dist_options_parse(&o, argc, argv, &exit_now, first_rank(), &err)) {
        dist_report_usage_error(&argc, &argv, &err);
        return 2;
    }
    if (exit_now) return 0;
    if (dist_run(&o, &argc, &argv, &err)) {
        /* ranks other than 0 stop silently on errors rank 0 reports for the job */
        if (err.msg[0]) fprintf(stderr, "sparsetf-dist: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
