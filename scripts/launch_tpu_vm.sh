#!/usr/bin/env bash
# Train azr_jax on a Cloud TPU VM or pod slice: create (or reuse) it, copy the project to every
# worker, install it, and start the same training command on all workers.
#
#   scripts/launch_tpu_vm.sh up [TRAIN FLAGS...]  # create + install + train
#   scripts/launch_tpu_vm.sh create               # create the TPU VM, or reuse it if it exists
#   scripts/launch_tpu_vm.sh install              # copy HEAD (git archive) to every worker, then
#                                                 # scripts/setup_tpu_vm.sh there (Python >= 3.11
#                                                 # via uv on the 3.10 images, pinned jax[tpu])
#   scripts/launch_tpu_vm.sh train [TRAIN FLAGS...]  # start scripts/train.py on every worker
#   scripts/launch_tpu_vm.sh status               # the VM's state and whether training runs
#   scripts/launch_tpu_vm.sh logs                 # worker 0's train.log (FOLLOW=1 to follow)
#   scripts/launch_tpu_vm.sh run 'COMMAND'        # COMMAND in ~/azr_jax on every worker
#   scripts/launch_tpu_vm.sh stop                 # stop training on every worker
#   scripts/launch_tpu_vm.sh delete               # delete the TPU VM
#
# Settings (environment):
#   NAME=azr-jax  ZONE=us-central2-b  ACCELERATOR_TYPE=v4-8 (v4-8 | v5litepod-8 | v5p-8 | v4-32 ...)
#   RUNTIME_VERSION  default per generation: tpu-ubuntu2204-base (v4), v2-alpha-tpuv5-lite (v5e),
#                    v2-alpha-tpuv5 (v5p), v2-alpha-tpuv6e (v6e)
#   PROJECT          gcloud project (default: gcloud's configured one)
#   MODEL=qwen2.5-coder-7b  HOST (configs/azr.py host preset; default from ACCELERATOR_TYPE)
#   OUTPUT_DIR       run directory, gs://BUCKET/PATH on a pod slice (every worker must see it)
#   SPOT=1           create a Spot TPU VM
#   DRY_RUN=1        print the gcloud commands instead of running them
# Training flags after the command go to scripts/train.py, e.g. --config.num_steps=100.
set -euo pipefail

NAME="${NAME:-azr-jax}"
ZONE="${ZONE:-us-central2-b}"
ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v4-8}"
MODEL="${MODEL:-qwen2.5-coder-7b}"
PROJECT="${PROJECT:-}"
OUTPUT_DIR="${OUTPUT_DIR:-}"
SPOT="${SPOT:-0}"
FOLLOW="${FOLLOW:-0}"
DRY_RUN="${DRY_RUN:-0}"
REMOTE_DIR="azr_jax"

# The configs/azr.py host preset: the slice's own where there is one (v4-16, v4-32,
# v5litepod-16, v5litepod-32: the slices 7B/14B models need on v4 and v5e), else the
# generation's smallest.
case "$ACCELERATOR_TYPE" in
  v4-16 | v4-32) default_runtime="tpu-ubuntu2204-base"; default_host="$ACCELERATOR_TYPE" ;;
  v4-*) default_runtime="tpu-ubuntu2204-base"; default_host="v4-8" ;;
  v5litepod-16 | v5e-16) default_runtime="v2-alpha-tpuv5-lite"; default_host="v5e-16" ;;
  v5litepod-32 | v5e-32) default_runtime="v2-alpha-tpuv5-lite"; default_host="v5e-32" ;;
  v5litepod-* | v5e-*) default_runtime="v2-alpha-tpuv5-lite"; default_host="v5e-8" ;;
  v5p-*) default_runtime="v2-alpha-tpuv5"; default_host="v5p-8" ;;
  v6e-*) default_runtime="v2-alpha-tpuv6e"; default_host="v5e-8" ;;
  *) echo "unknown ACCELERATOR_TYPE=$ACCELERATOR_TYPE (v4-8, v5litepod-8, v5p-8, ...)" >&2; exit 2 ;;
