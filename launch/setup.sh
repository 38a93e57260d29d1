#!/usr/bin/env bash
# Installs what sparsetf needs from Debian 12 packages (only what is missing; root or sudo)
# and builds it into build/. Safe to run again: it does nothing that is already done.
#   bash launch/setup.sh            # Release build in ./build
#   BUILD_DIR=/tmp/b bash launch/setup.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}

packages=(cmake gcc make pkg-config libc6-dev
          openmpi-bin libopenmpi-dev libopenblas-dev
          libprotobuf-c-dev protobuf-c-compiler libcmocka-dev
          python3 python3-numpy python3-sentencepiece sentencepiece clang-format
          libmicrohttpd-dev libjansson-dev  # the HTTP server (src/server)
          clang libclang-rt-14-dev)  # clang: the sanitizer and libFuzzer build (CTest label sanitize)
# tests/run.sh also wants what its cluster tests run on: a single-node Slurm (started and
# stopped by the test itself, tests/integration/slurm_job.sh), and the HTTP server's clients:
# curl and Node.js with npm for the OpenAI client library (Debian's Node.js only when none is
# installed: any Node.js >= 18 with npm will do)
if [ "${STF_SETUP_TESTS:-0}" = 1 ]; then
  packages+=(slurmd slurmctld slurm-client munge curl)
  command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)"
