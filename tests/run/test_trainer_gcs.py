"""The trainer on a Cloud Storage run directory (a real server: the fake-gcs-server emulator).

The embedded default (tiny random model) trains to gs://azr-test/..., resumes, survives kill -9
and SIGTERM (one process and two), and evaluate.py / export_hf.py read the run from the URL.
Every interrupted-and-resumed run must equal an uninterrupted one step for step (every key but
the timings), and no local directory named `gs:` may appear.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from azr_jax.run import records
from azr_jax.storage import paths
from tests.gcs_emulator import local_gs_dirs
from tests.run.test_trainer import STEPS, _cmd, _comparable, _env, _metrics, _train

ROOT = Path(__file__).resolve().parents[2]
# four records in CRUXEval's format, written to the bucket (eval.cruxeval_path=gs://...)
CRUX_RECORDS = [
    {"code": f"def f(x):\n    return x + {n}", "input": "1", "output": str(1 + n), "id": f"t{n}"}
    for n in range(4)
]


@pytest.fixture(scope="module")
def bucket(gcs) -> str:
    """This module's prefix in the emulator's bucket."""
    return f"gs://{gcs.bucket}/trainer-{os.getpid()}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict]:
    """The metrics of an uninterrupted local run of STEPS steps."""
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = _train(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _metrics(out)


def _bucket_metrics(url: str) -> list[dict]:
    return records.read_metrics(f"{url}/metrics.jsonl")


def _start(url: str, **popen) -> subprocess.Popen:
    """The training command on `url`, started in the background."""
    return subprocess.Popen(_cmd(url), env=_env(), cwd=ROOT, **popen)


def _wait_for(url: str, proc: subprocess.Popen, timeout_s: float = 500) -> None:
    deadline = time.time() + timeout_s
    while not paths.run_path(url).exists():
        assert proc.poll() is None, f"the run ended before {url} appeared"
        assert time.time() < deadline, f"{url} did not appear"
        time.sleep(0.2)


def _checkpoint_steps(url: str) -> set[int]:
    """The complete steps in the run's checkpoints/ (Orbax renames nothing on a bucket: a step
    is complete once its commit_success.txt is there)."""
    names = paths.list_files(f"{url}/checkpoints")
    return {
        int(n.split("/")[0])
        for n in names
        if n.endswith("/commit_success.txt") and n.count("/") == 1
    }


def _no_local_gs_dirs(*roots: Path) -> None:
    assert not local_gs_dirs(ROOT, Path.cwd(), *roots), "a gs:// URL was written as a local path"


@pytest.fixture(scope="module")
def bucket_run(bucket, tmp_path_factory) -> str:
    """2 steps to the bucket; the same command to STEPS, kill -9 inside step 3; rerun."""
    url = f"{bucket}/run"
    first = _train(url, 2)
    assert first.returncode == 0, first.stderr[-3000:]
    assert [m["step"] for m in _bucket_metrics(url)] == [1, 2]
    proc = _start(url, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for(f"{url}/samples/step_000003.jsonl", proc)  # step 3 logged: killed in its save or 4
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    last = _train(url)
    assert last.returncode == 0, last.stderr[-3000:]
    return url


def test_bucket_run_trains_resumes_and_survives_kill_9(bucket_run, reference):
    got = _bucket_metrics(bucket_run)
    assert [m["step"] for m in got] == list(range(1, STEPS + 1)), "each step exactly once"
    assert [_comparable(m) for m in got] == [_comparable(m) for m in reference]
    files = paths.list_files(bucket_run)
    for name in ("config.json", "base_model/config.json", f"samples/step_{STEPS:06d}.jsonl"):
        assert name in files, name
    assert any(n.startswith("tb/events.out.tfevents.") for n in files)
    assert any(n.startswith(f"checkpoints/{STEPS}/") for n in files)
    assert paths.run_path(f"{bucket_run}/plots/reward.png").read_bytes()[:4] == b"\x89PNG"
    _no_local_gs_dirs()


def test_sigterm_saves_the_step_in_flight_then_resumes(bucket, reference):
    url = f"{bucket}/sigterm"
    proc = _start(url, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(f"{url}/samples/step_000001.jsonl", proc)
    proc.send_signal(signal.SIGTERM)  # at the end of step 1 or inside step 2
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)  # a second one, ignored while that step finishes and saves
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    line = [x for x in out.splitlines() if x.startswith("preempted: saved step ")]
    assert len(line) == 1, out[-2000:]
    saved = int(line[0].split()[3])
    assert 1 <= saved < STEPS and "resume with: python " in line[0] and url in line[0]
    assert [m["step"] for m in _bucket_metrics(url)] == list(range(1, saved + 1))
    steps = _checkpoint_steps(url)
    assert saved in steps and max(steps) == saved
    again = _train(url)  # the rerun continues from the saved step
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"from step {saved}" in again.stderr
    got = _bucket_metrics(url)
    assert [_comparable(m) for m in got] == [_comparable(m) for m in reference]


def _script(name: str, *args: str) -> dict:
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / name),
            f"--config={ROOT / 'configs' / 'default.py'}",
            "--config.model.base=random",
            *args,
        ],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_evaluate_and_export_from_the_bucket(bucket_run, bucket):
    crux = f"{bucket}/data/cruxeval.jsonl"  # eval.cruxeval_path from the bucket too
    paths.write_atomic(crux, "".join(json.dumps(r) + "\n" for r in CRUX_RECORDS).encode())
    summary = _script(
        "evaluate.py",
        f"--config.output_dir={bucket_run}",
        "--config.eval.max_records=4",
        f"--config.eval.cruxeval_path={crux}",
        "--config.eval.max_new_tokens=8",
    )
    assert summary["n"] == 4 and summary["step"] == STEPS
    rows = paths.run_path(f"{bucket_run}/eval/step_{STEPS:06d}.jsonl").read_text().splitlines()
    assert len(rows) == 8
    out = f"{bucket}/export"
    exported = _script("export_hf.py", f"--config.output_dir={bucket_run}", f"--out={out}")
    assert exported["step"] == STEPS and exported["out"] == out
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(paths.list_files(out))
    _no_local_gs_dirs()


def _two_process_cmd(url: str, port: int, i: int) -> list[str]:
    return [
        *_cmd(url),
        "--config.sampling.batch_size=8",
        "--config.mesh.data=2",
        "--config.mesh.fsdp=-1",
        f"--coordinator_address=localhost:{port}",
        "--num_processes=2",
        f"--process_id={i}",
    ]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(url: str) -> list[subprocess.Popen]:
    port = _free_port()
    env = {**_env(2), "JAX_PLATFORMS": "cpu"}
    return [
        subprocess.Popen(
            _two_process_cmd(url, port, i),
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]


def test_two_processes_share_one_bucket_path_and_stop_together(bucket):
    """2 processes x 2 CPU devices write one gs:// run; SIGTERM to process 1 alone stops both
    after the same step, saved; the rerun continues from it and logs each step once."""
    url = f"{bucket}/two"
    procs = _two_processes(url)
    try:
        _wait_for(f"{url}/samples/step_000001.jsonl", procs[0])
        procs[1].send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=400)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
        line = [x for x in outs[0].splitlines() if x.startswith("preempted: saved step ")]
        assert len(line) == 1, outs[0][-3000:]
        saved = int(line[0].split()[3])
        assert [m["step"] for m in _bucket_metrics(url)] == list(range(1, saved + 1))
        procs = _two_processes(url)
        outs = [p.communicate(timeout=400)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [m["step"] for m in _bucket_metrics(url)] == list(range(1, STEPS + 1))
    assert STEPS in _checkpoint_steps(url)
    _no_local_gs_dirs()
