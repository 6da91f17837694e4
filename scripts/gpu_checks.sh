#!/usr/bin/env bash
# The GPU figures of issue 5 in one run (for a session lent a GPU by the device tool):
# train-step throughput and MFU of a Qwen2.5-0.5B-shaped model in bfloat16 at length 2048,
# with each attention implementation, with and without remat, against the PyTorch step.
#   bash scripts/gpu_checks.sh [OUT_DIR]        # last line of OUT_DIR/train_step.json: the JSON
# Uses the machine's python (the device image has jax[cuda], flax, torch, transformers).
set -euo pipefail
out="${1:-${OUT:-.}}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python scripts/bench_train_step.py --preset qwen0.5b --dtype bfloat16 --length 2048 --batch 4 \
  --remat both --attention einsum,cudnn,xla --steps 5 --warmup 2 2>&1 | tee "$out/train_step.log"
tail -n 1 "$out/train_step.log" > "$out/train_step.json"
