"""Shared test setup: 8 fake CPU devices (set before JAX is imported) and tiny checkpoints."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import fcntl  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

FAMILIES = ("qwen2", "qwen3", "llama", "gpt2")
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "test_checkpoints"


def tiny_checkpoint(family: str, preset: str = "tiny", seed: int = 0) -> Path:
    """A random HF checkpoint of `family`, built once and shared by all tests (and xdist workers)."""
    from azr_jax.model.tiny_checkpoint import make_tiny_checkpoint

    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"{family}-{preset}-{seed}"
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "config.json").exists():
            tmp = CACHE / f".building-{family}-{preset}-{seed}"
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp)
            make_tiny_checkpoint(family, tmp, preset=preset, seed=seed)
            tmp.rename(out)
    return out


@pytest.fixture(scope="session", params=FAMILIES)
def family_dir(request) -> Path:
    """Parametrises a test over the four model families' tiny checkpoints."""
    return tiny_checkpoint(request.param)


@pytest.fixture(scope="session")
def qwen2_dir() -> Path:
    return tiny_checkpoint("qwen2")


# A warm start shortened for CI: a few programs, memorised by a very small model in seconds, so
# its proposals are real programs that validate (the full recipe takes minutes).
SMALL_WARMSTART = dict(
    n_programs=6,
    num_inputs=4,
    max_references=2,
    vocab_size=1024,
    tokenizer_samples=60,
    hidden=64,
    layers=1,
    heads=2,
    kv_heads=1,
    mlp=128,
    steps=240,
    batch_size=8,
    learning_rate=1e-2,
    warmup_steps=10,
)


def small_warmstart(**changes) -> Path:
    """The shortened warm start (built once, shared by tests and xdist workers)."""
    from azr_jax.executor.program import DEFAULT_BANNED
    from azr_jax.warmstart.train import Recipe, build_warmstart

    recipe = Recipe(**{**SMALL_WARMSTART, "banned_modules": DEFAULT_BANNED, **changes})
    cache = CACHE.parent / "test_warmstart"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build_warmstart(recipe, cache, progress=False)


@pytest.fixture(scope="session")
def gcs(tmp_path_factory):
    """A Cloud Storage emulator for the session (tests/gcs_emulator.py), its variables set in
    os.environ (so subprocesses reach it too), staged copies in a temporary AZR_STAGE_DIR;
    yields the emulator (bucket: `gcs.bucket`)."""
    from tests.gcs_emulator import GcsEmulator

    emulator = GcsEmulator()
    env = {**emulator.env, "AZR_STAGE_DIR": str(tmp_path_factory.mktemp("staged"))}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield emulator
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        emulator.stop()
