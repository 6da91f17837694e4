#!/usr/bin/env bash
# The GPU figures of issue 5 in one run (for a session lent a GPU by the device tool):
# train-step throughput and MFU of a Qwen2.5-0.5B-shaped model in bfloat16 at length 2048,
# with each attention implementation, with and without remat, against the PyTorch step; then
# where each variant's step time goes (profiler traces, summed per op).
#   bash scripts/gpu_checks.sh [OUT_DIR]
# OUT_DIR gets: gpu.txt, train_step.log, train_step.json (the benchmark's JSON line) and
# trace_<variant>.txt (top ops). Uses the machine's python (jax[cuda], flax, torch,
# transformers installed), about 4-5 minutes on an H100/H200.
set -euo pipefail
out="${1:-${OUT:-.}}"
mkdir -p "$out"
traces="$(mktemp -d)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python scripts/bench_train_step.py --preset qwen0.5b --dtype bfloat16 --length 2048 --batch 4 \
  --remat both --attention einsum,cudnn,xla --steps 5 --warmup 2 --trace_dir "$traces" \
  2>&1 | tee "$out/train_step.log"
tail -n 1 "$out/train_step.log" > "$out/train_step.json"
for dir in "$traces"/*/; do
  name="$(basename "$dir")"
  python scripts/trace_summary.py "$dir" --top 30 > "$out/trace_$name.txt" || true
done
