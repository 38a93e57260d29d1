#!/usr/bin/env bash
# launch/hostfile.sh: run sparsetf-dist across the hosts of an Open MPI hostfile.
#
#   launch/hostfile.sh -f cluster/hosts.example -n 8 [-t THREADS] [-b BUILD_DIR] -- \
#       --model /shared/models/17b-sparse.stf --prompt "..."
#
# Every host needs the same build path and the model file at the same path (a shared or
# copied file system). Each rank maps only its own layers, so a host needs memory for its
# ranks' share (see `sparsetf-dist --model M --plan --ranks N`). Ranks are placed by slot in
# hostfile order, so rank 0 (embedding, head, sampler) lands on the first host. Check the
# hosts first with cluster/node-check.sh. Extra mpirun flags: $MPIRUN_FLAGS (e.g. the
# network interface: --mca btl_tcp_if_include eth0).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hostfile="" n="" threads=1 build=${STF_BUILD_DIR:-$here/../build}
while [ $# -gt 0 ]; do
    case $1 in
    -f) hostfile=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    -b) build=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    *) echo "hostfile.sh: unknown option $1 (see -h)" >&2; exit 2 ;;
    esac
done
[ -n "$hostfile" ] && [ -r "$hostfile" ] || { echo "hostfile.sh: -f HOSTFILE is required" >&2; exit 2; }
dist=$build/src/tools/sparsetf-dist
flags=(--hostfile "$hostfile" --map-by slot --bind-to core --mca mpi_yield_when_idle 1
       -x OPENBLAS_NUM_THREADS="$threads" -x OMP_NUM_THREADS="$threads")
[ -n "$n" ] && flags+=(-n "$n")
if [ "$threads" -gt 1 ]; then
    flags=("${flags[@]/--bind-to/}")
    flags=("${flags[@]/core/}")
    flags+=(--map-by "slot:PE=$threads" --bind-to core)
fi
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# shellcheck disable=SC2086
exec mpirun "${flags[@]}" ${MPIRUN_FLAGS:-} "$dist" --threads "$threads" "$@"
