#!/usr/bin/env bash
# run.sh OUT — the one-command GPU check, run on the target machine from a bundle made by
# Benchmarks/gpu/package.sh (bundle.tar.gz: bin/mpo-train with the Swift runtime linked in, lib/
# with the shared libraries a bare machine may lack, data/ with Tiny Shakespeare; unpacked into a
# temporary directory). BIN= and DATA= run it from a build instead (CI: the debug binary on PoCL).
# Writes under OUT:
#   summary.txt        the machine, the OpenCL devices, each stage's exit status and seconds
#   check-ops.txt      the op-case table on the device against the CPU reference (exit 1 on FAIL)
#   bench-picogpt.txt  training steps, dense and χ = 4…32, with the per-op profile
#   bench-gpt2.txt     training steps of the GPT-2-small shape (d 768, 12 layers, 12 heads, FFN 3072;
#                      GPU only)
#   bench-llama.txt    training steps of SmolLM2-135M's Llama shape (RMSNorm, rotary, SwiGLU,
#                      grouped-query attention, 49,152-token tied head; random weights; GPU only)
#   ops.txt            the op cases' micro-benchmarks (GFLOP/s, GB/s per op)
#   decode.txt         decode tokens/s, dense and MPO, PicoGPT and GPT-2-small shapes
#   train.txt          a 200-step training run on the device (its log and metrics); train-llama.txt
#                      a few steps of a small Llama block (PoCL only)
# On a GPU it uses the full shapes and ends within ~8 minutes; on a CPU OpenCL device (PoCL) it
# uses small ones and ends within a few minutes (STAGE_LIMITS=off: no time limits). No stage's failure stops the others; run.sh
# exits 1 if check-ops failed or a stage did not finish.
set -uo pipefail
OUT=${1:?usage: run.sh OUT}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }

# The bundle, unpacked outside OUT (OUT comes back as files).
LIBDIR=$(mktemp -d "${TMPDIR:-/tmp}/mpo-bundle.XXXXXX")
trap 'rm -rf "$LIBDIR"' EXIT
[ -f "$HERE/bundle.tar.gz" ] && tar -xzf "$HERE/bundle.tar.gz" -C "$LIBDIR"
export LD_LIBRARY_PATH="$LIBDIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
BIN=${BIN:-$LIBDIR/bin/mpo-train}
DATA=${DATA:-$LIBDIR/data/tinyshakespeare.txt}

