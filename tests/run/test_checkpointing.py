"""Checkpointer: sharded roundtrip across meshes, host state, policy, and crash safety (kill -9)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from azr_jax.run.checkpointing import Checkpointer

ROOT = Path(__file__).resolve().parents[2]


def _mesh(shape: tuple[int, int]) -> Mesh:
    return Mesh(np.array(jax.devices()).reshape(shape), ("x", "y"))


def _state(step: int, mesh: Mesh, rows: int = 16) -> dict:
    """A small train-state-like pytree whose values encode `step`."""
    w = jnp.arange(rows * 8, dtype=jnp.float32).reshape(rows, 8) + step
    return {
        "params": {"w": jax.device_put(w, NamedSharding(mesh, P("x", "y"))), "b": jnp.zeros(3)},
        "opt": (jnp.full((rows, 8), float(step)), {"count": jnp.int32(step)}),
        "step": jnp.int32(step),
        "rng": jax.random.key(step),
    }


def _abstract(state: dict, mesh: Mesh, spec: P = P()) -> dict:
    """ShapeDtypeStructs of `state` with target shardings: 2-D arrays on `spec`, rest replicated."""

    def one(x):
        s = spec if x.ndim == 2 else P()
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, s))

    return jax.tree.map(one, state)


def _numpy(tree: dict) -> dict:
    """Host copies of every leaf; typed PRNG keys as their raw data."""

    def one(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)

    return jax.tree.map(one, tree)


def _host(step: int) -> dict:
    rng = np.random.default_rng(step)
    return {
        "buffer": [{"program": f"def f(x): return x + {step}", "io": [1, 2]}],
        "np_rng": rng.bit_generator.state,
    }


def test_roundtrip_onto_another_mesh(tmp_path):
    saved = _state(3, _mesh((2, 4)))
    with Checkpointer(tmp_path, save_interval_steps=1, max_to_keep=2) as ckpt:
        assert ckpt.save(3, saved, _host(3))
        ckpt.wait()
        assert ckpt.latest_step() == 3
        target = _mesh((4, 2))
        abstract = _abstract(saved, target, P("y", "x"))
        device, host = ckpt.restore(None, abstract)
    for a, b in zip(jax.tree.leaves(_numpy(device)), jax.tree.leaves(_numpy(saved)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert jax.random.key_impl(device["rng"]) == jax.random.key_impl(saved["rng"])
    assert device["params"]["w"].sharding == NamedSharding(target, P("y", "x"))
    assert host == _host(3)
    # The numpy RNG continues exactly where it left off.
    rng = np.random.default_rng()
    rng.bit_generator.state = host["np_rng"]
    assert rng.random() == np.random.default_rng(3).random()


def test_interval_keep_last_n_and_force(tmp_path):
    mesh = _mesh((2, 4))
    with Checkpointer(tmp_path, save_interval_steps=3, max_to_keep=2, async_save=False) as ckpt:
        assert ckpt.latest_step() is None
        saved = [s for s in range(1, 11) if ckpt.save(s, _state(s, mesh), _host(s))]
        assert saved == [3, 6, 9]  # step 1 is not saved just because the directory is empty
        assert ckpt.all_steps() == [6, 9]
        assert ckpt.save(10, _state(10, mesh), _host(10), force=True)
        assert ckpt.all_steps() == [9, 10]
        with pytest.raises(Exception, match="10"):
            ckpt.save(10, _state(10, mesh), _host(10), force=True)  # never overwrite a step
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["10", "9"]


def test_async_save_then_wait(tmp_path):
    mesh = _mesh((2, 4))
    ckpt = Checkpointer(tmp_path, save_interval_steps=1, max_to_keep=None, async_save=True)
    for s in (1, 2, 3):
        assert ckpt.save(s, _state(s, mesh), _host(s))
    ckpt.wait()
    assert ckpt.all_steps() == [1, 2, 3]
    device, host = ckpt.restore(2, _abstract(_state(0, mesh), mesh))
    assert int(device["step"]) == 2 and host == _host(2)
    ckpt.close()
    # A fresh Checkpointer (a restarted process) sees the same steps.
    with Checkpointer(tmp_path, save_interval_steps=1, max_to_keep=None) as again:
        assert again.latest_step() == 3


def test_restore_into_another_config_names_the_keys(tmp_path):
    mesh = _mesh((2, 4))
    with Checkpointer(tmp_path, save_interval_steps=1, max_to_keep=2) as ckpt:
        ckpt.save(1, _state(1, mesh), _host(1))
        ckpt.wait()
        other = _abstract(_state(1, mesh, rows=32), mesh)  # a "bigger model"
        other["params"]["extra"] = other["params"]["b"]
        with pytest.raises(ValueError) as err:
            ckpt.restore(1, other)
        msg = str(err.value)
        assert "another config" in msg and str(tmp_path / "1") in msg
        assert "params.w: checkpoint has float32[16, 8], this run expects float32[32, 8]" in msg
        assert "params.extra: missing from the checkpoint" in msg
        with pytest.raises(FileNotFoundError, match="step 7"):
            ckpt.restore(7, other)


# Orbax leaves a coroutine behind when a read fails; harmless, but pytest reports it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_corrupted_step_is_an_error_and_nothing_is_deleted(tmp_path):
    mesh = _mesh((2, 4))
    with Checkpointer(tmp_path, save_interval_steps=1, max_to_keep=3) as ckpt:
        for s in (1, 2):
            ckpt.save(s, _state(s, mesh), _host(s))
    for data in (tmp_path / "2" / "device").rglob("d/*"):
        data.write_bytes(b"garbage")
    files_before = sorted(p for p in tmp_path.rglob("*"))
    with Checkpointer(tmp_path, save_interval_steps=1, max_to_keep=3) as ckpt:
        with pytest.raises(RuntimeError, match=f"{tmp_path / '2'} is unreadable.*step 1"):
            ckpt.restore(None, _abstract(_state(0, mesh), mesh))
        assert ckpt.all_steps() == [1, 2]
        device, _ = ckpt.restore(1, _abstract(_state(0, mesh), mesh))
        assert int(device["step"]) == 1
    assert sorted(p for p in tmp_path.rglob("*")) == files_before


CHILD = """
import sys, time
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from azr_jax.run.checkpointing import Checkpointer
directory, idle_after = sys.argv[1], int(sys.argv[2])  # idle after this step (0: never)
mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("x", "y"))
big = jax.device_put(jax.random.normal(jax.random.key(0), (4096, 2048)), NamedSharding(mesh, P("x", "y")))
ckpt = Checkpointer(directory, save_interval_steps=1, max_to_keep=2)
for step in range(1, 1000):
    print("begin", step, flush=True)
    t = time.time()
    ckpt.save(step, {"big": big + step, "step": jnp.int32(step)}, {"step": step})
    ckpt.wait()
    print("done", step, time.time() - t, flush=True)
    if step == idle_after:
        time.sleep(60)
