# The two commands of the README: `make train` and `make test`.
# Both set up a local virtual environment first (idempotent: redone only when a
# requirements file changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup train test lint clean

$(VENV)/.stamp: requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "azr_jax needs Python >= 3.11 (jax, flax, orbax and transformers do); this is " + sys.version.split()[0] + ": run make PYTHON=python3.11 (or newer)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.stamp

train: setup
	$(PY) scripts/train.py --config=configs/default.py

test: setup
	$(PY) -m ruff check azr_jax scripts tests configs
	$(PY) -m pytest -q -rs -n 2 --dist loadfile tests  # -rs: every skip prints its reason

lint: setup
	$(PY) -m ruff check azr_jax scripts tests configs
	$(PY) -m ruff format --check azr_jax scripts tests configs

clean:
	rm -rf $(VENV) runs artifacts
