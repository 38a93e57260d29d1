#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (unit, reference, tokenizer, MPI).
#   bash tests/run.sh               (extra arguments go to ctest, e.g. -R unit_)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
STF_SETUP_TESTS=1 bash "$here/launch/setup.sh"
cd "$build"
ctest --output-on-failure --timeout 900 -j 2 "$@"
