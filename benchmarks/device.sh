#!/usr/bin/env bash
# Encoder throughput on one GPU, in one command (~3-5 min on an H200, < 8 min worst case):
#   1. peak bf16 matmul FLOP/s (benchmarks/peak_flops.py)          -> peak.json
#   2. encoder.py, bf16: MLM train step + item embedding, MiniLM   -> encoder_minilm.json
#   3. the same for BERT-base                                      -> encoder_bert_base.json
#   4. the bare layer stack (forward, forward+backward), both      -> layers_*.json
#   5. the recommender train step (roofline.py SASRec rows, bf16 blocks, float32 L_f) at the
#      synthetic, Scientific and a 100k-item catalogue shape                -> recommender.json
# Each run is its own process with its own timeout, so one failure keeps the others' results.
# Weights are random (speed does not depend on their values): no weights package, no internet.
# Needs only jax (CUDA), flax, optax, numpy.  Run from anywhere:
#   bash benchmarks/device.sh            # results under $OUT, or ./device_out when unset
# PYTHON=... picks the interpreter (default python3).  Extra XLA_FLAGS from the caller are kept.
# PEAK_ARGS / ENC_ARGS append flags (a CPU smoke test of this script:
#   PYTHON=.venv/bin/python PEAK_ARGS="--sizes 256" ENC_ARGS="--steps 1 --batch 2 --embed-batch 2" \
#   REC_ARGS="--batch 4 --seq 8 --hidden 16 --mlp 32 --n-items 50 --steps 1 --peak-sizes 256" \
#   OUT=/tmp/dev_smoke bash benchmarks/device.sh ).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-./device_out}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-1}"
# XLA's GPU defaults are what a user gets (autotuned cuBLAS / Triton GEMMs, command buffers);
# we only let the allocator take 90% of the card instead of 75% (B=512 MLM logits are 4 GB
# in float32, several copies live at once).
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.90}"

log="$out/device.log"
: > "$log"
say() { echo "$*" | tee -a "$log"; }
run() {  # run SECONDS NAME CMD...: one step with a time limit, output to the log
  local limit=$1 name=$2; shift 2
  say "=== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  say "=== $name: rc=$rc, $((SECONDS - t0)) s"
  return 0
}

say "date: $(date -u +%FT%TZ)  host: $(uname -m)  python: $("$py" --version 2>&1)"
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,power.draw,temperature.gpu \
  --format=csv 2>&1 | tee -a "$log" || true
"$py" - <<'PY' 2>&1 | tee -a "$log"
import jax, flax, optax
print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__,
      "backend", jax.default_backend(), jax.devices())
PY

run 60 peak "$py" benchmarks/peak_flops.py --dtype bfloat16 --json ${PEAK_ARGS:-}
peak=$(grep -h '"bench": "peak_flops"' "$log" | tail -1 | "$py" -c \
  'import json,sys; print(json.loads(sys.stdin.read())["peak_flops_per_s"])' 2>/dev/null)
grep -h '"bench": "peak_flops"' "$log" | tail -1 > "$out/peak.json" || true
peak_arg=()
if [ -n "$peak" ]; then peak_arg=(--peak "$peak"); else say "peak not measured: encoder.py measures it"; fi

enc=("$py" benchmarks/encoder.py --dtype bfloat16 --seq 64 --steps 20 "${peak_arg[@]}"
     ${ENC_ARGS:-})
run 100 encoder_minilm "${enc[@]}" --config minilm --out "$out/encoder_minilm.json"
run 160 encoder_bert_base "${enc[@]}" --config bert_base --out "$out/encoder_bert_base.json"
run 70 layers_minilm "${enc[@]}" --config minilm --layers-only --out "$out/layers_minilm.json"
run 70 layers_bert_base "${enc[@]}" --config bert_base --layers-only \
  --out "$out/layers_bert_base.json"

peak_kv=()
if [ -n "$peak" ]; then peak_kv=(--peak "bfloat16=$peak"); fi
run 120 recommender "$py" benchmarks/roofline.py --sasrec-dtype bfloat16 --encoder none \
  --batch 64,48,256 --hidden 64,300,300 --mlp 128,256,1024 --n-items 1000,4385,100000 \
  "${peak_kv[@]}" ${REC_ARGS:-} --json
grep -h '"bench": "roofline"' "$log" | tail -1 > "$out/recommender.json" || true

say ""
say "=== summary (bf16; MFU against the measured peak above)"
"$py" - "$out" <<'PY' 2>&1 | tee -a "$log"
import glob, json, os, sys
rows, peak = [], None
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
  try:
    rec = json.load(open(path))
  except (OSError, ValueError):
    continue
  if rec.get("bench") == "peak_flops":
    peak = rec["peak_flops_per_s"]
  for r in rec.get("rows", []):
    rows.append(dict(r, config=f"rec D={r['hidden']}") if r.get("model") == "sasrec" else r)
print(f"peak bf16 matmul: {peak / 1e12:.2f} TFLOP/s" if peak else "peak: missing")
print(f"{'config':10s} {'mode':15s} {'batch':>6s} {'ms/call':>8s} {'tokens/s':>12s} "
      f"{'items/s':>10s} {'TFLOP/s':>8s} {'MFU':>6s} {'compile+1st s':>13s}")
for r in rows:
  toks = r["batch"] * r["seq"] / r["median_s"]
  items = f"{r['items_per_s']:10.0f}" if "items_per_s" in r else " " * 10
  print(f"{r['config']:10s} {r['mode']:15s} {r['batch']:6d} {r['median_s'] * 1e3:8.2f} "
        f"{toks:12.0f} {items} {r['achieved_flops_per_s'] / 1e12:8.2f} "
        f"{100 * r['mfu']:5.1f}% {r['first_call_s']:13.1f}")
PY
nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv 2>&1 | tee -a "$log" || true
ls -la "$out"
