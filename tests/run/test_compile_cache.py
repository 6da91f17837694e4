"""run/compile_cache.py: a second process loads every program the first compiled (no compiles)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = """
import json, sys
import jax, jax.numpy as jnp
from azr_jax.run import compile_cache
compile_cache.enable(sys.argv[1])
timer = compile_cache.CompileTimer()
f = jax.jit(lambda x, y: jnp.tanh(x @ y).sum())
g = jax.jit(lambda x: jnp.cumsum(x * 2.0))
f(jnp.ones((8, 8)), jnp.ones((8, 8))).block_until_ready()
g(jnp.ones(16)).block_until_ready()
print(json.dumps(timer.take()))
"""


def _run(cache: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    res = subprocess.run(
        [sys.executable, "-c", PROGRAM, cache], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("where", ["local", "gs"])
def test_a_restart_compiles_nothing_it_compiled_before(where, tmp_path, request):
    if where == "gs":
        cache = f"gs://{request.getfixturevalue('gcs').bucket}/compile-cache-{os.getpid()}"
    else:
        cache = str(tmp_path / "cache")
    first, second = _run(cache), _run(cache)
    assert first["time/compile_programs"] >= 2 and first["time/compile_cache_hits"] == 0
    assert second["time/compile_cache_hits"] == second["time/compile_programs"]
    assert second["time/compile_programs"] == first["time/compile_programs"]


def test_empty_dir_leaves_the_cache_off():
    from azr_jax.run import compile_cache

    assert compile_cache.enable("") is None
