#!/usr/bin/env bash
# The runs behind results/compression-recipes/RESULTS.md, in the order they were made: every row
# trains 1,000 steps of 32×256 windows (warm-up 100, cosine to 0), seed 2024, one thread each
# (two queues side by side on a 2-core machine; a run gives the same numbers on any thread
# count). Rows that start from or learn from the dense model use the dense row at the best
# learning rate (itself 1,000 steps). After training, `eval` scores the final checkpoint on the
# whole validation split (eval.json). Resumable: a run with a finished eval.json is skipped, an
# interrupted one continues with --resume.
#   bash results/compression-recipes/run.sh sweep-dense   # queue A: dense at four peak lrs
#   bash results/compression-recipes/run.sh sweep-mpo     # queue B: χ = 8 at the same lrs
#   bash results/compression-recipes/run.sh <stage>       # later stages, see below
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.build/release/mpo-train}
R=results/compression-recipes
COMMON=(--steps 1000 --warmup 100 --eval-interval 100 --eval-batches 20 --seed 2024 --threads 1 --quiet)

run() {   # run NAME ARGS…: train into $R/NAME (resuming if interrupted), then eval the result
  local name=$1; shift
  local dir=$R/$name
  if [ -f "$dir/eval.json" ]; then echo "== $name: done"; return; fi
  echo "== $name: $*"
  if [ -f "$dir/checkpoint.safetensors" ]; then
    "$BIN" train "$@" "${COMMON[@]}" --out "$dir" --resume || "$BIN" train "$@" "${COMMON[@]}" --out "$dir"
  else
    "$BIN" train "$@" "${COMMON[@]}" --out "$dir"
  fi
  "$BIN" eval --checkpoint "$dir/checkpoint.safetensors" --threads 1 --json > "$dir/eval.json"
  cat "$dir/eval.json"
}

case "${1:-}" in
  sweep-dense) for lr in 2e-3 4e-3 1e-3 3e-4; do run dense-lr$lr --model dense --lr $lr; done ;;
  sweep-mpo)   for lr in 2e-3 4e-3 1e-3 3e-4; do run mpo8-scratch-lr$lr --model mpo --chi 8 --lr $lr; done ;;
  *) echo "usage: $0 sweep-dense|sweep-mpo|…" >&2; exit 64 ;;
esac
