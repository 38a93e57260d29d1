#!/usr/bin/env python3
"""What a killed rank costs a job with --journal: the job with a stage killed part-way (the
--fault-inject testing hook) and then run again from its journal, against the same job
uninterrupted with a journal and without one, interleaved, each output checked identical
(launch/local.sh runs each). Prints per pair the wall times, the seconds from the kill (the
journal's last write: rank 0 records each token as it returns, and the killed rank dies on
the next frame) to the end of the failed run (mpirun noticing and ending the job), and the
rerun's time (start-up, replay, recompute of the unfinished sessions' history and the rest of
their tokens); then the medians. (docs/reliability.md)

usage: restart_timing.py --launch launch/local.sh --build BUILD --model M [--ranks 3]
           [--sessions 8] [--max-tokens 200] [--kill-after 800] [--pairs 5] --workdir DIR
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time


def run(cmd, may_fail=False):
    """Runs cmd; returns (wall seconds, stdout bytes, [(t, stderr line)])."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    out = b''
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
    if (rc != 0) != may_fail:
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
    ap.add_argument('--kill-after', type=int, default=800,
                    help='frames rank 1 handles before it is killed')
    ap.add_argument('--pairs', type=int, default=5)
    ap.add_argument('--workdir', required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    prompts = os.path.join(a.workdir, 'prompts.txt')
    with open(prompts, 'w') as f:
        for i in range(a.sessions):
            f.write(' '.join(str(1 + (7 * i + 3 * k) % 500) for k in range(5 + i)) + '\n')
    base = [a.launch, '-n', str(a.ranks), '-b', a.build, '--', '--model', a.model,
            '--prompts-tokens', prompts, '--max-tokens', str(a.max_tokens), '--temperature',
            '0.8', '--timeout', '5', '--quiet']
    rows = []
    for pair in range(a.pairs):
        ja, jb = os.path.join(a.workdir, 'journal-a'), os.path.join(a.workdir, 'journal-b')
        for j in (ja, jb):
            shutil.rmtree(j, ignore_errors=True)
        wall_0, out_0, _ = run(base)
        wall_a, out_a, _ = run(base + ['--journal', ja])
        if out_0 != out_a and per_session(out_0) != per_session(out_a):
            sys.exit('pair %d: the output with a journal differs from the one without' % pair)
        t0 = time.time()
        wall_1, _, _ = run(base + ['--journal', jb, '--fault-inject',
                                   'kill-rank=1,after=%d' % a.kill_after], may_fail=True)
        t_end_1 = t0 + wall_1
        t_kill = os.stat(os.path.join(jb, 'journal')).st_mtime
        wall_2, out_b, _ = run(base[:-1] + ['--journal', jb])
        if per_session(out_a) != per_session(out_b):
            sys.exit('pair %d: the resumed output differs from the uninterrupted one' % pair)
        rows.append((wall_a, wall_1 + wall_2, t_end_1 - t_kill, wall_2, wall_0))
        print('pair %d: no journal %.2f s, journal %.2f s (ratio %.3f)' %
              (pair, wall_0, wall_a, wall_a / wall_0))
        print('pair %d: uninterrupted %.2f s; killed run %.2f s + rerun %.2f s = %.2f s (ratio '
              '%.2f); kill to the end of the killed run %.2f s' %
              (pair, wall_a, wall_1, wall_2, wall_1 + wall_2, (wall_1 + wall_2) / wall_a,
               t_end_1 - t_kill))
    med = [statistics.median(c) for c in zip(*rows)]
    print('median: journal / no journal %.3f' %
          statistics.median(r[0] / r[4] for r in rows))
    print('median: uninterrupted %.2f s, killed + rerun %.2f s, ratio %.2f; kill to the end of '
          'the killed run %.2f s; rerun %.2f s (%d pairs, outputs identical)' %
          (med[0], med[1], statistics.median(r[1] / r[0] for r in rows), med[2], med[3],
           len(rows)))


if __name__ == '__main__':
    main()
