#!/usr/bin/env sh
# bench/scaling/pin-rank.sh COMMAND...: runs COMMAND on one core, core (rank mod cores), the
# rank read from Open MPI's OMPI_COMM_WORLD_RANK (0 outside mpirun). For the validation runs
# of bench/scaling/validate.sh: one rank per core, as the latency model assumes.
r=${OMPI_COMM_WORLD_RANK:-0}
exec taskset -c "$((r % $(nproc --all)))" "$@"
