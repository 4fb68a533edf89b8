#!/usr/bin/env bash
# Times mpo-train and its PyTorch twin (picogpt_torch.py) on the same steps, one after the
# other in this run, and prints the ratios. PyTorch is installed with pip into .venv-peer here
# only (never needed by the tests). Usage (from the repository root):
#   bash Benchmarks/peer/compare.sh [--threads N] [--chi 4,8,16,32] [--repeats 5] [--batch 32] [--time 256]
# Env: PEER_TORCH (pip requirement, default "torch"), OPENBLAS_* as the environment sets them.
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
swift build -c release --product mpo-train >&2
out=$(mktemp -d)
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-(unset)}; $threads threads; $(date -u +%F)" >&2
.build/release/mpo-train bench --json --threads "$threads" --chi "$chi" --repeats "$repeats" --batch "$batch" --time "$time" > "$out/ours.jsonl"
.venv-peer/bin/python Benchmarks/peer/picogpt_torch.py --threads "$threads" --chi "$chi" --repeats "$repeats" --batch "$batch" --time "$time" > "$out/torch.jsonl"
.venv-peer/bin/python Benchmarks/peer/ratios.py "$out/ours.jsonl" "$out/torch.jsonl"
