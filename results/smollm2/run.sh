#!/bin/bash
# results/smollm2: compress SmolLM2-135M-Instruct (the wheel's Q4_1 GGUF) at several linear-layer
# ratios and factorisations, heal some with distillation from the original, evaluate everything on
# Tiny Shakespeare's validation split and a held-out general English text, and time decoding.
# Every step skips what it already wrote, so a stopped run continues where it stopped.
#
#   M=/path/to/SmolLM2-135M-Instruct.Q4_1.gguf bash results/smollm2/run.sh compress|heal|data-free|corrected|long|mpo-corrected|als|als3|als-measured|sensitivity|sensitivity-svd|sensitivity-corrected|sensitivity-fisher|sensitivity-3sites|sensitivity-budget|sensitivity-budget-mpo|data-free-low|corrected-lr2e-4|corrected-r5|heal-fresh-n|long-from|balanced|balanced-long|embedding|embedding-svd|embedding-head|embedding-head-mpo|embedding-fisher|embedding-fisher-mpo|output-fisher|mpo-output-fisher|mpo3-output-fisher|mpo4-output-fisher|kfac-weights|kfac-weights-mpo|kfac-more|embedding-auto|fisher-both|eval|bench|bench-q8|bench-stacked|bench-kfac|bench-dense
#
# Work files go to $RUNS (default /work/runs/smollm2); the tables in RESULTS.md come from the
# JSON lines this writes to results/smollm2/*.jsonl.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
B=${B:-$ROOT/.build/release/mpo-train}
M=${M:?set M to SmolLM2-135M-Instruct.Q4_1.gguf}
RUNS=${RUNS:-/work/runs/smollm2}
SHAKESPEARE=$ROOT/Data/tinyshakespeare.txt
HELDOUT=${HELDOUT:-/usr/share/common-licenses/GPL-3}   # general English no healing step saw (Debian's base-files)
mkdir -p "$RUNS"
# The evaluation texts, 16 kB each: the end of Tiny Shakespeare (inside its validation split — the
# healing runs train on the first 90 % of its tokens) and the start of the GPL-3 text.
tail -c 16384 "$SHAKESPEARE" | tail -n +2 > "$RUNS/shakespeare-val16k.txt"
head -c 16384 "$HELDOUT" | head -n -1 > "$RUNS/heldout16k.txt"

