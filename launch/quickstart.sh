#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, creates the default model if it
# is not there yet, and generates text with it on 8 local MPI ranks (a pipeline of layers).
#   bash launch/quickstart.sh [extra sparsetf-dist options]
# Environment: BUILD_DIR (default build/), RANKS (default 8), MODEL (a .stf file), PROMPT.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
ranks=${RANKS:-8}
bash "$here/launch/setup.sh"

model=${MODEL:-}
if [ -z "$model" ] && [ -f "$here/src/train/models/default-sparse.stf" ]; then
  # the bundled model: trained on Jane Austen and State of the Union addresses (src/train/)
  model=$here/src/train/models/default-sparse.stf
  PROMPT=${PROMPT:-It is a truth universally acknowledged, that}
elif [ -z "$model" ]; then
  # no bundled model: the small-sparse preset with deterministic random weights
  model=$build/models/small-sparse.stf
  if [ ! -f "$model" ]; then
    mkdir -p "$build/models"
    "$build/src/tools/sparsetf-gen" --preset small-sparse --seed 1 --out "$model"
  fi
fi
# a pipeline needs a layer per stage: use up to RANKS ranks, at most layers + 1
layers=$("$build/src/tools/sparsetf-dist" --model "$model" --plan --local | awk '$1 == "0" && $3 ~ /^[0-9]+$/ {print $3}')
if [ -n "$layers" ] && [ "$ranks" -gt $((layers + 1)) ]; then
  echo "quickstart: $model has $layers layers; running $((layers + 1)) ranks instead of $ranks" >&2
  ranks=$((layers + 1))
fi
prompt_args=(--prompt-tokens "1 415 2093 7 88 1024 5")
if [ -n "${PROMPT:-}" ]; then prompt_args=(--prompt "$PROMPT"); fi
print=(--print-tokens)
[ -n "${PROMPT:-}" ] && print=()
exec bash "$here/launch/local.sh" -b "$build" -n "$ranks" -- --model "$model" "${prompt_args[@]}" \
  --max-tokens 48 "${print[@]}" "$@"
