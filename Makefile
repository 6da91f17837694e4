# The two commands of the README: `make train` and `make test`.
# Both set up a local virtual environment first (idempotent: redone only when a
# requirements file changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup train test lint clean tpu-compiler tpu-vm-setup

$(VENV)/.stamp: requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "azr_jax needs Python >= 3.11 (jax, flax, orbax and transformers do); this is " + sys.version.split()[0] + ": run make PYTHON=python3.11 (or newer); without one: pip install --user uv && ~/.local/bin/uv python install 3.11 && make PYTHON=$$(~/.local/bin/uv python find 3.11)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.stamp

# libtpu for scripts/compile_tpu.py (TPU programs compiled ahead of time on CPU), in its own
# --target directory, not the venv. Best effort: without it tests/scripts/test_compile_tpu.py
# skips, saying why.
LIBTPU := .libtpu
$(LIBTPU)/.stamp: requirements-tpu-compiler.txt | $(VENV)/.stamp
	-rm -rf $(LIBTPU) && $(PY) -m pip install -q --no-deps --target $(LIBTPU) -r requirements-tpu-compiler.txt && touch $@

tpu-compiler: $(LIBTPU)/.stamp

# On a Cloud TPU VM you are logged into: .venv with Python >= 3.11 (uv on the 3.10 images) and
# the pinned jax[tpu] (what `scripts/launch_tpu_vm.sh install` runs on every worker).
tpu-vm-setup:
	bash scripts/setup_tpu_vm.sh

train: setup
	$(PY) scripts/train.py --config=configs/default.py

test: setup tpu-compiler
	$(PY) -m ruff check azr_jax scripts tests configs
	$(PY) -m pytest -q -rs -n 2 --dist loadfile tests  # -rs: every skip prints its reason

lint: setup
	$(PY) -m ruff check azr_jax scripts tests configs
	$(PY) -m ruff format --check azr_jax scripts tests configs

clean:
	rm -rf $(VENV) $(LIBTPU) runs artifacts