# name → compress arguments
declare -A COMPRESS=(
  [svd-r1.5]="--linear-ratio 1.5 --sites svd"  [mpo2-r1.5]="--linear-ratio 1.5 --sites 2"
  [svd-r2]="--linear-ratio 2 --sites svd"      [mpo2-r2]="--linear-ratio 2 --sites 2"   [mpo3-r2]="--linear-ratio 2 --sites 3"
  [mpo4-r2]="--linear-ratio 2 --sites 4"
  [svd-r3]="--linear-ratio 3 --sites svd"      [mpo2-r3]="--linear-ratio 3 --sites 2"
  [svd-r5]="--linear-ratio 5 --sites svd"      [mpo2-r5]="--linear-ratio 5 --sites 2"
  # data-aware truncation (SVD-LLM whitening) calibrated on the first 8,192 tokens of Tiny
  # Shakespeare (its training split; the held-out text stays unseen)
  [svdw-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE"
  [svdw-r3]="--linear-ratio 3 --sites svd --calibration $SHAKESPEARE"
  [svdw-r5]="--linear-ratio 5 --sites svd --calibration $SHAKESPEARE"
  # data-free: calibrated on the original's own samples (selfgen below), no external text
  [svdg-r2]="--linear-ratio 2 --sites svd --calibration $RUNS/selfgen.txt"
  # then error correction: every layer refitted, block by block, to the original's outputs from the
  # compressed model's inputs (--error-correction, docs/SPEC.md §4)
  [svdwc-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --error-correction"
  [svdwc-r5]="--linear-ratio 5 --sites svd --calibration $SHAKESPEARE --error-correction"
  [mpo2wc-r2]="--linear-ratio 2 --sites 2 --calibration $SHAKESPEARE --error-correction --als-sweeps 0"
  # the same for MPOs: the inputs' statistics as a Kronecker product over the input factors (made
  # before --als-sweeps existed: its 0 reproduces them)
  [mpo2w-r2]="--linear-ratio 2 --sites 2 --calibration $SHAKESPEARE --als-sweeps 0"
  [mpo3w-r2]="--linear-ratio 2 --sites 3 --calibration $SHAKESPEARE --als-sweeps 0"
  # and the MPO cores then fitted to the exact output error by ALS (--als-sweeps, default 2)
  [mpo2wa-r2]="--linear-ratio 2 --sites 2 --calibration $SHAKESPEARE"
  [mpo2wca-r2]="--linear-ratio 2 --sites 2 --calibration $SHAKESPEARE --error-correction"
  [mpo3wca-r2]="--linear-ratio 2 --sites 3 --calibration $SHAKESPEARE --error-correction"
  # and the budget allocated on exact errors: each layer's spectrum rescaled by its exact/Kronecker
  # error ratio after ALS at the bonds the spectra gave it (--allocation measured)
  [mpo2wcm-r2]="--linear-ratio 2 --sites 2 --calibration $SHAKESPEARE --error-correction --allocation measured"
  # and the budget weighted by each layer's measured loss sensitivity (one validation batch per layer,
  # each layer compressed alone, whitened + ALS, at the uniform χ)
  [mpo2was-r2]="--linear-ratio 2 --sites 2 --calibration $SHAKESPEARE --sensitivity 1"
  # the same sensitivities (kept in $RUNS/sensitivity-r2.json, see sensitivity_file below) spent by
  # SVD, and by both with error correction: the comparisons at equal allocation signal
  [svdws-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json"
  [svdwcs-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --error-correction --sensitivity-file $RUNS/sensitivity-r2.json"
  [mpo2wcas-r2]="--linear-ratio 2 --sites 2 --calibration $SHAKESPEARE --error-correction --sensitivity-file $RUNS/sensitivity-r2.json"
  # the sensitivities estimated from gradients instead (--sensitivity-method fisher: one truncation
  # and 8 backward passes instead of 210 evaluations), kept for reuse
  [svdwf-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --sensitivity 1 --sensitivity-method fisher --sensitivity-file $RUNS/sensitivity-fisher-svd-r2.json"
  [mpo3was-r2]="--linear-ratio 2 --sites 3 --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json"
  # the same weights (per unit of error, so they serve any budget) spent at 5×, 3× and 1.5×
  [svdws-r5]="--linear-ratio 5 --sites svd --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json"
  [svdws-r3]="--linear-ratio 3 --sites svd --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json"
  [svdws-r1.5]="--linear-ratio 1.5 --sites svd --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json"
  # svdws-r2 with each layer's outputs whitened too, by the loss gradients they receive on the calibration text (K-FAC's two-sided Fisher)
  [svdwsk-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json --output-fisher"
  # the same truncation with the budget weighted by K-FAC instead of the hour of probes (--sensitivity-method kfac: ½·T²·tr(G·W·M·Wᵀ)
  # per layer from the calibration pass's moments), levelling the weighted errors (max) or as one loss budget (sum)
  [svdwkk-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --output-fisher --sensitivity-method kfac --sensitivity-file $RUNS/sensitivity-kfac-r2.json"
  [svdwkkp-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --output-fisher --sensitivity-method kfac --sensitivity-file $RUNS/sensitivity-kfac-r2.json --objective sum"
  # the same at 5× (the configuration that decodes faster than llama.cpp), and at 2× with svdwsefsvd340-r2's table: the whole model 1.9× smaller
  [svdwkkp-r5]="--linear-ratio 5 --sites svd --calibration $SHAKESPEARE --output-fisher --sensitivity-method kfac --sensitivity-file $RUNS/sensitivity-kfac-r2.json --objective sum"
  [svdwkkpefsvd340-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --output-fisher --sensitivity-method kfac --sensitivity-file $RUNS/sensitivity-kfac-r2.json --objective sum --embedding svd:340 --embedding-error fisher"
  # the same size in all as svdwkkpefsvd340-r2 (70,026,624), the table's rank taken from the same loss budget instead of set by hand
  # (--embedding svd:auto: the table one more layer of it, priced by K-FAC as the head in its fisher metric)
  # (svdwkkpefauto-p70m's row: the table priced as the head alone, by the code before the embedding term; today's code prices both, as
  # svdwkkpefauto2-p70m, the same flags)
  [svdwkkpefauto2-p70m]="--params 70026624 --sites svd --calibration $SHAKESPEARE --output-fisher --sensitivity-method kfac --sensitivity-file $RUNS/sensitivity-kfac-r2.json --objective sum --embedding svd:auto --embedding-error fisher"
  [svdwkkpefauto-p70m]="--params 70026624 --sites svd --calibration $SHAKESPEARE --output-fisher --sensitivity-method kfac --sensitivity-file $RUNS/sensitivity-kfac-r2.json --objective sum --embedding svd:auto --embedding-error fisher"
  # the table alone (linears dense) at svd:auto's rank and at svd:340, fisher-truncated: the loss each costs, against K-FAC's price
  [tableonly-svd222]="--embedding svd:222 --embedding-error fisher --calibration $SHAKESPEARE"
  [tableonly-svd340]="--embedding svd:340 --embedding-error fisher --calibration $SHAKESPEARE"
  # … and the 2-site MPO (whitened + ALS) with the same weights and objective: MPO vs SVD at equal allocation signal, no probes
  [mpo2wkkp-r2]="--linear-ratio 2 --sites 2 --calibration $SHAKESPEARE --sensitivity-method kfac --sensitivity-file $RUNS/sensitivity-kfac-r2.json --objective sum"
  # the 2-site MPO truncated by the same two-sided Fisher as svdwsk-r2 (G and M as Kronecker products over its output and
  # input factors, then 2 ALS sweeps in the exact two-sided metric), mpo2was-r2's weights levelled: MPO vs SVD, both K-FAC-truncated
  [mpo2wsk-r2]="--linear-ratio 2 --sites 2 --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json --output-fisher"
  [mpo3wsk-r2]="--linear-ratio 2 --sites 3 --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json --output-fisher"
  [mpo4wsk-r2]="--linear-ratio 2 --sites 4 --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json --output-fisher"
  # … and the tied table weighted per token too (svdwsefsvd340-r2's): the whole model 1.9× smaller, everything cut by the Fisher
  [svdwskefsvd340-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json --output-fisher --embedding svd:340 --embedding-error fisher"
  [mpo2was-r5]="--linear-ratio 5 --sites 2 --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json"
  # svdws-r2 with the tied embedding/head compressed too: one MPO of the (49152, 576) table, bonds ≤ 256
  # ([32, 32, 48] × [8, 8, 9]; 28.3 M → 17.0 M parameters, relative error 0.44; plain SVD of the table at that size: 0.35)
  # (the table truncated by its own error, --embedding-error weight; these two ran before the tied table was truncated as the head)
  [svdwse256-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json --embedding mpo:256 --embedding-error weight"
  # … and as its truncated SVD at the same size (rank 340: 16.9 M parameters)
  [svdwsesvd340-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json --embedding svd:340 --embedding-error weight"
  # the same SVD truncated as the tied head it also is: by the logits' error on the calibration text (the default with --calibration)
  [svdwsewsvd340-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json --embedding svd:340"
  # … and the 3-site MPO of the table truncated as the head (Kronecker-whitened, then 2 ALS sweeps on the exact logit error)
  [svdwsew256-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json --embedding mpo:256"
  # … and the SVD table truncated as the head with each token's logit weighted by the original's mean prediction (K-FAC's two-sided Fisher)
  [svdwsefsvd340-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json --embedding svd:340 --embedding-error fisher"
  # … and the MPO table (svdwsew256-r2's) truncated with the same per-token weights, as a Kronecker product over its token factors, then ALS
  [svdwsefw256-r2]="--linear-ratio 2 --sites svd --calibration $SHAKESPEARE --sensitivity-file $RUNS/sensitivity-r2.json --embedding mpo:256 --embedding-error fisher"
)
# healing: distillation from the original (α 0.5, τ 1) on Tiny Shakespeare's first 90 %; the
# dense control fine-tunes the original with the same loss, data and steps.
HEAL="--teacher $M --data $SHAKESPEARE --lr 5e-4 --distill-weight 0.5 --distill-temperature 1 --batch 4 --context 256 --warmup 20 --eval-interval 50 --eval-batches 8 --seed 2024"
HEAL_STEPS=${HEAL_STEPS:-100}
# data-free healing: the same recipe on the original's own samples (selfgen) instead of Shakespeare
HEAL_GEN="--teacher $M --data $RUNS/selfgen.txt --lr 5e-4 --distill-weight 0.5 --distill-temperature 1 --batch 4 --context 256 --warmup 20 --eval-interval 50 --eval-batches 8 --seed 2024"
# and at the lower peak that healed best there (lr 1e-4)
HEAL_LOW=${HEAL_GEN//--lr 5e-4/--lr 1e-4}

compress() {
  for name in "$@"; do
    [ -f "$RUNS/$name.safetensors" ] && continue
    /usr/bin/time -f "%e s, peak RSS %M KB" "$B" compress --checkpoint "$M" ${COMPRESS[$name]} --eval-batches 0 \
      --out "$RUNS/$name.safetensors" > "$RUNS/$name.compress.log" 2>&1
  done
}

heal() {   # heal NAME INIT [RECIPE]
  local out=$RUNS/heal-$1 resume=""
  [ -f "$out/checkpoint.safetensors" ] && resume="--resume"
  /usr/bin/time -f "%e s, peak RSS %M KB" "$B" train --init "$2" ${3:-$HEAL} --steps "$HEAL_STEPS" --out "$out" $resume >> "$RUNS/heal-$1.log" 2>&1
}


heal_low() {   # heal_low NAME: a compressed model of this script healed on the original's samples at lr 1e-4 (heal-NAME-gen-lr1e-4)
  heal "$1-gen-lr1e-4" "$RUNS/$1.safetensors" "$HEAL_LOW"
}

heal_long() {   # heal_long NAME RUN COUNT STEPS [FLAGS]: the compressed NAME healed as heal_low does (plus FLAGS), as heal-RUN,
  # in one decaying schedule of STEPS steps over batches 0…COUNT−1 of the original's samples (the set selfgen-0to<COUNT−1>.txt)
  local set="selfgen-0to$(( $3 - 1 ))"
  selfgen "$set" 0 "$3"
  HEAL_STEPS=$4 heal "$2" "$RUNS/$1.safetensors" "${HEAL_LOW//selfgen.txt/$set.txt}${5:+ $5}"
}
# The original's own text: GEN_BATCHES × 16 sequences of 512 tokens sampled at temperature 1 with no
# top-k (its full distribution; seeds 16·b for batch b), the sequence headers dropped. Resumable per
# batch. selfgen NAME FIRST COUNT writes batches FIRST…FIRST+COUNT−1 to $RUNS/NAME.txt (selfgen.txt:
# batches 0–11; selfgen2.txt: 12–23, fresh samples for a second healing stage).
selfgen() {
  local name=${1:-selfgen} first=${2:-0} count=${3:-${GEN_BATCHES:-12}} files=""
  [[ $name =~ ^selfgen-[0-9]+$ ]] && { echo "selfgen: $name.txt is batch ${name#selfgen-}'s file; name the set otherwise" >&2; exit 64; }
  [ -f "$RUNS/$name.txt" ] && return
  for b in $(seq "$first" $((first + count - 1))); do
    files="$files $RUNS/selfgen-$b.txt"
    [ -f "$RUNS/selfgen-$b.txt" ] && continue
    "$B" sample --checkpoint "$M" --batch 16 --tokens 512 --temperature 1 --top-k 0 --seed $((16 * b)) 2>/dev/null \
      | grep -v '^--- sequence' > "$RUNS/selfgen-$b.tmp" && mv "$RUNS/selfgen-$b.tmp" "$RUNS/selfgen-$b.txt"
  done
  cat $files > "$RUNS/$name.txt"
}

# mpo2was-r2's sensitivities as a --sensitivity-file: converted from its committed log (four decimals;
# it ran before the option existed), so the comparisons reuse them instead of probing for an hour.
# To measure afresh instead: compress … --sensitivity 1 --sensitivity-file $RUNS/sensitivity-r2.json
sensitivity_file() {
  [ -f "$RUNS/sensitivity-r2.json" ] || python3 "$HERE/sensitivity_from_log.py" "$HERE/compress-logs/mpo2was-r2.compress.log" "$M" "$RUNS/sensitivity-r2.json"
}

evaluate() {   # evaluate LABEL CHECKPOINT [EVAL ARGS…] → one JSON line per text in results/smollm2/eval.jsonl
  local label=$1 ckpt=$2; shift 2
  for text in shakespeare heldout; do
    grep -q "\"label\":\"$label\",\"text\":\"$text\"" "$HERE/eval.jsonl" 2>/dev/null && continue
    if [ $text = shakespeare ]; then file=$RUNS/shakespeare-val16k.txt; else file=$RUNS/heldout16k.txt; fi
    line=$("$B" eval --checkpoint "$ckpt" --data "$file" --split all --context 512 --json "$@" | tail -1) || continue
    echo "{\"label\":\"$label\",\"text\":\"$text\",\"result\":$line}" >> "$HERE/eval.jsonl"
  done
}

case "${1:-}" in
  compress) compress "${!COMPRESS[@]}" ;;
  compress-one) shift; compress "$@" ;;   # compress-one NAME…
  heal-one) heal "$2" "$RUNS/$2.safetensors" ;;   # heal-one NAME (a compressed model of this script)
  heal-low) compress "$2"; heal_low "$2" ;;   # heal-low NAME: a compressed model of this script healed on the original's samples at lr 1e-4 (heal_low)
  heal-more) heal "$2-stage2" "$RUNS/heal-$2/checkpoint.safetensors" ;;   # heal-more NAME: 100 more steps from a healed run, a fresh schedule
  heal-more-gen) heal "$2-stage2" "$RUNS/heal-$2/checkpoint.safetensors" "$HEAL_GEN" ;;   # heal-more-gen NAME: 100 more steps on the self-generated text
  selfgen) selfgen ;;
  heal-fresh)   # heal-fresh NAME: 100 more data-free steps from heal-NAME on fresh samples (selfgen2), at lr 5e-4 and at 1e-4
    selfgen selfgen2 12 12
    FRESH=${HEAL_GEN//selfgen.txt/selfgen2.txt}
    heal "$2-fresh" "$RUNS/heal-$2/checkpoint.safetensors" "$FRESH"
    heal "$2-fresh-lr1e-4" "$RUNS/heal-$2/checkpoint.safetensors" "${FRESH//--lr 5e-4/--lr 1e-4}" ;;
  heal-fresh-low) heal "$2-fresh-lr1e-4" "$RUNS/heal-$2/checkpoint.safetensors" "${HEAL_LOW//selfgen.txt/selfgen2.txt}" ;;   # heal-fresh-low NAME: 100 steps from heal-NAME on the fresh samples at lr 1e-4
  heal-fresh3)   # heal-fresh3 NAME: 100 steps from heal-NAME at lr 1e-4 on a third set of fresh samples (batches 24–35, selfgen3)
    selfgen selfgen3 24 12
    heal "$2-fresh3" "$RUNS/heal-$2/checkpoint.safetensors" "${HEAL_LOW//selfgen.txt/selfgen3.txt}" ;;
  heal-fresh-n)   # heal-fresh-n NAME FIRST SUFFIX: 100 steps from heal-NAME at lr 1e-4 on 12 fresh batches FIRST…FIRST+11
    # (selfgen-fromFIRST.txt); the run is heal-NAME-SUFFIX (heal-fresh-n …-fresh3 36 fresh4: the fifth data-free stage)
    selfgen "selfgen-from$3" "$3" 12
    heal "$2-$4" "$RUNS/heal-$2/checkpoint.safetensors" "${HEAL_LOW//selfgen.txt/selfgen-from$3.txt}" ;;
  data-free)   # calibration on the original's own samples (svdg-r2), and the whitened 2× model healed on them
    selfgen
    compress svdg-r2 svdw-r2
    heal svdw-r2-gen "$RUNS/svdw-r2.safetensors" "$HEAL_GEN" ;;
  corrected)   # error correction: the 2× SVD and MPO models, and the 2× SVD model healed on the original's own samples (lr 5e-4, 1e-4)
    compress svdwc-r2 mpo2wc-r2
    heal svdwc-r2-gen "$RUNS/svdwc-r2.safetensors" "$HEAL_GEN"
    heal_low svdwc-r2 ;;
  long)   # one run, one decaying schedule: the error-corrected 2× model healed on 36 batches of the original's samples
    # (0–35: selfgen, selfgen2 and 12 more, 294,912 tokens) at lr 1e-4, 288 steps of 1,024 tokens — about one pass
    heal_long svdwc-r2 svdwc-r2-long 36 "${LONG_STEPS:-288}" ;;
  long-from)   # long-from NAME COUNT: one run, one decaying schedule, from the compressed NAME over batches 0…COUNT−1 of the
    # original's samples, COUNT·100/12 steps at lr 1e-4 — the data and steps of COUNT/12 fresh-sample stages without the
    # restarts (long-from svdws-r2 48 against heal-svdws-r2-gen-lr1e-4-fresh2-fresh3-fresh4)
    heal_long "$2" "$2-long$3" "$3" $(( $3 * 100 / 12 )) ;;
  balanced-long)   # balanced-long NAME COUNT: long-from with --balance-cores — the MPO given SVD's long schedule
    # (balanced-long mpo2was-r2 48 → heal-mpo2wasb-r2-long48, against heal-svdws-r2-long48): does more healing close the gap?
    heal_long "$2" "${2/-r/b-r}-long$3" "$3" $(( $3 * 100 / 12 )) --balance-cores ;;
  balanced)   # balanced NAME: NAME healed as heal_low does, with train --balance-cores (its cores rescaled to one RMS per
    # layer before the first step: the same weights in another gauge) — does Adam's equal absolute step on cores of unequal
    # scale hold the MPO back? The run is heal-NAMEb-…: balanced mpo2was-r2 → heal-mpo2wasb-r2-gen-lr1e-4
    heal "${2/-r/b-r}-gen-lr1e-4" "$RUNS/$2.safetensors" "$HEAL_LOW --balance-cores" ;;
  embedding)   # the one row with the embedding compressed too: svdws-r2's linears and an MPO embedding (svdwse256-r2),
    # healed as svdws-r2 was (heal_low: 100 steps on the original's samples at lr 1e-4)
    sensitivity_file; compress svdwse256-r2
    heal_low svdwse256-r2 ;;
  embedding-svd)   # the same with the table's truncated SVD of the same size (svdwsesvd340-r2), healed the same way
    sensitivity_file; compress svdwsesvd340-r2
    heal_low svdwsesvd340-r2 ;;
  embedding-head)   # the SVD embedding truncated as the head (svdwsewsvd340-r2), healed the same way
    sensitivity_file; compress svdwsewsvd340-r2
    heal_low svdwsewsvd340-r2 ;;
  embedding-fisher-mpo)   # the 3-site MPO table with the per-token weights (svdwsefw256-r2), healed the same way: MPO vs SVD on the fisher table
    sensitivity_file; compress svdwsefw256-r2
    heal_low svdwsefw256-r2 ;;
  embedding-fisher)   # the SVD table truncated as the head, logits weighted per token (svdwsefsvd340-r2), healed the same way
    sensitivity_file; compress svdwsefsvd340-r2
    heal_low svdwsefsvd340-r2 ;;
  output-fisher)   # svdws-r2 truncated by K-FAC's two-sided Fisher (svdwsk-r2), healed as svdws-r2 was
    sensitivity_file; compress svdwsk-r2
    heal_low svdwsk-r2 ;;
  kfac-weights)   # svdwsk-r2 with K-FAC's weights instead of the probes' (max and sum objectives); the loss budget (sum) healed as it was
    compress svdwkk-r2 svdwkkp-r2
    selfgen
    heal_low svdwkkp-r2 ;;
  kfac-more)   # the loss budget at 5× and with the fisher table (svdwkkp-r5, svdwkkpefsvd340-r2), each healed as svdwkkp-r2 was
    compress svdwkk-r2 svdwkkp-r5 svdwkkpefsvd340-r2
    selfgen
    heal_low svdwkkp-r5
    heal_low svdwkkpefsvd340-r2 ;;
  mpo-output-fisher)   # the 2-site MPO truncated by K-FAC's two-sided Fisher (mpo2wsk-r2), healed as mpo2was-r2 was in the
    # balanced gauge (heal-mpo2wskb-r2-gen-lr1e-4, against heal-mpo2wasb-r2-gen-lr1e-4 and svdwsk-r2's heal)
    sensitivity_file; compress mpo2wsk-r2
    heal "mpo2wskb-r2-gen-lr1e-4" "$RUNS/mpo2wsk-r2.safetensors" "$HEAL_LOW --balance-cores" ;;
  mpo3-output-fisher)   # the same with 3 sites (mpo3wsk-r2, against mpo3was-r2), healed the same way
    sensitivity_file; compress mpo3wsk-r2
    heal "mpo3wskb-r2-gen-lr1e-4" "$RUNS/mpo3wsk-r2.safetensors" "$HEAL_LOW --balance-cores" ;;
  mpo4-output-fisher)   # the same with 4 sites (mpo4wsk-r2), healed the same way: SVD and 2/3/4 sites under one truncation
    sensitivity_file; compress mpo4wsk-r2
    heal "mpo4wskb-r2-gen-lr1e-4" "$RUNS/mpo4wsk-r2.safetensors" "$HEAL_LOW --balance-cores" ;;
  kfac-weights-mpo)   # the 2-site MPO with the same weights as one loss budget (mpo2wkkp-r2)
    compress svdwkk-r2 mpo2wkkp-r2 ;;
  embedding-auto)   # svdwkkpefauto2-p70m, healed as svdwkkpefsvd340-r2 was: the table's rank from the loss budget against svd:340 by hand
    compress svdwkkpefauto2-p70m
    heal_low svdwkkpefauto2-p70m ;;
  fisher-both)   # svdwsk-r2's linears and svdwsefsvd340-r2's table in one model (svdwskefsvd340-r2), healed the same way
    sensitivity_file; compress svdwskefsvd340-r2
    heal_low svdwskefsvd340-r2 ;;
  embedding-head-mpo)   # the 3-site MPO table truncated as the head (svdwsew256-r2), healed the same way: MPO vs SVD on the table
    sensitivity_file; compress svdwsew256-r2
    heal_low svdwsew256-r2 ;;
  mpo-corrected)   # the error-corrected 2-site MPO healed as the corrected SVD model was (own samples, lr 1e-4): MPO vs SVD after the same healing
    compress mpo2wc-r2
    heal_low mpo2wc-r2 ;;
  als)   # exact (ALS) whitened MPOs: whitened, and whitened + error-corrected; the Kronecker-whitened model's exact
    # per-layer output errors (--als-sweeps 0 prints them now; its model is mpo2w-r2's); the corrected one healed as SVD was
    compress mpo2wa-r2 mpo2wca-r2
    [ -f "$RUNS/mpo2w-r2.exact-errors.log" ] || "$B" compress --checkpoint "$M" ${COMPRESS[mpo2w-r2]} --eval-batches 0 \
      --out "$RUNS/mpo2w-r2-again.safetensors" > "$RUNS/mpo2w-r2.exact-errors.log" 2>&1
    heal_low mpo2wca-r2 ;;
  als3)   # the same for 3 sites: the corrected ALS 3-site MPO, healed as the corrected SVD was
    compress mpo3wca-r2
    heal_low mpo3wca-r2 ;;
  als-measured)   # the corrected 2-site ALS MPO with its budget allocated on measured exact errors (--allocation measured),
    # healed as mpo2wca-r2 and the corrected SVD were
    compress mpo2wcm-r2
    heal_low mpo2wcm-r2 ;;
  sensitivity)   # the whitened ALS 2-site MPO with its budget weighted by measured loss sensitivity, healed as the others
    compress mpo2was-r2
    heal_low mpo2was-r2 ;;
  sensitivity-svd)   # whitened SVD with mpo2was-r2's sensitivity weights, healed as it was: SVD vs MPO at equal allocation signal
    sensitivity_file; compress svdws-r2
    heal_low svdws-r2 ;;
  sensitivity-corrected)   # both with error correction as well (the MPO with ALS), healed the same way
    sensitivity_file; compress svdwcs-r2 mpo2wcas-r2
    heal_low svdwcs-r2
    heal_low mpo2wcas-r2 ;;
  sensitivity-fisher)   # whitened SVD with Fisher-estimated sensitivities (no probes), healed the same way
    compress svdwf-r2
    heal_low svdwf-r2 ;;
  sensitivity-3sites)   # the 3-site MPO (whitened + ALS) with the same weights, healed the same way
    sensitivity_file; compress mpo3was-r2
    heal_low mpo3was-r2 ;;
  sensitivity-budget-mpo)   # sensitivity-budget-mpo R: the 2-site whitened ALS MPO at R× with the same weights, healed the same way
    sensitivity_file; compress "mpo2was-r$2"
    heal_low "mpo2was-r$2" ;;
  data-free-low)   # the whitened 2× model (spectra's allocation) healed as data-free above at lr 1e-4 instead of 5e-4: what the
    # lower peak alone gives, and what the sensitivity weights add at the same recipe (svdws-r2-gen-lr1e-4)
    compress svdw-r2
    heal_low svdw-r2 ;;
  sensitivity-budget)   # sensitivity-budget R: the whitened SVD at R× (5, 3 or 1.5) with the probe's weights, healed as svdws-r2 was
    sensitivity_file; compress "svdws-r$2"
    heal_low "svdws-r$2" ;;
  corrected-lr2e-4)   # the corrected 2× model healed as in `corrected`, at a peak between the one that broke it (5e-4) and 1e-4
    heal svdwc-r2-gen-lr2e-4 "$RUNS/svdwc-r2.safetensors" "${HEAL_GEN//--lr 5e-4/--lr 2e-4}" ;;
  corrected-r5)   # the 5× model (the configuration faster than llama.cpp in q8) with error correction, healed on own samples at lr 1e-4
    compress svdwc-r5
    heal_low svdwc-r5 ;;
  heal)
    compress svd-r2 mpo2-r2
    heal svd-r2 "$RUNS/svd-r2.safetensors"
    heal mpo2-r2 "$RUNS/mpo2-r2.safetensors"
    heal dense-control "$M" ;;
  eval)
    evaluate original "$M"
    for name in $(printf '%s\n' "${!COMPRESS[@]}" | sort); do [ -f "$RUNS/$name.safetensors" ] && evaluate "$name" "$RUNS/$name.safetensors"; done
    for run in "$RUNS"/heal-*; do   # finished runs only
      grep -q "^done in" "$run.log" 2>/dev/null || grep -q "^done in" "$(readlink -f "$run").log" 2>/dev/null || continue
      evaluate "$(basename "$run")" "$run/checkpoint.safetensors"
    done
    # what storing the weights in 16 or 8 bits costs (--core-dtype)
    for d in f16 bf16 q8; do
      evaluate "original@$d" "$M" --core-dtype $d
      [ -f "$RUNS/heal-svd-r2/checkpoint.safetensors" ] && evaluate "heal-svd-r2@$d" "$RUNS/heal-svd-r2/checkpoint.safetensors" --core-dtype $d
    done
    # the healed whitened models as they are timed (bench-q8, bench-stacked)
    for name in svdw-r2 svdw-r5 svdwc-r5-gen-lr1e-4 svdwc-r2-long svdwkkp-r5-gen-lr1e-4; do
      [ -f "$RUNS/heal-$name/checkpoint.safetensors" ] && evaluate "heal-$name@q8" "$RUNS/heal-$name/checkpoint.safetensors" --core-dtype q8
    done ;;
  bench)   # side by side in one run: ours (the original dequantised to f32, compressed models) and llama.cpp
    # (the Q4_1 file and our F16 export of the original); a healed model decodes at its compressed twin's speed.
    PY=${PY:-$ROOT/.venv-peer/bin/python}
    "$B" export --checkpoint "$M" --dtype f16 --out "$RUNS/original.f16.gguf" > /dev/null
    lscpu | grep -E "Model name|^CPU\(s\)" | tr -s ' ' > "$HERE/decode.cpu.txt"
    # name@f16 / name@bf16: the same file with its large weights stored in 16 bits (--core-dtype)
    "$B" bench --decode --checkpoint "$M,$M@f16,$RUNS/svd-r2.safetensors,$RUNS/svd-r2.safetensors@f16,$RUNS/svd-r2.safetensors@bf16,$RUNS/mpo2-r2.safetensors,$RUNS/mpo3-r2.safetensors,$RUNS/svd-r3.safetensors,$RUNS/svd-r3.safetensors@f16,$RUNS/svd-r5.safetensors,$RUNS/svd-r5.safetensors@f16,$RUNS/mpo2-r5.safetensors" \
      --threads 2 --prompt-tokens 32 --decode-tokens 128 --json > "$HERE/decode.jsonl"
    for g in "$M" "$RUNS/original.f16.gguf"; do
      "$PY" "$ROOT/Benchmarks/peer/llamacpp_decode.py" --gguf "$g" --threads 2 --tokens 128 | sed "s|^{|{\"gguf\": \"$(basename "$g")\", |" >> "$HERE/decode.jsonl"
    done ;;
  bench-q8)   # interleaved: llama.cpp on the Q4_1 file, then ours (healed whitened SVD 5× and 2× in q8 and f16, the
    # original in q8 and f32), ROUNDS times — this VM's speed drifts ±10 % between runs, so only neighbours compare
    PY=${PY:-$ROOT/.venv-peer/bin/python}
    lscpu | grep -E "Model name|^CPU\(s\)" | tr -s ' ' > "$HERE/decode-q8.cpu.txt"
    for round in $(seq "${ROUNDS:-3}"); do
      "$PY" "$ROOT/Benchmarks/peer/llamacpp_decode.py" --gguf "$M" --threads 2 --tokens 128 | sed "s|^{|{\"round\": $round, \"gguf\": \"$(basename "$M")\", |" >> "$HERE/decode-q8.jsonl"
      for ck in "$RUNS/heal-svdw-r5/checkpoint.safetensors@q8" "$RUNS/heal-svdw-r5/checkpoint.safetensors@f16" \
                "$RUNS/heal-svdw-r2/checkpoint.safetensors@q8" "$RUNS/heal-svdw-r2/checkpoint.safetensors@f16" "$M@q8" "$M"; do
        "$B" bench --decode --checkpoint "$ck" --threads 2 --prompt-tokens 32 --decode-tokens 128 --json | tail -1 \
          | sed "s|^{|{\"round\": $round, |" >> "$HERE/decode-q8.jsonl"
      done
    done ;;
  bench-kfac)   # interleaved, ROUNDS times: llama.cpp on the Q4_1 file, then the K-FAC loss-budget 5× model healed (q8, stacked
    # factors, the default), the original in q8 and in f32 — the best 5× model's speed beside llama.cpp's. KFAC_CK=compressed times
    # svdwkkp-r5 as compressed (the healed model's shapes, so its speed) where the heal is not on the machine; TAG names the files
    # (decode-kfac$TAG.jsonl, .cpu.txt), one per CPU
    PY=${PY:-$ROOT/.venv-peer/bin/python} TAG=${TAG:-}
    ck5=$RUNS/heal-svdwkkp-r5-gen-lr1e-4/checkpoint.safetensors
    [ "${KFAC_CK:-healed}" = compressed ] && { compress svdwkkp-r5; ck5=$RUNS/svdwkkp-r5.safetensors; }
    lscpu | grep -E "Model name|^CPU\(s\)|^CPU family|^Model:|^Flags" | tr -s ' ' > "$HERE/decode-kfac$TAG.cpu.txt"
    for round in $(seq "${ROUNDS:-3}"); do
      "$PY" "$ROOT/Benchmarks/peer/llamacpp_decode.py" --gguf "$M" --threads 2 --tokens 128 | sed "s|^{|{\"round\": $round, \"gguf\": \"$(basename "$M")\", |" >> "$HERE/decode-kfac$TAG.jsonl"
      for ck in "$ck5@q8" "$M@q8" "$M"; do
        "$B" bench --decode --checkpoint "$ck" --threads 2 --prompt-tokens 32 --decode-tokens 128 --json | tail -1 \
          | sed "s|^{|{\"round\": $round, |" >> "$HERE/decode-kfac$TAG.jsonl"
      done
    done ;;
  bench-dense)   # interleaved, ROUNDS times: our dense original in f32 and the K-FAC 2× model (svdwkkp-r2, as compressed: its healed
    # twins' shapes) in q8 and f16 — the issue's "≥ 1.5× our dense decode speed in ≤ 0.6× its RSS" on this CPU (TAG names the files)
    TAG=${TAG:-}
    compress svdwkkp-r2
    lscpu | grep -E "Model name|^CPU\(s\)|^CPU family|^Model:" | tr -s ' ' > "$HERE/decode-dense$TAG.cpu.txt"
    for round in $(seq "${ROUNDS:-3}"); do
      for ck in "$M" "$RUNS/svdwkkp-r2.safetensors@q8" "$RUNS/svdwkkp-r2.safetensors@f16"; do
        "$B" bench --decode --checkpoint "$ck" --threads 2 --prompt-tokens 32 --decode-tokens 128 --json | tail -1 \
          | sed "s|^{|{\"round\": $round, |" >> "$HERE/decode-dense$TAG.jsonl"
      done
    done ;;
  bench-stacked)   # interleaved, ROUNDS times: llama.cpp on the Q4_1 file, then the healed whitened 5× and 2× models in q8 with
    # each block's q/k/v and gate/up as one product of their stacked V factors, and layer by layer (--layer-by-layer)
    PY=${PY:-$ROOT/.venv-peer/bin/python}
    lscpu | grep -E "Model name|^CPU\(s\)" | tr -s ' ' > "$HERE/decode-stacked.cpu.txt"
    for round in $(seq "${ROUNDS:-3}"); do
      "$PY" "$ROOT/Benchmarks/peer/llamacpp_decode.py" --gguf "$M" --threads 2 --tokens 128 | sed "s|^{|{\"round\": $round, \"gguf\": \"$(basename "$M")\", |" >> "$HERE/decode-stacked.jsonl"
      for ck in "$RUNS/heal-svdw-r5/checkpoint.safetensors@q8" "$RUNS/heal-svdw-r2/checkpoint.safetensors@q8"; do
        for how in "" --layer-by-layer; do
          "$B" bench --decode --checkpoint "$ck" --threads 2 --prompt-tokens 32 --decode-tokens 128 --json $how | tail -1 \
            | sed "s|^{|{\"round\": $round, |" >> "$HERE/decode-stacked.jsonl"
        done
      done
    done ;;
  *) echo "usage: M=… bash results/smollm2/run.sh compress|heal|data-free|corrected|long|mpo-corrected|als|als3|als-measured|sensitivity|sensitivity-svd|sensitivity-corrected|sensitivity-fisher|sensitivity-3sites|sensitivity-budget|sensitivity-budget-mpo|data-free-low|corrected-lr2e-4|corrected-r5|heal-fresh-n|long-from|balanced|balanced-long|embedding|embedding-svd|embedding-head|embedding-head-mpo|embedding-fisher|output-fisher|mpo-output-fisher|mpo3-output-fisher|mpo4-output-fisher|kfac-weights|kfac-weights-mpo|kfac-more|embedding-auto|fisher-both|eval|bench|bench-q8|bench-stacked|bench-kfac|bench-dense"; exit 64 ;;
esac
