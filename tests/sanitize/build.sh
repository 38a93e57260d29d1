#!/usr/bin/env bash
# Configures and builds the ASan + UBSan build of the whole project, with the libFuzzer
# targets, in BUILD (clang from Debian; a separate tree from the Release build).
#   build.sh SOURCE_DIR BUILD_DIR [CLANG]
set -euo pipefail
src=$1 build=$2 cc=${3:-clang}
# -O1: fast enough to run the suite, clear stack traces; assertions stay on. native: this
# machine only (clang 14 has no x86-64-v3 CPU check for the portable baseline)
cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DSTF_FUZZ=ON -DSTF_ARCH=native > /dev/null
cmake --build "$build" -j 2
