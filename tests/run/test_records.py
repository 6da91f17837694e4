"""RunLogger: metrics/TensorBoard/samples/plots, resume dedup, truncated lines, non-writers."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.run.records import Progress, RunLogger, read_metrics, write_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _steps(workdir) -> list[int]:
    return [r["step"] for r in read_metrics(workdir / "metrics.jsonl")]


def test_log_writes_metrics_tensorboard_and_samples(tmp_path):
    with RunLogger(tmp_path) as log:
        for step in range(1, 4):
            log.log(
                step, {"reward": np.float32(0.5 * step), "acc": jnp.asarray(0.25), "phase": "solve"}
            )
            log.log_samples(
                step, [{"prompt": "p", "response": "r", "verdict": True, "reward": np.float64(1.0)}]
            )
        with pytest.raises(ValueError, match="log each step once"):
            log.log(3, {"reward": 1.0})
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records[0] == {"step": 1, "reward": 0.5, "acc": 0.25, "phase": "solve"}
    assert _steps(tmp_path) == [1, 2, 3]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    sample = json.loads((tmp_path / "samples" / "step_000002.jsonl").read_text())
    assert sample == {"prompt": "p", "response": "r", "verdict": True, "reward": 1.0}


def _crashed_run(workdir, last_step: int) -> None:
    """Logs steps 1..last_step with samples, then leaves a half-written line (a kill mid-write)."""
    with RunLogger(workdir) as log:
        for step in range(1, last_step + 1):
            log.log(step, {"reward": float(step)})
            log.log_samples(step, [{"prompt": str(step)}])
    with open(workdir / "metrics.jsonl", "a") as f:
        f.write(f'{{"step": {last_step + 1}, "rew')


def test_resume_drops_later_steps_and_truncated_line(tmp_path):
    _crashed_run(tmp_path, last_step=7)
    with RunLogger(tmp_path, resume_step=5) as log:  # the checkpoint was at step 5
        assert log.last_step == 5
        assert _steps(tmp_path) == [1, 2, 3, 4, 5]
        for step in (6, 7, 8):
            log.log(step, {"reward": float(step)})
    assert _steps(tmp_path) == list(range(1, 9))
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        f"step_{s:06d}.jsonl" for s in range(1, 6)
    ]


def test_truncated_last_line_is_dropped_and_corruption_elsewhere_is_an_error(tmp_path):
    _crashed_run(tmp_path, last_step=3)
    assert _steps(tmp_path) == [1, 2, 3]
    with RunLogger(tmp_path, resume_step=10) as log:
        log.log(4, {"reward": 4.0})
    assert _steps(tmp_path) == [1, 2, 3, 4]
    text = (tmp_path / "metrics.jsonl").read_text().splitlines()
    (tmp_path / "metrics.jsonl").write_text("\n".join([text[0], "{oops", *text[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl:2 is not a JSON line"):
        RunLogger(tmp_path, resume_step=10)


def test_fresh_start_clears_earlier_records(tmp_path):
    _crashed_run(tmp_path, last_step=3)
    with RunLogger(tmp_path) as log:
        assert log.last_step is None
        log.log(1, {"reward": 1.0})
    assert _steps(tmp_path) == [1]
    assert not list((tmp_path / "samples").iterdir())


def test_non_writer_is_a_noop(tmp_path):
    workdir = tmp_path / "run"
    log = RunLogger(workdir, is_writer=False, resume_step=3)
    log.log(1, {"reward": 1.0})
    assert log.log_samples(1, [{"prompt": "p"}]) is None
    assert log.plot({"reward": ["reward"]}) == []
    log.close()
    assert not workdir.exists()


def test_plots_are_valid_pngs(tmp_path):
    with RunLogger(tmp_path) as log:
        for step in range(1, 6):
            log.log(
                step,
                {
                    "reward/induction/solve": step / 5,
                    "acc/deduction/solve": float("nan") if step == 2 else 0.5,
                },
            )
        paths = log.plot(
            {
                "reward": ["reward/induction/solve", "reward/abduction/solve"],
                "acc": ["acc/deduction/solve"],
            }
        )
        with pytest.raises(ValueError, match="figure name"):
            log.plot({"../escape": ["reward/induction/solve"]})
    assert [p.name for p in paths] == ["reward.png", "acc.png"]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert not list((tmp_path / "plots").glob("*.tmp"))


def test_write_config_and_progress(tmp_path, capsys):
    assert write_config(tmp_path, {"lr": 1e-6, "mesh": {"data": -1}}).name == "config.json"
    assert json.loads((tmp_path / "config.json").read_text()) == {"lr": 1e-6, "mesh": {"data": -1}}
    assert write_config(tmp_path, "lr = 1e-6\n").read_text() == "lr = 1e-6\n"
    bar = Progress(total_steps=10, initial_step=4)
    for step in (5, 6):
        bar.update(step, {"reward": np.float32(0.5), "phase": "solve"})
    bar.close()
    shown = capsys.readouterr().err
    assert "6/10" in shown and "reward=0.5" in shown and "phase=solve" in shown
