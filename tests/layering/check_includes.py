#!/usr/bin/python3
"""The layering of src/: every #include of every .c/.h file under SRC must be allowed by
RULES (tests/layering/rules.txt). Prints each violation (file:line, the include, the rule)
and exits 1 if there is any.

    check_includes.py SRC RULES            check the tree
    check_includes.py SRC RULES --self-test
        copies SRC, adds one forbidden include at a time (kernels -> mpi.h, model ->
        transport, kernels -> protobuf-c, pipeline -> frames.pb-c.h, a front end -> the
        pipeline's internals, ...) and checks that each is caught and the clean copy passes.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def load_rules(path):
    modules, restricted = {}, {}
    for n, line in enumerate(open(path), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, rest = line.partition(":")
        if not sep:
            sys.exit("%s:%d: expected `name: entries`" % (path, n))
        entries = rest.split()
        if key.startswith("!"):
            restricted[key[1:].strip()] = [] if entries == ["-"] else entries
        else:
            modules[key.strip()] = entries
    return modules, restricted


def check(src, rules_path):
    modules, restricted = load_rules(rules_path)
    known = {d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d))}
    bad = []
    for root, _, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)
            module = rel.split(os.sep)[0]
            if module not in modules:
                bad.append("%s: module `%s` has no line in %s" % (rel, module, rules_path))
                continue
            allowed = modules[module]
            for n, line in enumerate(open(path, errors="replace"), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                header = m.group(2)
                where = "%s:%d: #include %s%s%s" % (rel, n, m.group(1), header,
                                                    ">" if m.group(1) == "<" else '"')
                base = header if header in restricted else os.path.basename(header)
                if base in restricted:
                    who = restricted[base]
                    if module not in who and rel not in who:
                        bad.append("%s: %s may include %s" % (
                            where, "only " + " ".join(who) if who else "nothing in src/", base))
                    continue
                if m.group(1) == "<":
                    continue  # other system headers
                first = header.split("/")[0]
                if "/" not in header or first not in known:
                    bad.append("%s: include project headers as \"module/header.h\"" % where)
                    continue
                if first == module or allowed == ["*"] or first in allowed or header in allowed:
                    continue
                bad.append("%s: module `%s` may not include `%s` (%s: %s)" % (
                    where, module, header, module, " ".join(allowed) or "its own headers only"))
    return bad


# (file to change, include to add): each must be reported
INJECTIONS = [
    ("kernels/kernels_ref.c", "<mpi.h>"),
    ("kernels/kernels_ref.c", "<protobuf-c/protobuf-c.h>"),
    ("model/forward.c", '"transport/transport.h"'),
    ("model/config.h", '"pipeline/plan.h"'),
    ("pipeline/engine.c", "<mpi.h>"),
    ("pipeline/engine.c", '"frames.pb-c.h"'),
    ("model/forward.c", '"model.pb-c.h"'),
    ("util/mem.c", '"kernels/kernels.h"'),
    ("cli/generate.c", '"pipeline/sessions.h"'),
    ("cli/generate.c", '"wire/frame.h"'),
    ("tools/sparsetf_gen.c", "<mpi.h>"),
]


def self_test(src, rules):
    fails = 0
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "src")
        shutil.copytree(src, copy)
        clean = check(copy, rules)
        if clean:
            print("FAIL: the clean copy has violations:\n  " + "\n  ".join(clean))
            fails += 1
        for rel, inc in INJECTIONS:
            path = os.path.join(copy, rel)
            original = open(path).read()
            with open(path, "w") as f:
                f.write("#include %s\n" % inc + original)
            got = check(copy, rules)
            with open(path, "w") as f:
                f.write(original)
            hit = [v for v in got if v.startswith(rel + ":1:")]
            print("%s %s gets #include %s: %s" % ("ok  " if hit else "FAIL", rel, inc,
                                                   hit[0] if hit else "not reported"))
            fails += not hit
    print("self-test: %d failure(s)" % fails)
    return 1 if fails else 0


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    src, rules = sys.argv[1], sys.argv[2]
    if "--self-test" in sys.argv[3:]:
        sys.exit(self_test(src, rules))
    bad = check(src, rules)
    for v in bad:
        print(v)
    print("layering: %d violation(s) in %s" % (len(bad), src))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