"""


def _run_and_kill(directory: Path, trigger: str, delay: float, idle_after: int) -> None:
    """Starts CHILD, waits for its stdout line `trigger`, sleeps `delay`, then SIGKILLs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(directory.parent / f"{directory.name}.stderr", "w") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(directory), str(idle_after)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            cwd=ROOT,
        )
        try:
            for line in child.stdout:
                if line.startswith(trigger):
                    break
            else:
                pytest.fail(f"child exited (rc={child.wait()}) before {trigger!r}; see {err.name}")
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL


def _check_resumable(directory: Path) -> int:
    """Restores the latest step, checks it is whole, then saves and restores one more step."""
    mesh = _mesh((2, 4))
    abstract = {
        "big": jax.ShapeDtypeStruct(
            (4096, 2048), jnp.float32, sharding=NamedSharding(mesh, P("x", "y"))
        ),
        "step": jax.ShapeDtypeStruct((), jnp.int32, sharding=NamedSharding(mesh, P())),
    }
    expected_big = jax.random.normal(jax.random.key(0), (4096, 2048))
    with Checkpointer(directory, save_interval_steps=1, max_to_keep=2) as ckpt:
        step = ckpt.latest_step()
        assert step is not None and step >= 2
        device, host = ckpt.restore(None, abstract)
        assert host == {"step": step}
        assert int(device["step"]) == step
        np.testing.assert_array_equal(np.asarray(device["big"]), np.asarray(expected_big + step))
        assert ckpt.save(
            step + 1, {"big": device["big"] + 1, "step": device["step"] + 1}, {"step": step + 1}
        )
        ckpt.wait()
        device, host = ckpt.restore(step + 1, abstract)
        assert host == {"step": step + 1} and int(device["step"]) == step + 1
    assert not list(directory.glob("*.orbax-checkpoint-tmp*")), "stale tmp dirs were not cleaned"
    return step


def test_kill_during_save_restores_last_complete_step(tmp_path):
    left_partial = []
    for i, delay in enumerate([0.0, 0.05, 0.1, 0.2]):
        directory = tmp_path / f"run{i}"
        _run_and_kill(directory, "begin 3", delay, idle_after=0)
        left_partial.append(bool(list(directory.glob("*.orbax-checkpoint-tmp*"))))
        _check_resumable(directory)
    # At least one kill landed mid-write (a tmp dir was left behind), so the test tested that.
    assert any(left_partial), left_partial


def test_kill_between_saves(tmp_path):
    directory = tmp_path / "run"
    _run_and_kill(directory, "done 3", 0.1, idle_after=3)
    assert not list(directory.glob("*.orbax-checkpoint-tmp*"))
    assert _check_resumable(directory) == 3


