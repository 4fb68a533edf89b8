#!/usr/bin/env bash
# Data-parallel steps at 1 and 2 ranks (one thread each), PicoGPT dense vs χ = 8 and the
# GPT-2-small shape dense vs χ = 16, as bench --json lines in OUT/steps.jsonl; then the
# all-reduce cost model (allreduce_model.py) from the measured bytes, into OUT/table.md.
# Usage: bash Benchmarks/mpi/scaling.sh OUT   (after swift build -c release --traits MPI)
# OPENBLAS_* is left as the environment sets it.
set -euo pipefail
OUT=${1:?usage: scaling.sh OUT}
BIN=${BIN:-.build/release/mpo-train}
mkdir -p "$OUT"
: > "$OUT/steps.jsonl"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run() {   # ranks, bench arguments…
  local n=$1; shift
  if [ "$n" = 1 ]; then "$BIN" bench --json --threads 1 --sample-tokens 0 "$@"
  else mpirun -np "$n" --oversubscribe "$BIN" bench --json --threads 1 --sample-tokens 0 "$@"; fi \
    | grep '"train_step"' | python3 -c "import sys, json
for l in sys.stdin:
    r = json.loads(l); r.setdefault('ranks', $n); print(json.dumps(r, sort_keys=True))" >> "$OUT/steps.jsonl"
}
for n in 1 2; do
  run "$n" --shape picogpt --chi 8 --batch 32 --time 256 --repeats 5
  run "$n" --shape gpt2 --chi 16 --batch 4 --time 256 --repeats 3
done
lscpu | grep -E "Model name|^CPU\(s\)" > "$OUT/cpu.txt"
python3 "$(dirname "$0")/allreduce_model.py" "$OUT/steps.jsonl" | tee "$OUT/table.md"
