#!/usr/bin/env bash
# slurm_job: launch/slurm.sbatch on a real single-node Slurm that this test sets up and
# tears down (Debian slurm-wlm 22.05 + munge: its own munged, slurmctld and slurmd on
# private ports, proctrack/linuxproc, task/none, all state under WORKDIR):
#   - `sbatch --ntasks=3 launch/slurm.sbatch ...` (srun --mpi=pmix) prints exactly what
#     `sparsetf-dist --local` prints for the bundled model, 1 and 2 CPUs per task;
#   - the same through the script's mpirun path (STF_LAUNCHER=mpirun);
#   - a job whose ranks cannot start (a missing model) fails with the reason in its output.
# Every daemon it started is stopped (by pid) on exit, even when a check fails. Exits 77
# (skipped) with the reason when it cannot run: not root, or the packages are missing
# (tests/run.sh installs them: slurmd slurmctld slurm-client munge).
#
# usage: slurm_job.sh SOURCE_DIR BUILD_DIR WORKDIR
set -u
src=$1 build=$2 work=$3
model=$src/src/train/models/default-sparse.stf
dist=$build/src/tools/sparsetf-dist
skip() {
    echo "slurm_job: SKIPPED: $*"
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root to run slurmd and munged"
for b in munged slurmctld slurmd sbatch srun scontrol; do
    command -v $b > /dev/null || skip "$b is missing (apt-get install slurmd slurmctld slurm-client munge)"
done
rm -rf "$work" && mkdir -p "$work"/{etc,munge,spool,state,log} && cd "$work" || exit 1
chmod 700 "$work/munge"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null; done
}
trap cleanup EXIT

# munge: a key of our own, a socket of our own
dd if=/dev/urandom of=munge/munge.key bs=1024 count=1 status=none
chmod 400 munge/munge.key
munged --force --key-file="$work/munge/munge.key" --socket="$work/munge/munge.socket" \
    --pid-file="$work/munge/munged.pid" --log-file="$work/log/munged.log" \
    --seed-file="$work/munge/seed" || skip "munged did not start: $(tail -3 log/munged.log)"
pids+=("$(cat munge/munged.pid)")

host=$(hostname -s)
node=$(slurmd -C | head -1)
port=$((20000 + RANDOM % 20000))
cat > etc/slurm.conf << EOF
ClusterName=sparsetf-test
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/munge.socket
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
$node State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=30 State=UP
EOF
export SLURM_CONF=$work/etc/slurm.conf
slurmctld -D > log/slurmctld.out 2>&1 &
pids+=($!)
slurmd -D -N "$host" > log/slurmd.out 2>&1 &
pids+=($!)
up=0
for _ in $(seq 1 100); do
    if scontrol ping 2> /dev/null | grep -q UP &&
        sinfo -h -o %t 2> /dev/null | grep -qE '^(idle|mix)'; then
        up=1
        break
    fi
    sleep 0.1
done
if [ $up -eq 0 ]; then
    tail -5 log/slurmctld.log log/slurmd.log 2> /dev/null
    skip "single-node Slurm did not come up (logs above)"
fi
echo "slurm_job: Slurm up on $host ($(sinfo -h -o '%P %D node, %c CPUs'))"

fails=0
# job NAME [sbatch options] -- [sparsetf-dist args]: runs the batch script, waits for it
job() {
    local name=$1
    shift
    local opts=()
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    rm -f "$name.out" "$name.err"
    local id rc
    id=$(sbatch --parsable --time=5 -o "$work/$name.out" -e "$work/$name.err" "${opts[@]}" \
        "$src/launch/slurm.sbatch" "$@") || return 1
    # a job that never starts (or never ends) is a failure with its reason, not a hang
    for _ in $(seq 1 600); do
        squeue -h -j "$id" 2> /dev/null | grep -q . || break
        sleep 0.1
    done
    if squeue -h -j "$id" 2> /dev/null | grep -q .; then
        echo "     job $id still queued/running after 60 s: $(squeue -h -j "$id" -o '%T %r')"
        scancel "$id"
        return 124
    fi
    rc=$(sacct_exit "$id")
    return "$rc"
}
# sacct_exit JOBID: the job's exit code (no accounting database here: scontrol's record)
sacct_exit() {
    scontrol show job "$1" 2> /dev/null | sed -n 's/.*ExitCode=\([0-9]*\):.*/\1/p' | head -1
}
same() {
    local name=$1
    shift
    local opts=()
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    "$dist" --local --model "$model" "$@" --quiet > "$name.want" 2> "$name.wanterr" ||
        { echo "FAIL $name: --local failed"; fails=$((fails + 1)); return; }
    job "$name" "${opts[@]}" -- --model "$model" "$@"
    local rc=$?
    if [ $rc -eq 0 ] && cmp -s "$name.want" "$name.out" && grep -q "on 3 ranks" "$name.err"; then
        echo "ok   $name: identical to --local ($(grep -o 'launching.*' "$name.err" | head -1))"
    else
        echo "FAIL $name (sbatch exit $rc)"
        diff "$name.want" "$name.out" | head -5
        sed 's/^/    /' "$name.err" | tail -15
        fails=$((fails + 1))
    fi
}
export STF_BUILD_DIR=$build
same srun_greedy --ntasks=3 --overcommit -- --prompt "It is a truth universally acknowledged, that" \
    --max-tokens 32 --temperature 0 --print-tokens
same srun_2threads --ntasks=3 --cpus-per-task=2 --overcommit -- --prompt "The Congress" \
    --max-tokens 32 --seed 5 --print-tokens
STF_LAUNCHER=mpirun same mpirun_greedy --ntasks=3 --overcommit -- --prompt "Mr. Darcy" \
    --max-tokens 32 --temperature 0 --print-tokens
unset STF_LAUNCHER
job missing_model --ntasks=2 -- --model "$work/no-such.stf" --prompt-tokens "1 2" --max-tokens 4
rc=$?
if [ $rc -ne 0 ] && grep -q "no-such.stf" missing_model.err; then
    echo "ok   missing model: job failed (sbatch exit $rc): $(grep -m1 no-such.stf missing_model.err)"
else
    echo "FAIL missing model (sbatch exit $rc)"
    sed 's/^/    /' missing_model.err | tail -10
    fails=$((fails + 1))
fi
echo "slurm_job: $fails failure(s)"
[ $fails -eq 0 ]
