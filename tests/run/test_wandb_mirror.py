"""The W&B mirror, offline (WANDB_MODE=offline, no network): logged keys, sample table, plots, resume."""

import json

import pytest

pytest.importorskip(
    "wandb", reason="wandb is in requirements-dev.txt; install it to test the W&B option"
)

from azr_jax.run.records import RunLogger  # noqa: E402
from azr_jax.run.wandb_mirror import RUN_ID_FILE, WandbMirror  # noqa: E402
from tests.run.wandb_records import history  # noqa: E402


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def _logger(tmp_path, resume_step=None):
    mirror = WandbMirror(tmp_path, project="azr-test", samples_every=2, config={"seed": 0})
    return RunLogger(tmp_path, resume_step=resume_step, mirror=mirror), mirror


def test_metrics_samples_and_plots_reach_wandb_and_a_restart_resumes_the_run(tmp_path):
    log, mirror = _logger(tmp_path)
    first_id = mirror.run_id
    with log:
        for step in (1, 2):
            log.log(step, {"code_o/solve/reward": 0.5 * step, "policy/loss": 1.0, "note": "x"})
            log.log_samples(step, [{"group": "code_o/solve", "prompt": "p", "reward": 1.0}])
        log.plot({"reward": ["code_o/solve/reward"]})
    assert (tmp_path / RUN_ID_FILE).read_text().strip() == first_id

    # A restart (resumed from the step-1 checkpoint) reopens the same W&B run.
    log, mirror = _logger(tmp_path, resume_step=1)
    assert mirror.run_id == first_id
    with log:
        log.log(2, {"code_o/solve/reward": 0.25, "policy/loss": 0.5})

    run_id, rows = history(tmp_path)
    assert run_id == first_id
    metric_rows = [r for r in rows if "policy/loss" in r]
    assert [r["step"] for r in metric_rows] == [1, 2, 2]
    assert [r["code_o/solve/reward"] for r in metric_rows] == [0.5, 1.0, 0.25]
    assert not any("note" in r for r in rows)  # strings stay in metrics.jsonl
    tables = [r for r in rows if "samples/_type" in r]
    assert [(t["step"], t["samples/_type"], t["samples/nrows"]) for t in tables] == [
        (2, "table-file", 1)
    ]
    assert any(r.get("plots/reward/_type") == "image-file" for r in rows), rows
    # metrics.jsonl (the source of truth) holds the resumed steps once each.
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_missing_wandb_is_a_clear_error(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_wandb(name, *a, **k):
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(ImportError, match="pip install wandb"):
        WandbMirror(tmp_path, project="p")