# The OpenCL ICD: the loader reads /etc/OpenCL/vendors, or OCL_ICD_VENDORS. A GPU container
# often has NVIDIA's OpenCL library but no .icd file naming it: write one under a temp dir.
# (VENDORS_DIR and NVIDIA_LIB_DIRS exist for testing this on a machine that has an ICD.)
if [ -z "${OCL_ICD_VENDORS:-}" ] && ! ls "${VENDORS_DIR:-/etc/OpenCL/vendors}"/*.icd >/dev/null 2>&1; then
  nv=
  for p in ${NVIDIA_LIB_DIRS:-} /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib; do
    [ -e "$p/libnvidia-opencl.so.1" ] && { nv=$p/libnvidia-opencl.so.1; break; }
  done
  [ -n "$nv" ] || nv=$( (ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so\.1/ {print $NF; exit}') )
  if [ -n "$nv" ]; then
    mkdir -p "$LIBDIR/vendors"; echo "$nv" > "$LIBDIR/vendors/nvidia.icd"
    export OCL_ICD_VENDORS=$LIBDIR/vendors
    say "ICD: wrote $LIBDIR/vendors/nvidia.icd -> $nv (no /etc/OpenCL/vendors entry)"
  else
    say "ICD: no /etc/OpenCL/vendors/*.icd and no libnvidia-opencl.so.1 found"
  fi
fi
export POCL_CACHE_DIR=${POCL_CACHE_DIR:-$LIBDIR/pocl-cache}

say "mpo-train GPU check, $(date -u +%FT%TZ), bundle $(cat "$HERE/VERSION" 2>/dev/null || echo '?')"
say "host: $(uname -srm); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | sed 's/^/gpu: /' | tee -a "$SUMMARY"
"$BIN" devices 2>&1 | tee -a "$SUMMARY"
if "$BIN" devices 2>/dev/null | grep -q '\[GPU\].*(default)'; then MODE=gpu; else MODE=small; fi
say "mode: $MODE"

status=0
# STAGE_LIMITS=off runs every stage to the end: CI passes it, so that a slow machine cannot fail
# the check by wall time (the limits exist to keep a lent GPU's 8 minutes in hand).
stage() {   # stage NAME SECONDS ARGS…: mpo-train ARGS into OUT/NAME.txt, time-limited
  local name=$1 limit=$2; shift 2
  [ "${STAGE_LIMITS:-on}" = off ] && limit=0   # timeout 0: no limit
  local t0=$(date +%s%N)
  echo "\$ mpo-train $*" > "$OUT/$name.txt"
  timeout --kill-after=10 "$limit" "$BIN" "$@" >> "$OUT/$name.txt" 2>&1
  local rc=$?
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  say "$(printf '%-14s rc %3d  %4d.%01d s  (limit %d s)' "$name" "$rc" $((ms / 1000)) $((ms % 1000 / 100)) "$limit")"
  [ "$rc" -eq 0 ] || status=1
  return 0
}

D=(--device opencl)
if [ "$MODE" = gpu ]; then
  stage check-ops     120 check-ops "${D[@]}" --quiet
  stage bench-picogpt  60 bench "${D[@]}" --chi 4,8,16,32 --repeats 5 --sample-tokens 200 --profile
  stage bench-gpt2     80 bench "${D[@]}" --shape gpt2 --batch 8 --time 1024 --chi 16 --repeats 3 --sample-tokens 0 --profile
  stage bench-llama    80 bench "${D[@]}" --arch llama --batch 4 --time 512 --chi '' --repeats 3 --sample-tokens 0 --profile
  stage ops            30 bench "${D[@]}" --ops '' --repeats 5
  stage decode         60 bench "${D[@]}" --decode --decode-models picogpt:dense,picogpt:8,gpt2:dense,gpt2:8,gpt2:16,smollm2:dense --decode-tokens 128
  stage train          50 train "${D[@]}" --steps 200 --eval-interval 100 --eval-batches 10 --data "$DATA" --out "$LIBDIR/train" --quiet
else   # generous limits: CI runs this with the debug binary on a loaded machine (≈ 3.5 min there)
  stage check-ops     480 check-ops "${D[@]}" --table parity --quiet
  stage bench-picogpt 240 bench "${D[@]}" --batch 4 --time 64 --chi 8 --repeats 2 --sample-tokens 50
  # No GPT-2-small stage: one of its steps takes ≈ 14 s on PoCL (measured at B = 1, T = 8).
  stage ops           120 bench "${D[@]}" --ops 'mpoForward' --repeats 2
  stage decode        240 bench "${D[@]}" --decode --decode-models picogpt:dense,picogpt:8 --decode-tokens 32
  stage train         240 train "${D[@]}" --steps 20 --batch 4 --context 64 --eval-interval 10 --eval-batches 2 --data "$DATA" --out "$LIBDIR/train" --quiet
  stage train-llama   240 train "${D[@]}" --arch llama --kv-heads 2 --steps 10 --batch 4 --context 64 --eval-interval 10 --eval-batches 2 --data "$DATA" --out "$LIBDIR/train-llama" --quiet
fi
[ -f "$LIBDIR/train/metrics.jsonl" ] && { echo "--- metrics.jsonl"; cat "$LIBDIR/train/metrics.jsonl"; } >> "$OUT/train.txt"
say "done: $( [ $status -eq 0 ] && echo 'every stage finished' || echo 'a stage FAILED (see its file)')"
exit $status
