#!/usr/bin/env bash
# install_tree: `cmake --install` into a scratch prefix gives a tree that works on its own:
# every program answers --version, the installed launcher finds the installed sparsetf-dist
# (no build directory next to it) and its output equals the build's --local output, and the
# docs are there.
#
# usage: install_tree.sh BUILD_DIR WORKDIR
set -u
build=$1 work=$2
rm -rf "$work" && mkdir -p "$work" || exit 1
fails=0
check() {
    if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log" 2>&1 ||
    { cat "$work/install.log"; exit 1; }
p=$work/prefix
for tool in sparsetf-dist sparsetf-gen sparsetf-quantize sparsetf-tok sparsetf-bench sparsetf-tok-bench sparsetf-info \
    sparsetf-batch-bench sparsetf-netbench; do
    check "$tool installed and starts" "'$p/bin/$tool' --version > /dev/null 2>&1 || '$p/bin/$tool' --help > /dev/null 2>&1"
done
check "docs installed" "[ -f '$p/share/doc/sparsetf/README.md' ] && [ -f '$p/share/doc/sparsetf/model.md' ]"
model=$p/share/sparsetf/models/default-sparse.stf
"$build/src/tools/sparsetf-dist" --local --model "$model" --prompt "It is a truth" --max-tokens 16 \
    --temperature 0 --quiet > "$work/want.txt"
# no STF_BUILD_DIR, no PATH entry: the launcher must find PREFIX/bin by itself
env -u STF_BUILD_DIR PATH=/usr/bin:/bin "$p/share/sparsetf/launch/local.sh" -n 2 -- \
    --model "$model" --prompt "It is a truth" --max-tokens 16 --temperature 0 --quiet \
    > "$work/got.txt" 2> "$work/got.err"
check "installed launch/local.sh -n 2 runs the installed binary, output = --local" \
    "cmp -s '$work/want.txt' '$work/got.txt'" || sed 's/^/    /' "$work/got.err"
echo "install_tree: $fails failure(s)"
[ $fails -eq 0 ]