FULL_DISK_CHILD = """
import json, resource, signal, sys
import jax, jax.numpy as jnp
from azr_jax.run.checkpointing import Checkpointer, CheckpointSaveError
directory, async_save = sys.argv[1], sys.argv[2] == "1"
state = lambda s: {"w": jnp.arange(256 * 1024, dtype=jnp.float32) + s, "step": jnp.int32(s)}
ckpt = Checkpointer(directory, save_interval_steps=1, max_to_keep=1, async_save=async_save)
ckpt.save(1, state(1), {"step": 1})
ckpt.wait()
# From here on no file of this process may grow past 16 KiB, as on a full disk; root is bound
# by RLIMIT_FSIZE too (chmod is not: root writes through it). Writes past it fail with EFBIG.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, resource.RLIM_INFINITY))
try:
    ckpt.save(2, state(2), {"step": 2})
    ckpt.wait()
except CheckpointSaveError as e:
    print(json.dumps({"error": str(e)}))
    sys.exit(0)
print(json.dumps({"error": None}))
"""


@pytest.mark.parametrize("async_save", [False, True], ids=["sync", "async"])
def test_failed_save_names_the_directory_and_keeps_the_last_step(tmp_path, async_save):
    directory = tmp_path / "ckpt"
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(directory), str(int(async_save))],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    error = json.loads(proc.stdout.strip().splitlines()[-1])["error"]
    assert error is not None, "a save past the file-size limit did not fail"
    assert str(directory) in error and "saving step 2" in error and "step 1" in error, error
    assert "full" in error and "permissions" in error, error
    # Step 1 stays complete and restorable; step 2 never became a complete step.
    mesh = _mesh((2, 4))
    rep = NamedSharding(mesh, P())
    abstract = {
        "w": jax.ShapeDtypeStruct((256 * 1024,), jnp.float32, sharding=rep),
        "step": jax.ShapeDtypeStruct((), jnp.int32, sharding=rep),
    }
    with Checkpointer(directory, save_interval_steps=1, max_to_keep=1) as ckpt:
        assert ckpt.all_steps() == [1]
        device, host = ckpt.restore(None, abstract)
    assert host == {"step": 1} and int(device["step"]) == 1
    np.testing.assert_array_equal(np.asarray(device["w"]), np.arange(256 * 1024) + 1.0)


def test_restore_params_reads_the_parameters_alone(tmp_path):
    """`restore_params`: the saved parameters bit for bit, on another mesh, without reading the
    optimizer state (evaluation needs the weights' memory only); a mismatch names the key."""
    mesh = _mesh((4, 2))
    state = _state(5, mesh)
    with Checkpointer(tmp_path / "ck", save_interval_steps=1, max_to_keep=2) as ck:
        ck.save(5, state, _host(5))
    other = _mesh((2, 4))
    abstract = _abstract(state["params"], other, P("y", "x"))
    with Checkpointer(tmp_path / "ck", save_interval_steps=1, max_to_keep=2) as ck:
        params = ck.restore_params(5, abstract)
        assert set(params) == {"w", "b"}
        np.testing.assert_array_equal(np.asarray(params["w"]), np.asarray(state["params"]["w"]))
        assert params["w"].sharding == abstract["w"].sharding
        wrong = dict(abstract, w=jax.ShapeDtypeStruct((16, 8), jnp.bfloat16))
        with pytest.raises(ValueError, match=r"params\.w: checkpoint has float32\[16, 8\]"):
            ck.restore_params(5, wrong)
        with pytest.raises(FileNotFoundError, match="no complete checkpoint for step 6"):
            ck.restore_params(6, abstract)


def test_the_float32_master_restores_exactly(tmp_path, qwen2_dir):
    """A bfloat16 train state with its float32 master (rl.master_weights): saved and restored
    bit for bit, master included, through the trainer's abstract state."""
    from azr_jax.model import hf_io
    from azr_jax.parallel import sharding as shd
    from azr_jax.run.trainer import abstract_train_state
    from azr_jax.update.train_step import TrainHparams, jit_init_state

    cfg, params = hf_io.load_hf(qwen2_dir, param_dtype="bfloat16")
    mesh = shd.make_mesh(data=1, fsdp=4, tensor=2)
    hp = TrainHparams(master_weights="float32")
    state = jit_init_state(cfg, hp, mesh)(params)
    # a master that is not the weights' upcast (as after training): every bit must come back
    noise = jax.tree.map(lambda m: m + 1e-7 * jnp.sign(m), state.opt_state.master)
    state = state.replace(opt_state=state.opt_state._replace(master=noise))
    with Checkpointer(tmp_path / "ck", save_interval_steps=1, max_to_keep=2) as ck:
        ck.save(1, state, {})
    with Checkpointer(tmp_path / "ck", save_interval_steps=1, max_to_keep=2) as ck:
        restored, _ = ck.restore(1, abstract_train_state(cfg, hp, mesh))
    for a, b in zip(
        jax.tree.leaves(restored.opt_state.master), jax.tree.leaves(noise), strict=True
    ):
        assert a.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params), strict=True):
        assert a.dtype == jnp.bfloat16
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
