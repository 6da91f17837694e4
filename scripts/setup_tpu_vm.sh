#!/usr/bin/env bash
# Set up azr_jax on a Cloud TPU VM you are logged into (also run on every worker by
# `scripts/launch_tpu_vm.sh install`, and by `make tpu-vm-setup`): a .venv with Python >= 3.11
# and the tested jax[tpu] / libtpu pair (pyproject.toml's `tpu` extra).
#
#   bash scripts/setup_tpu_vm.sh            # in the repository's root
#   DRY_RUN=1 bash scripts/setup_tpu_vm.sh  # print the commands instead of running them
#
# The stock TPU VM images (tpu-ubuntu2204-base, v2-alpha-tpuv5-lite, ...) ship Python 3.10,
# which jax 0.10, flax, orbax and transformers no longer support. When the system python3 is
# older than 3.11 this installs `uv` from PyPI into ~/.local (no root needed) and lets it
# install a standalone Python 3.11 under ~/.local/share/uv; the system Python is left as it is.
# Settings (environment): PYTHON=python3 (the interpreter to try first), VENV=.venv.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
DRY_RUN="${DRY_RUN:-0}"
WANT="3.11"

run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)"
new_enough() { [[ "$1" != none ]] && [[ "$(printf '%s\n%s\n' "$WANT" "$1" | sort -V | head -n1)" == "$WANT" ]]; }

if [[ -x "$VENV/bin/python" ]] && new_enough "$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; then
  echo "reusing $VENV ($("$VENV/bin/python" --version))"
elif new_enough "$version"; then
  echo "$PYTHON is Python $version: creating $VENV with it"
  run "$PYTHON" -m venv "$VENV"
else
  echo "$PYTHON is Python $version; azr_jax needs >= $WANT: installing one with uv (PyPI, no root)"
  UV="$HOME/.local/bin/uv"
  if ! command -v uv >/dev/null 2>&1 && [[ ! -x "$UV" ]]; then
    if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
      echo "$PYTHON has no pip to install uv with: sudo apt-get install -y python3-pip (or get uv" \
        "from https://docs.astral.sh/uv/), then rerun this script" >&2
      exit 1
    fi
    run "$PYTHON" -m pip install --user --upgrade uv
  fi
  command -v uv >/dev/null 2>&1 && UV="$(command -v uv)"
  run "$UV" python install "$WANT"
  run rm -rf "$VENV"
  run "$UV" venv --seed --python "$WANT" "$VENV"
fi
run "$VENV/bin/python" -m pip install -q --upgrade pip
run "$VENV/bin/python" -m pip install -q -e '.[tpu]'
if [[ "$DRY_RUN" != 1 ]]; then
  "$VENV/bin/python" -c 'import jax; print("jax", jax.__version__, "backend", jax.default_backend(), "devices", jax.device_count())'
fi
