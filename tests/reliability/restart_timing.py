#!/usr/bin/env python3
"""What a killed rank costs a job with --journal: launch/local.sh --restart 1 with a stage
killed part-way (the --fault-inject testing hook) against the same job uninterrupted,
interleaved, with each output checked identical. Prints per pair the wall times and, in the
killed run, the seconds from the kill to the restart (the job ending and mpirun returning)
and from the restart to the end (start-up, replay, recompute of the unfinished sessions'
history and the rest of their tokens); then the medians. (docs/reliability.md)

usage: restart_timing.py --launch launch/local.sh --build BUILD --model M [--ranks 3]
           [--prompts-tokens FILE | --sessions 8] [--max-tokens 200] [--kill-after 400]
           [--pairs 5] --workdir DIR
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time


def run(cmd, journal=None):
    """Runs cmd; returns (wall seconds, stdout bytes, [(t, stderr line)])."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    out = b''
    import threading

    def read_out():
        nonlocal out
        out = p.stdout.read()

    th = threading.Thread(target=read_out)
    th.start()
    for line in p.stderr:
        lines.append((time.monotonic() - t0, line.decode(errors='replace').rstrip()))
    th.join()
    rc = p.wait()
    wall = time.monotonic() - t0
    if rc != 0:
        sys.exit('failed (exit %d): %s\n%s' % (rc, ' '.join(cmd),
                                                '\n'.join(l for _, l in lines[-10:])))
    return wall, out, lines


def per_session(out):
    sessions = {}
    for line in out.decode(errors='surrogateescape').splitlines():
        idx, _, rest = line.partition('] ')
        sessions.setdefault(idx, []).extend(rest.split())
    return sessions


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--launch', required=True)
    ap.add_argument('--build', required=True)
    ap.add_argument('--model', required=True)
    ap.add_argument('--ranks', type=int, default=3)
    ap.add_argument('--sessions', type=int, default=8)
    ap.add_argument('--max-tokens', type=int, default=200)
    ap.add_argument('--kill-after', type=int, default=400,
                    help='frames rank 1 handles before it is killed')
    ap.add_argument('--pairs', type=int, default=5)
    ap.add_argument('--workdir', required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    prompts = os.path.join(a.workdir, 'prompts.txt')
    with open(prompts, 'w') as f:
        for i in range(a.sessions):
            f.write(' '.join(str(1 + (7 * i + 3 * k) % 500) for k in range(5 + i)) + '\n')
    base = [a.launch, '-n', str(a.ranks), '-b', a.build, '--restart', '1', '--',
            '--model', a.model, '--prompts-tokens', prompts, '--max-tokens',
            str(a.max_tokens), '--temperature', '0.8', '--timeout', '5']
    rows = []
    for pair in range(a.pairs):
        journal = os.path.join(a.workdir, 'journal')
        shutil.rmtree(journal, ignore_errors=True)
        wall_a, out_a, _ = run(base + ['--journal', journal + '-a'])
        shutil.rmtree(journal + '-a', ignore_errors=True)
        wall_b, out_b, lines = run(base + ['--journal', journal, '--fault-inject',
                                           'kill-rank=1,after=%d' % a.kill_after])
        if per_session(out_a) != per_session(out_b):
            sys.exit('pair %d: the resumed output differs from the uninterrupted one' % pair)
        t_kill = next(t for t, l in lines if 'fault injection: killing' in l)
        t_restart = next(t for t, l in lines if 'starting it again from its journal' in l)
        resumed = next(l for _, l in lines if 'resuming the job' in l)
        rows.append((wall_a, wall_b, t_restart - t_kill, wall_b - t_restart))
        print('pair %d: uninterrupted %.2f s, killed+restarted %.2f s (ratio %.2f); kill to '
              'restart %.2f s, restart to end %.2f s; %s' %
              (pair, wall_a, wall_b, wall_b / wall_a, t_restart - t_kill, wall_b - t_restart,
               resumed.split(': ', 2)[-1]))
    med = [statistics.median(c) for c in zip(*rows)]
    print('median: uninterrupted %.2f s, killed+restarted %.2f s, ratio %.2f; kill to restart '
          '%.2f s; restart to end %.2f s (%d pairs, outputs identical)' %
          (med[0], med[1], statistics.median(b / a for a, b, _, _ in rows), med[2], med[3],
           len(rows)))


if __name__ == '__main__':
    main()
