#!/usr/bin/env bash
# cluster/sim-cluster.sh: a cluster of N simulated hosts on this machine, for trying and
# testing the launchers across hosts (root only: it creates network namespaces).
#
#   cluster/sim-cluster.sh up N [--link 1gbit|10gbit|25gbit|RATE,DELAY]
#   cluster/sim-cluster.sh down
#   cluster/sim-cluster.sh status
#
# `up` makes N network namespaces stf-sim1 … stf-simN, each joined to the bridge stf-simbr
# by a veth pair (addresses 10.211.0.1 … on 10.211.0.0/24, the bridge itself .254 so that
# mpirun on this machine reaches them). cluster/sim-rsh.sh is the remote-shell agent: it
# enters a host's namespace with its own host name, its own /tmp and its own /dev/shm (so
# Open MPI cannot use shared memory between simulated hosts), and runs the command there.
# `up` writes a hostfile (one slot per host) and an env file with the MPIRUN_FLAGS that
# route Open MPI through the agent over TCP only, and prints both paths. It first removes
# whatever an earlier `up` left (after a crash too), so it can always be run again.
# `down` removes every namespace, link, mount and file that `up` made.
#
# Links: --link sets each host's link rate, shaped with a tbf qdisc on both ends of its
# veth pair (default 10gbit). This kernel's tc has no netem, so the one-way DELAY is not
# added by the network: the agent sets STF_SIM_LINK_DELAY_US on the simulated hosts, and
# sparsetf-dist's transport (src/transport/transport_mpi.c, simulation only) holds every
# point-to-point message that long before handing it to MPI. Presets: 1gbit = 1gbit,60us;
# 10gbit = 10gbit,25us; 25gbit = 25gbit,10us. RATE is a tc rate (e.g. 500mbit, 40gbit);
# DELAY is a number with the unit us or ms (e.g. 200us, 1.5ms).
#
# Example (3 simulated hosts, the bundled model, one rank per host):
#   cluster/sim-cluster.sh up 3
#   . /run/sparsetf-sim/env            # sets MPIRUN_FLAGS and STF_SIM_HOSTFILE
#   launch/hostfile.sh -f "$STF_SIM_HOSTFILE" -n 3 -- \
#       --model src/train/models/default-sparse.stf --prompt "It is a truth" --max-tokens 16
#   cluster/sim-cluster.sh down
# The state directory is $STF_SIM_DIR (default /run/sparsetf-sim).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${STF_SIM_DIR:-/run/sparsetf-sim}
prefix=stf-sim
bridge=stf-simbr
net=10.211.0
max_hosts=64

die() {
    echo "sim-cluster: $*" >&2
    exit 2
}
usage() {
    awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"
    exit "${1:-0}"
}

# parse_link SPEC: sets rate (tc syntax) and delay_us, or fails naming what is wrong.
parse_link() {
    local spec=$1 d
    case $spec in
    1gbit) rate=1gbit delay_us=60 ;;
    10gbit) rate=10gbit delay_us=25 ;;
    25gbit) rate=25gbit delay_us=10 ;;
    *,*)
        rate=${spec%%,*}
        d=${spec#*,}
        [[ $rate =~ ^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit)$ ]] ||
            die "--link $spec: RATE '$rate' is not a rate like 500mbit or 10gbit"
        if [[ $d =~ ^([0-9]+(\.[0-9]+)?)us$ ]]; then
            delay_us=$(awk -v v="${BASH_REMATCH[1]}" 'BEGIN { printf "%d", v + 0.5 }')
        elif [[ $d =~ ^([0-9]+(\.[0-9]+)?)ms$ ]]; then
            delay_us=$(awk -v v="${BASH_REMATCH[1]}" 'BEGIN { printf "%d", v * 1000 + 0.5 }')
        else
            die "--link $spec: DELAY '$d' is not a delay like 50us or 1.5ms"
        fi
        [ "$delay_us" -le 1000000 ] || die "--link $spec: DELAY above 1 s"
        ;;
    *) die "--link $spec: expected 1gbit, 10gbit, 25gbit or RATE,DELAY (e.g. 10gbit,50us)" ;;
    esac
    [[ $rate =~ ^0+(\.0+)?[a-z]+$ ]] && die "--link $spec: RATE must be above 0"
    return 0
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (it creates network namespaces, veth links and mounts); try: sudo $0 $*"
    command -v ip > /dev/null || die "the ip command is missing (Debian package iproute2)"
    command -v tc > /dev/null || die "the tc command is missing (Debian package iproute2)"
    command -v unshare > /dev/null || die "unshare is missing (Debian package util-linux)"
}

# Removes everything `up` may have made; quiet about what is already gone.
teardown() {
    local ns
    for ns in $(ip netns list 2> /dev/null | awk '{print $1}' | grep "^$prefix[0-9]*$" || true); do
        # processes still running on a simulated host (a crashed job) go with it
        ip netns pids "$ns" 2> /dev/null | xargs -r kill -9 2> /dev/null || true
        ip netns del "$ns" 2> /dev/null || true
    done
    local dev
    for dev in $(ip -o link show 2> /dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
        grep "^${prefix}v[0-9]*$" || true); do
        ip link del "$dev" 2> /dev/null || true
    done
    ip link del "$bridge" 2> /dev/null || true
    if mountpoint -q "$state" 2> /dev/null; then umount -l "$state" || true; fi
    if [ -d "$state" ]; then rm -rf "$state"; fi
}

