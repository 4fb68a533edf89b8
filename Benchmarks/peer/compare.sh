#!/usr/bin/env bash
# Times mpo-train and its two PyTorch twins (picogpt_torch.py: the original code, and --fast:
# fused QKV + scaled_dot_product_attention) on the same steps, one after the other in this run,
# and prints the ratios — with OPENBLAS_* as the environment sets them, and again with
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (what a user's machine has; OpenBLAS then picks
# its kernels for the CPU). PyTorch (it uses MKL, not OpenBLAS) runs once. PyTorch is installed
# with pip into .venv-peer here only (never needed by the tests). Usage (from the repository root):
#   bash Benchmarks/peer/compare.sh [--threads N] [--chi 4,8,16,32] [--repeats 5] [--batch 32] [--time 256]
# Env: PEER_TORCH (pip requirement, default "torch"), BIN (default .build/release/mpo-train).
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=$(nproc); chi=4,8,16,32; repeats=5; batch=32; time=256
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;; --chi) chi=$2; shift 2 ;; --repeats) repeats=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;; --time) time=$2; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 64 ;;
  esac
done
if [ ! -x .venv-peer/bin/python ] || ! .venv-peer/bin/python -c 'import torch' 2>/dev/null; then
  echo "installing PyTorch into .venv-peer (once) ..." >&2
  python3 -m venv .venv-peer
  .venv-peer/bin/pip install -q "${PEER_TORCH:-torch}" numpy
fi
BIN=${BIN:-.build/release/mpo-train}
[ -n "${BIN_PREBUILT:-}" ] || swift build -c release --product mpo-train >&2
out=$(mktemp -d)
echo "$(lscpu | sed -n 's/^Model name: *//p'); $threads threads; $(date -u +%F)" >&2
args=(--threads "$threads" --chi "$chi" --repeats "$repeats" --batch "$batch" --time "$time")
"$BIN" bench --json "${args[@]}" > "$out/ours-env.jsonl"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$BIN" bench --json "${args[@]}" > "$out/ours-unset.jsonl"
.venv-peer/bin/python Benchmarks/peer/picogpt_torch.py "${args[@]}" > "$out/torch.jsonl"
.venv-peer/bin/python Benchmarks/peer/picogpt_torch.py --fast "${args[@]}" --sample-tokens 0 > "$out/torch-fast.jsonl"
.venv-peer/bin/python Benchmarks/peer/ratios.py "$out/ours-env.jsonl" "$out/ours-unset.jsonl" "$out/torch.jsonl" "$out/torch-fast.jsonl"
