"""Multi-host plumbing: 2 processes x 2 CPU devices train exactly like 1 process x 4; flag checks."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from azr_jax.parallel import distributed
from azr_jax.parallel import sharding as shd

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "parallel" / "multihost_worker.py"
TIMEOUT_S = 300  # a hung collective fails the test instead of blocking CI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _spawn(devices: int, checkpoint: Path, *flags: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(REPO),
    }
    cmd = [sys.executable, str(WORKER), f"--checkpoint={checkpoint}", *flags]
    return subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _results(procs: list[subprocess.Popen]) -> list[dict]:
    outs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=TIMEOUT_S)
            assert p.returncode == 0, f"worker failed (rc {p.returncode}):\n{out[-4000:]}"
            outs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    lines = [[ln for ln in out.splitlines() if ln.startswith("RESULT ")] for out in outs]
    return [json.loads(found[-1].removeprefix("RESULT ")) for found in lines]


@pytest.mark.slow
def test_two_hosts_train_like_one_host(qwen2_dir):
    ckpt = qwen2_dir
    port = _free_port()
    cluster = [
        _spawn(
            2,
            ckpt,
            f"--coordinator_address=localhost:{port}",
            "--num_processes=2",
            f"--process_id={i}",
        )
        for i in range(2)
    ]
    single = _spawn(4, ckpt, "--meshes=1,4")  # the reference; the cluster tries both meshes
    p0, p1, ref = _results([*cluster, single])

    assert (p0["process"], p1["process"], ref["process"]) == (0, 1, 0)
    assert p0["processes"] == p1["processes"] == 2 and p0["devices"] == ref["devices"] == 4
    assert (p0["is_writer"], p1["is_writer"], ref["is_writer"]) == (True, False, True)
    assert p0["host_allgather"] == p1["host_allgather"] == [[0], [1]]
    want = ref["meshes"]["1,4"]
    assert want["rows"] == list(range(8)) and want["local_rows_ok"] and want["allgather_rows_ok"]
    assert want["losses"][1] < want["losses"][0]  # the update did something
    for mesh in ("1,4", "2,2"):
        assert (p0["meshes"][mesh]["rows"], p1["meshes"][mesh]["rows"]) == (
            [0, 1, 2, 3],
            [4, 5, 6, 7],
        )
        for got in (p0["meshes"][mesh], p1["meshes"][mesh]):
            assert got["local_rows_ok"] and got["allgather_rows_ok"], (mesh, got)
            np.testing.assert_allclose(got["losses"], want["losses"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "args, needle",
    [
        (("localhost:1234", None, None), "not --num_processes --process_id"),
        ((None, 2, None), "not --coordinator_address --process_id"),
        ((None, None, 0), "not --coordinator_address --num_processes"),
        (("localhost", 2, 0), "expected HOST:PORT"),
        (("localhost:1234", 0, 0), "--num_processes=0"),
        (("localhost:1234", 2, 2), "--process_id=2"),
    ],
)
def test_partial_or_bad_flags_are_clear_errors(args, needle):
    with pytest.raises(ValueError, match=needle.replace("-", r"\-")):
        distributed.initialize(*args)


def test_flag_sets():
    assert distributed.check_flags(None, None, None) is False
    assert distributed.check_flags("10.0.0.2:8476", 4, 3) is True


def test_single_host_initialize_is_a_no_op():
    if distributed.detect_tpu_cluster() is not None:
        pytest.skip("this machine looks like a Cloud TPU VM")
    distributed.initialize()
    assert jax.process_count() == 1 and distributed.is_writer()


def test_detect_tpu_cluster(tmp_path):
    assert distributed.detect_tpu_cluster({}, tmp_path) is None
    assert "TPU_WORKER_HOSTNAMES" in distributed.detect_tpu_cluster(
        {"TPU_WORKER_HOSTNAMES": "a,b"}, tmp_path
    )
    nic = tmp_path / "0000:00:04.0"
    nic.mkdir()
    (nic / "vendor").write_text("0x8086\n")
    assert distributed.detect_tpu_cluster({}, tmp_path) is None
    chip = tmp_path / "0000:00:05.0"
    chip.mkdir()
    (chip / "vendor").write_text("0x1ae0\n")
    assert "0000:00:05.0" in distributed.detect_tpu_cluster({}, tmp_path)


def test_define_flags_twice():
    from absl import flags

    distributed.define_flags()
    distributed.define_flags()
    fv = flags.FlagValues()
    for name in distributed.FLAG_NAMES:
        fv[name] = flags.FLAGS[name]
    fv(["prog", "--coordinator_address=h:1", "--num_processes=2", "--process_id=1"])
    assert (fv.coordinator_address, fv.num_processes, fv.process_id) == ("h:1", 2, 1)


def test_batch_round_trip_one_process():
    mesh = shd.make_mesh(2, 2, 2)
    rows = distributed.process_rows(mesh, 8)
    np.testing.assert_array_equal(rows, np.arange(8))
    local = {"tokens": np.arange(8 * 3).reshape(8, 3), "reward": np.arange(8.0)}
    batch = distributed.global_batch(local, mesh)
    assert batch["tokens"].sharding == shd.batch_sharding(mesh, 2)
    back = distributed.local_rows(batch)
    for k in local:
        np.testing.assert_array_equal(back[k], local[k])
        np.testing.assert_array_equal(distributed.allgather_rows(batch[k]), local[k])
    with pytest.raises(ValueError, match="does not divide"):
        distributed.process_rows(mesh, 6)


def test_host_allgather_and_sync_one_process():
    np.testing.assert_array_equal(distributed.host_allgather(np.array([1, 2])), [[1, 2]])
    distributed.sync("test")


def _train_cmd(out: Path, *flags: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "scripts" / "train.py"),
        f"--config={REPO / 'configs' / 'default.py'}",
        "--config.model.base=random",
        f"--config.output_dir={out}",
        "--config.num_steps=2",
        "--config.azr.batch_size=2",
        "--config.sampling.max_new_tokens=16",
        "--config.sampling.batch_size=8",
        "--config.mesh.data=2",
        "--config.mesh.fsdp=-1",
        *flags,
    ]


def _metrics(out: Path) -> list[dict]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


@pytest.mark.slow
def test_trainer_on_two_hosts_equals_one_host(tmp_path):
    """scripts/train.py on 2 processes x 2 CPU devices (gloo) = 1 process x 4 devices, two steps."""
    port = _free_port()

    def env(devices):
        return {
            **os.environ,
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
            "JAX_PLATFORMS": "cpu",
            "PYTHONPATH": str(REPO),
        }

    one = subprocess.Popen(
        _train_cmd(tmp_path / "one"),
        env=env(4),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    two = [
        subprocess.Popen(
            _train_cmd(
                tmp_path / "two",
                f"--coordinator_address=localhost:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ),
            env=env(2),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        for p in [one, *two]:
            out, _ = p.communicate(timeout=TIMEOUT_S)
            assert p.returncode == 0, out[-4000:]
    finally:
        for p in [one, *two]:
            if p.poll() is None:
                p.kill()
    a, b = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    assert [r["step"] for r in b] == [1, 2]  # process 0 alone writes, each step once
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], rel=1e-5, abs=1e-6), k
    assert (tmp_path / "two" / "checkpoints" / "2").exists()
