#!/usr/bin/env bash
# cluster/sim-rsh.sh: the remote-shell agent of cluster/sim-cluster.sh (what ssh is to a
# real cluster): `sim-rsh.sh HOST COMMAND...` runs COMMAND on simulated host HOST.
#
# Open MPI calls it through `--mca plm_rsh_agent` (the env file of `sim-cluster.sh up` sets
# that in MPIRUN_FLAGS). Like ssh, it joins the command words and runs them with /bin/sh in
# a fresh environment, but inside HOST's network namespace, with HOST as the host name (its
# own UTS namespace), its own /tmp and /dev/shm (bind mounts of the host's directories in
# the state directory, in a private mount namespace) and /etc/hosts naming every simulated
# host. The simulation's one-way link delay reaches the ranks as STF_SIM_LINK_DELAY_US.
set -euo pipefail
state=${STF_SIM_DIR:-/run/sparsetf-sim}
# /tmp is mounted last: the state directory may itself lie under /tmp
# ssh-style options before the host name (none are needed here) are skipped
while [ $# -gt 0 ] && [[ $1 == -* ]]; do shift; done
[ $# -ge 2 ] || {
    echo "sim-rsh: usage: sim-rsh.sh HOST COMMAND..." >&2
    exit 255
}
host=$1
shift
if [ ! -d "$state/$host" ] || ! ip netns list | awk '{print $1}' | grep -qx "$host"; then
    echo "sim-rsh: $host is not a simulated host (cluster/sim-cluster.sh status)" >&2
    exit 255
fi
delay=0
[ -f "$state/link-delay-us" ] && delay=$(cat "$state/link-delay-us")
# The repository (binaries, launchers, bundled models) plays the cluster's shared file
# system: when it lies under /tmp it stays visible in the host's own /tmp. Its physical
# path: a directory that reaches it through symbolic links (a scratch copy of the tree, as
# the doc test makes) must not become the share, or the links would point outside it.
repo=$(cd -P "$(dirname "$0")/.." && pwd -P)
share=""
case $repo in /tmp/?*) share=${repo#/tmp/} && mkdir -p "$state/$host/tmp/$share" ;; esac
# shellcheck disable=SC2016 # the inner script expands its own arguments
exec ip netns exec "$host" unshare --uts --mount --propagation private \
    env -i PATH="$PATH" HOME="${HOME:-/root}" LANG="${LANG:-C.UTF-8}" \
    STF_SIM_LINK_DELAY_US="${delay:-0}" STF_SIM_HOST="$host" \
    /bin/sh -c 'hostname "$1" &&
        mount --bind "$2/$1/shm" /dev/shm &&
        mount --bind "$2/etc-hosts" /etc/hosts &&
        { [ -z "$3" ] || mount --bind "/tmp/$3" "$2/$1/tmp/$3"; } &&
        mount --rbind "$2/$1/tmp" /tmp || exit 255
        shift 3
        exec /bin/sh -c "$*"' sim-rsh "$host" "$state" "$share" "$@"
