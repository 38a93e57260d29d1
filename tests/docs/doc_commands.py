#!/usr/bin/env python3
"""Runs the commands that the README and the docs show, so that a doc cannot go stale.

Every fenced block that shows shell commands carries a marker on the line before it:
  <!-- doc-test -->                 run it (cheap: seconds, little disk)
  <!-- doc-test: root -->           run it when root (e.g. the simulated cluster)
  <!-- doc-test: skip (REASON) -->  shown but not run here (installs, GBs, minutes, a cluster)
An unmarked block that looks like commands fails the test, so a new command in a doc is
either tested or skipped with a stated reason.

Blocks run in order, one bash script each (`set -eo pipefail`), per document in a scratch
directory that looks like the repository root (build/ is the build under test; src/, launch/,
cluster/, tests/, docs/ are the sources), so files a doc writes land there. In a block with
`$ ` prompts only the prompted lines are commands (the rest is their output).

usage: doc_commands.py SOURCE_DIR BUILD_DIR WORKDIR
"""
import os
import re
import shutil
import subprocess
import sys

DOCS = ["README.md", "docs/*.md", "src/train/README.md", "tests/reference/README.md"]
LOOKS_LIKE_COMMANDS = re.compile(
    r"^(\$ )?(build/|launch/|cluster/|bash |sparsetf-|/usr/bin/python3|python3 |cmake |"
    r"mpirun |sbatch |src/|tests/|spm_train |ctest |\. /|apt-get |make |sudo )")
MARK = re.compile(r"^<!--\s*doc-test(?::\s*(root|skip\b.*?))?\s*-->\s*$")
LINKS = ["src", "launch", "cluster", "tests", "docs", "proto", "README.md", "CMakeLists.txt"]


def is_command(src, line):
    """Whether a block's first line is a command (not a listing of paths or output)."""
    if not LOOKS_LIKE_COMMANDS.match(line):
        return False
    first = line[2:].split()[0] if line.startswith("$ ") else line.split()[0]
    if "/" not in first or first.startswith("build/") or first.startswith("/usr/bin/"):
        return True
    return first.endswith((".sh", ".py", ".sbatch")) or \
        os.access(os.path.join(src, first), os.X_OK) and os.path.isfile(os.path.join(src, first))


def blocks(path):
    """Yields (line number, marker or None, language, lines) for each fenced block."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mark = MARK.match(lines[k].strip()) if k >= 0 else None
        kind = None
        if mark:
            kind = mark.group(1) or "run"
            kind = "skip" if kind.startswith("skip") else kind
        yield start + 1, kind, lang, lines[start + 1:j]
        i = j + 1


def commands(body):
    """The command lines of a block: the `$ ` lines (with continuations) if any, else all."""
    if any(l.startswith("$ ") for l in body):
        out, cont = [], False
        for l in body:
            if l.startswith("$ ") or cont:
                out.append(l[2:] if l.startswith("$ ") else l)
                cont = l.rstrip().endswith("\\")
        return out
    return body


def main():
    src, build, work = (os.path.abspath(a) for a in sys.argv[1:4])
    import glob
    files = []
    for pat in DOCS:
        files += sorted(glob.glob(os.path.join(src, pat)))
    # STF_DOC_TEST_NO_ROOT=1 leaves the root-only blocks out (the sanitizer suite: ranks on
    # simulated hosts start through a remote-shell agent that does not pass ASAN_OPTIONS).
    is_root = os.geteuid() == 0 and os.environ.get("STF_DOC_TEST_NO_ROOT") != "1"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ran = skipped = 0
    fails = []
    for path in files:
        rel = os.path.relpath(path, src)
        cwd = os.path.join(work, rel.replace("/", "_"))
        os.makedirs(cwd)
        for name in LINKS:
            os.symlink(os.path.join(src, name), os.path.join(cwd, name))
        os.symlink(build, os.path.join(cwd, "build"))
        for line, kind, lang, body in blocks(path):
            where = f"{rel}:{line}"
            shown = [l for l in commands(body) if l.strip() and not l.lstrip().startswith("#")]
            if kind is None:
                if lang in ("", "sh", "bash", "console") and shown and \
                        is_command(src, shown[0]):
                    fails.append(f"{where}: a block of commands without a doc-test marker")
                continue
            if kind == "skip" or (kind == "root" and not is_root):
                skipped += 1
                continue
            script = "set -eo pipefail\n" + "\n".join(commands(body)) + "\n"
            env = dict(os.environ, STF_BUILD_DIR=os.path.join(cwd, "build"))
            try:
                argv = ["bash", "-c", script]
                if "sim-cluster.sh" in script:
                    # machine-wide names: one simulated-cluster test at a time (sim_cluster.sh)
                    argv = ["flock", "-w", "900", "/run/lock/sparsetf-sim-test.lock"] + argv
                r = subprocess.run(argv, cwd=cwd, env=env, timeout=300,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace")
                rc, out = r.returncode, r.stdout
            except subprocess.TimeoutExpired as e:
                rc, out = "timeout (300 s)", (e.stdout or b"").decode(errors="replace")
            finally:
                if "sim-cluster.sh up" in script:
                    subprocess.run(["bash", os.path.join(src, "cluster/sim-cluster.sh"), "down"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ran += 1
            if rc == 0:
                print(f"ok   {where}: {shown[0][:90]}")
            else:
                fails.append(f"{where}: exit {rc}\n" + "\n".join(
                    "    " + l for l in (script + out).splitlines()[-25:]))
    for f in fails:
        print("FAIL " + f)
    print(f"doc_commands: {ran} blocks run, {skipped} skipped, {len(fails)} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
