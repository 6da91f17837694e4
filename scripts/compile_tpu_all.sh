#!/usr/bin/env bash
# Every configs/azr.py preset x its TPU slices through scripts/compile_tpu.py, one at a time (each
# compile is heavy), logs in artifacts/compile_tpu/MODEL,HOST.log; then the docs table:
#   scripts/compile_tpu_all.sh [--extrapolate]
#   .venv/bin/python scripts/compile_tpu.py --summarize=artifacts/compile_tpu
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
OUT=artifacts/compile_tpu
mkdir -p "$OUT"
MODELS="${MODELS:-qwen2.5-coder-3b qwen3-4b-base qwen2.5-coder-7b qwen2.5-7b llama-3.1-8b qwen2.5-coder-14b}"
for model in $MODELS; do
  # each model's TPU slices (configs/azr.py tpu_hosts: each generation's smallest that holds it)
  hosts="${HOSTS:-$("$PY" -c "import importlib.util as u; s = u.spec_from_file_location('a', 'configs/azr.py'); m = u.module_from_spec(s); s.loader.exec_module(m); print(*m.tpu_hosts('$model'))")}"
  for host in $hosts; do
    log="$OUT/$model,$host.log"
    [ -s "$log" ] && tail -1 "$log" | grep -q '"fits"' && continue  # done already
    echo "== $model,$host"
    "$PY" scripts/compile_tpu.py --config="configs/azr.py:$model,$host" "$@" >"$log.tmp" 2>"$log.err" \
      && mv "$log.tmp" "$log" && tail -1 "$log" | cut -c1-200
  done
done
