/*
 * sparsetf-dist: generate text with a sparse Transformer LM, on one process or (under
 * mpirun) as a pipeline of ranks. See `sparsetf-dist --help`.
 */
#include <stdio.h>

#include "dist/local.h"
#include "dist/options.h"

int main(int argc, char **argv)
{
    struct dist_options o;
    struct stf_error err = {0};
    bool exit_now;
    if (dist_options_parse(&o, argc, argv, &exit_now, true, &err)) {
        fprintf(stderr, "sparsetf-dist: %s\n", err.msg);
        return 2;
    }
    if (exit_now)
        return 0;
    if (dist_run_local(&o, &err)) {
        fprintf(stderr, "sparsetf-dist: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