cmd_up() {
    local n="" link=10gbit
    while [ $# -gt 0 ]; do
        case $1 in
        --link)
            [ $# -ge 2 ] || die "--link needs a value (1gbit, 10gbit, 25gbit or RATE,DELAY)"
            link=$2
            shift 2
            ;;
        --link=*) link=${1#--link=}; shift ;;
        -h | --help) usage 0 ;;
        -*) die "up: unknown option $1 (see -h)" ;;
        *)
            [ -z "$n" ] || die "up: one host count expected, got '$n' and '$1'"
            n=$1
            shift
            ;;
        esac
    done
    [ -n "$n" ] || die "up: the number of hosts is missing (e.g. up 3)"
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "up: N must be a whole number ≥ 1, got '$n'"
    local rate delay_us
    parse_link "$link"
    # limits: one /24 for the addresses, and each simulated host runs an Open MPI daemon
    # and a rank (≥ ~60 MB together); keep half of the available memory free
    local avail_mb mem_hosts
    avail_mb=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
    mem_hosts=$((avail_mb / 2 / 60))
    [ "$n" -le "$max_hosts" ] ||
        die "up: N = $n is above the limit of $max_hosts simulated hosts"
    [ "$n" -le "$mem_hosts" ] ||
        die "up: N = $n hosts need ~$((n * 60)) MB; only $avail_mb MB are available (limit here: $mem_hosts)"
    need_root up "$n"
    # a leftover of an earlier run (or a crash) goes first, so `up` is idempotent
    teardown
    trap 'echo "sim-cluster: up failed; removing what it made" >&2; teardown' ERR

    mkdir -p "$state"
    mount -t tmpfs -o size=25%,mode=0755 sparsetf-sim "$state"
    ip link add "$bridge" type bridge
    ip addr add "$net.254/24" dev "$bridge"
    ip link set "$bridge" up
    local burst_kb
    # tbf needs a bucket of at least one timer tick of traffic (and a few packets)
    burst_kb=$(rate_kbit "$rate" | awk '{b = $1 / 8 / 250; if (b < 64) b = 64; printf "%d", b}')
    local i host ns veth
    : > "$state/hosts"
    for i in $(seq 1 "$n"); do
        host=$prefix$i ns=$prefix$i veth=${prefix}v$i
        ip netns add "$ns"
        ip link add "$veth" type veth peer name eth0 netns "$ns"
        ip link set "$veth" master "$bridge" up
        ip -n "$ns" addr add "$net.$i/24" dev eth0
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
        tc qdisc add dev "$veth" root tbf rate "$rate" burst "${burst_kb}kb" latency 50ms
        ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst "${burst_kb}kb" latency 50ms
        mkdir -p "$state/$host/tmp" "$state/$host/shm"
        chmod 1777 "$state/$host/tmp" "$state/$host/shm"
        printf '%s slots=1\n' "$host" >> "$state/hosts"
    done
    # host names resolve inside the simulated hosts (the agent binds this over /etc/hosts)
    {
        printf '127.0.0.1 localhost\n%s.254 sim-head\n' "$net"
        for i in $(seq 1 "$n"); do printf '%s.%d %s%d\n' "$net" "$i" "$prefix" "$i"; done
    } > "$state/etc-hosts"
    echo "$delay_us" > "$state/link-delay-us"
    cat > "$state/env" << EOF
# written by cluster/sim-cluster.sh up $n --link $link; source it before launch/hostfile.sh
export STF_SIM_DIR=$state
export STF_SIM_HOSTFILE=$state/hosts
export STF_SIM_LINK="$rate, one-way delay ${delay_us} us"
export MPIRUN_FLAGS="--mca plm_rsh_agent $here/sim-rsh.sh --mca plm_rsh_no_tree_spawn 1 --mca oob_tcp_if_include $net.0/24 --mca btl_tcp_if_include $net.0/24 --mca btl tcp,self --bind-to none"
EOF
    trap - ERR
    echo "sim-cluster: $n simulated hosts up (${prefix}1 … ${prefix}$n on $net.0/24, link $rate, one-way delay ${delay_us} µs in the transport)"
    echo "sim-cluster: hostfile $state/hosts"
    echo "sim-cluster: environment $state/env (. $state/env sets MPIRUN_FLAGS for launch/hostfile.sh)"
}

# rate_kbit RATE: a tc rate in kbit/s.
rate_kbit() {
    awk -v r="$1" 'BEGIN {
        n = r + 0; u = r; sub(/^[0-9.]+/, "", u)
        m = (u == "bit") ? 0.001 : (u == "kbit") ? 1 : (u == "mbit") ? 1000 : 1000000
        printf "%d", n * m }'
}

cmd_down() {
    [ $# -eq 0 ] || die "down takes no arguments"
    need_root down
    teardown
    echo "sim-cluster: down (namespaces, links and $state removed)"
}

cmd_status() {
    local hosts
    hosts=$(ip netns list 2> /dev/null | awk '{print $1}' | grep -c "^$prefix[0-9]*$" || true)
    if [ "$hosts" -eq 0 ]; then
        echo "sim-cluster: down"
        return 1
    fi
    echo "sim-cluster: $hosts simulated host(s); hostfile $state/hosts"
    [ -f "$state/env" ] && grep '^export STF_SIM_LINK=' "$state/env" | sed 's/^export /  /'
    return 0
}

[ $# -ge 1 ] || usage 2
cmd=$1
shift
# one `up` or `down` at a time on this machine (the names and addresses are machine-wide)
lock_ops() {
    [ "$(id -u)" -eq 0 ] || return 0
    mkdir -p /run/lock
    exec 8> /run/lock/sparsetf-sim.lock
    flock -w 120 8 || die "another sim-cluster.sh up/down has been running for 120 s"
}
case $cmd in
up) lock_ops && cmd_up "$@" ;;
down) lock_ops && cmd_down "$@" ;;
status) cmd_status "$@" ;;
-h | --help | help) usage 0 ;;
*) die "unknown command '$cmd' (up N [--link SPEC], down, status; see -h)" ;;
esac
