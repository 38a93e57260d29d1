#!/usr/bin/env bash
# launch/restart.sh: run a sparsetf-dist job, and run it again after a failure, up to N
# times: with --journal DIR the rerun replays the sessions that finished and resumes the
# others where the journal ends (docs/reliability.md). local.sh and hostfile.sh use it for
# their --restart N option.
#
#   launch/restart.sh N -- COMMAND...   e.g. launch/restart.sh 3 -- mpirun -n 4 sparsetf-dist \
#                                              --model M --prompts P --journal /scratch/j
#
# COMMAND's standard output is held until an attempt ends (a failed attempt's partial
# output would otherwise come before the complete output of the next): the output of the
# attempt that succeeds (or of the last one) is printed, as an uninterrupted run prints it.
# Standard error passes through at once. A rerun follows any exit status other than 0, 1 (an
# error the job found, e.g. a bad prompt, that a rerun would meet again), 2 (bad usage), and
# an interrupt (Ctrl-C, SIGTERM).
set -uo pipefail
die() {
    echo "restart.sh: $*" >&2
    exit 2
}
if [ $# -lt 3 ] || [ "$2" != -- ]; then die "usage: restart.sh N -- COMMAND..."; fi
n=$1
shift 2
[[ $n =~ ^[0-9]+$ ]] || die "N expects a number of restarts ≥ 0, got '$n'"
journal=0
for a in "$@"; do [[ $a == --journal || $a == --journal=* ]] && journal=1; done
[ $journal -eq 1 ] || die "restarting needs sparsetf-dist's --journal DIR (else a rerun starts every session again)"
out=$(mktemp "${TMPDIR:-/tmp}/sparsetf-attempt.XXXXXX") || die "cannot create a temporary file"
trap 'rm -f "$out"' EXIT
interrupted=0
trap 'interrupted=1' INT TERM
attempt=0
while :; do
    "$@" > "$out"
    rc=$?
    if [ $rc -eq 0 ] || [ $rc -eq 1 ] || [ $rc -eq 2 ] || [ $interrupted -eq 1 ] ||
        [ $rc -eq 130 ] || [ $rc -eq 143 ] || [ $attempt -ge "$n" ]; then
        cat "$out"
        exit $rc
    fi
    attempt=$((attempt + 1))
    echo "restart.sh: the job failed (exit $rc): starting it again from its journal (restart $attempt of $n)" >&2
done