esac
RUNTIME_VERSION="${RUNTIME_VERSION:-$default_runtime}"
HOST="${HOST:-$default_host}"

where=(--zone="$ZONE")
if [[ -n "$PROJECT" ]]; then where+=(--project="$PROJECT"); fi

tpu() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '+ gcloud compute tpus tpu-vm'; printf ' %q' "$@"; printf '\n'
  else
    gcloud compute tpus tpu-vm "$@"
  fi
}
on_all() { tpu ssh "$NAME" "${where[@]}" --worker=all --command "$1"; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

create() {
  # (a dry run prints the create: it cannot know whether the VM exists)
  if [[ "$DRY_RUN" != 1 ]] && tpu describe "$NAME" "${where[@]}" --format='value(state)' >/dev/null 2>&1; then
    echo "TPU VM $NAME exists in $ZONE: reusing it"
    return
  fi
  local extra=()
  if [[ "$SPOT" == 1 ]]; then extra+=(--spot); fi
  tpu create "$NAME" "${where[@]}" --accelerator-type="$ACCELERATOR_TYPE" \
    --version="$RUNTIME_VERSION" ${extra[@]+"${extra[@]}"}
}

install() {
  local root tmp tarball
  root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
  if [[ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]]; then
    echo "note: uncommitted changes are not copied (git archive HEAD)" >&2
  fi
  tmp="$(mktemp -d)"
  tarball="$tmp/azr_jax.tar.gz"
  git -C "$root" archive --format=tar.gz -o "$tarball" HEAD
  tpu scp "$tarball" "$NAME:azr_jax.tar.gz" "${where[@]}" --worker=all
  rm -rf "$tmp"
  # Unpacks over the old copy so that .venv and local runs/ stay; setup_tpu_vm.sh gets a
  # Python >= 3.11 (uv, on the images' 3.10) and the pinned jax[tpu] into .venv.
  on_all "mkdir -p $REMOTE_DIR && tar -xzf azr_jax.tar.gz -C $REMOTE_DIR && cd $REMOTE_DIR \
&& bash scripts/setup_tpu_vm.sh"
}

train() {
  local flags=("--config=configs/azr.py:$MODEL,$HOST")
  if [[ -n "$OUTPUT_DIR" ]]; then flags+=("--config.output_dir=$OUTPUT_DIR"); fi
  flags+=("$@")
  local quoted
  quoted="$(printf ' %q' "${flags[@]}")"
  # Every worker runs the same command; JAX finds its peers itself (azr_jax.parallel.distributed).
  on_all "cd $REMOTE_DIR && nohup setsid .venv/bin/python scripts/train.py$quoted \
> train.log 2>&1 < /dev/null & echo \$! > $REMOTE_DIR.pid"
}

cmd="${1:-help}"
shift || true
case "$cmd" in
  up) create; install; train "$@" ;;
  create) create ;;
  install) install ;;
  train) train "$@" ;;
  status)
    tpu describe "$NAME" "${where[@]}" --format='value(state,acceleratorType)'
    on_all "hostname; if kill -0 \$(cat $REMOTE_DIR.pid 2>/dev/null) 2>/dev/null; \
then echo training; else echo 'not training'; fi; tail -n 2 $REMOTE_DIR/train.log 2>/dev/null || true"
    ;;
  logs)
    if [[ "$FOLLOW" == 1 ]]; then tail_flags="-f"; else tail_flags="-n 200"; fi
    tpu ssh "$NAME" "${where[@]}" --worker=0 --command "tail $tail_flags $REMOTE_DIR/train.log"
    ;;
  run) on_all "cd $REMOTE_DIR && ${1:?usage: run 'COMMAND'}" ;;
  stop) on_all "kill \$(cat $REMOTE_DIR.pid) 2>/dev/null && echo stopped || echo 'not running'" ;;
  delete) tpu delete "$NAME" "${where[@]}" --quiet ;;
  help | -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
