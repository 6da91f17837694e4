"""The trainer end to end on the tiny default: a few steps, resume, kill -9, config errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = 4


def _env(devices: int = 1) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _cmd(out: Path, steps: int = STEPS, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        f"--config={ROOT / 'configs' / 'default.py'}",
        "--config.model.base=random",  # the tiny random model (the warm start has its own tests)
        f"--config.output_dir={out}",
        f"--config.num_steps={steps}",
        "--config.checkpoint.interval_steps=1",
        "--config.checkpoint.max_to_keep=2",
        "--config.azr.batch_size=2",
        "--config.sampling.max_new_tokens=32",
        *extra,
    ]


def _train(
    out: Path, steps: int = STEPS, *extra: str, devices: int = 1
) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cmd(out, steps, *extra),
        env=_env(devices),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _comparable(m: dict) -> dict:
    return {k: v for k, v in m.items() if not k.startswith("time/")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of STEPS steps."""
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = _train(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_run_directory_is_complete(reference):
    metrics = _metrics(reference)
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1))
    for name in (
        "code_o/propose/reward",
        "code_i/solve/reward",
        "code_f/solve/accuracy",
        "policy/loss",
        "policy/grad_norm",
        "time/device_wait_s",
    ):
        assert name in metrics[-1]
    assert (reference / "config.json").exists()
    assert list((reference / "tb").glob("events.out.tfevents.*"))
    assert (reference / "plots" / "reward.png").read_bytes()[:4] == b"\x89PNG"
    samples = (reference / "samples" / f"step_{STEPS:06d}.jsonl").read_text().splitlines()
    assert samples and {"prompt", "response", "reward", "verdict", "group"} <= set(
        json.loads(samples[0])
    )
    assert (reference / "checkpoints" / str(STEPS)).exists()


def test_resume_equals_uninterrupted(reference, tmp_path):
    out = tmp_path / "run"
    assert _train(out, 2).returncode == 0
    proc = _train(out, STEPS)  # the same command with more steps resumes from step 2
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _metrics(reference), _metrics(out)
    assert [m["step"] for m in b] == list(range(1, STEPS + 1))
    assert [_comparable(m) for m in a] == [_comparable(m) for m in b]


def _zygotes_alive(out: Path) -> list[str]:
    """Processes (other than the trainer) that still belong to the run: executor zygotes etc."""
    res = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [
        line
        for line in res.splitlines()
        if "azr_jax" in line
        and "executor" in line
        and str(os.getpid()) not in line
        and "pytest" not in line
    ]


@pytest.mark.parametrize("when", ["during_step", "during_save"])
def test_kill_9_then_resume(reference, tmp_path, when):
    out = tmp_path / "run"
    before = set(_zygotes_alive(out))
    proc = subprocess.Popen(
        _cmd(out),
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 400
    ckpt = out / "checkpoints"
    while time.time() < deadline:
        if when == "during_step" and (out / "samples" / "step_000002.jsonl").exists():
            time.sleep(1.0)  # inside step 3's self-play
            break
        if (
            when == "during_save"
            and ckpt.exists()
            and any(".orbax-checkpoint-tmp" in p.name for p in ckpt.iterdir())
        ):
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)
    assert set(_zygotes_alive(out)) <= before, "a process of the killed run outlived it"
    res = _train(out)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = _metrics(reference), _metrics(out)
    assert [m["step"] for m in b] == list(range(1, STEPS + 1)), "each step exactly once"
    assert [_comparable(m) for m in a] == [_comparable(m) for m in b]


def test_bad_config_fails_before_loading(tmp_path):
    res = _train(
        tmp_path / "x", 2, "--config.model_name=/no/such/model", "--config.rl.aggregation=sum"
    )
    assert res.returncode != 0
    assert "--config.model_name" in res.stderr and "--config.rl.aggregation" in res.stderr
    assert not (tmp_path / "x" / "checkpoints").exists()
    res = _train(tmp_path / "y", 2, "--config.rl.no_such_key=1")
    assert res.returncode != 0 and "no_such_key" in res.stderr


def test_packed_batch_equals_padded_batch():
    """`rl.packing`: the trainer's packed batch of a step's episodes holds the same tokens in
    fewer rows (a multiple of micro-batches x data x fsdp) and gives the padded batch's loss."""
    import jax
    import numpy as np

    from azr_jax.model import hf_io
    from azr_jax.run.trainer import make_batch, make_packed_batch
    from azr_jax.selfplay.step import Episode
    from azr_jax.update.logprobs import token_logprobs
    from azr_jax.update.pg_loss import PGLossConfig, pg_objective, token_weights
    from tests.conftest import tiny_checkpoint

    cfg, params = hf_io.load_hf(tiny_checkpoint("qwen2"))
    rng = np.random.default_rng(0)
    episodes = []
    for i in range(12):
        p, r = int(rng.integers(3, 20)), int(rng.integers(1, 30))
        episodes.append(
            Episode(
                group=i % 6,
                prompt_ids=rng.integers(2, cfg.vocab_size, p).astype(np.int32),
                response_ids=rng.integers(2, cfg.vocab_size, r).astype(np.int32),
                logprobs=rng.normal(-7, 0.3, r).astype(np.float32),
                prompt="",
                response="",
                reward=float(rng.uniform(-1, 1)),
            )
        )
    adv = rng.normal(size=12).astype(np.float32)
    padded, n_pad = make_batch(episodes, adv, pad_id=1)
    packed, n_pack = make_packed_batch(episodes, adv, pad_id=1, cap=48, row_multiple=4)
    assert n_pack == n_pad == sum(len(e.response_ids) for e in episodes)
    assert packed.tokens.shape[0] % 4 == 0 and packed.tokens.shape[0] < padded.tokens.shape[0]
    assert packed.tokens.shape[1] == 48  # the padded layout's 32 + 32, capped at 48
    assert packed.attn_mask.sum() == padded.attn_mask.sum()

    loss_cfg = PGLossConfig(agg_mode="seq-mean-token-mean")

    @jax.jit
    def loss(b):
        logp, ent = token_logprobs(
            params,
            cfg,
            b.tokens,
            b.attn_mask,
            start=b.response_start,
            positions=b.positions,
            segment_ids=b.segment_ids,
            logprob_index=b.logprob_index,
        )
        w = token_weights(b.loss_mask, loss_cfg.agg_mode, b.segment_ids)
        mw = token_weights(b.loss_mask, "token-mean")
        return pg_objective(logp, ent, b, w, mw, loss_cfg)[1]

    got, want = loss(packed), loss(padded)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=2e-6, atol=1e-7, err_msg=k)
