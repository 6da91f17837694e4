"""scripts/selfplay_curve.py, shortened: the real trainer from a (memorised) warm start, 2 steps
per reward variant, held-out scoring, the PNG and the last-line JSON. Greedy rollouts, so the
small warm start writes the programs it memorised (at temperature 1 it is too small to)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import small_warmstart

ROOT = Path(__file__).resolve().parents[2]


def test_shortened_curve_runs_and_writes_its_json(tmp_path):
    base = small_warmstart()
    env = dict(
        os.environ, PYTHONPATH=str(ROOT), XLA_FLAGS="--xla_force_host_platform_device_count=1"
    )
    out = tmp_path / "curve"
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "selfplay_curve.py"),
            f"--config={ROOT / 'configs' / 'default.py'}",
            f"--config.model_name={base}",
            "--config.azr.batch_size=2",
            "--config.sampling.temperature=0",  # greedy: the memorised programs, exactly
            "--config.sampling.max_new_tokens=96",  # its small tokenizer spends more tokens
            "--config.azr.num_references=0",  # its corpus showed no seed triplet as reference
            "--n_rollouts=2",  # the default config's (the script's default is the paper's 8)
            "--steps=2",
            "--every=2",
            "--heldout_programs=16",
            f"--out={out}",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("valid_rate", "heldout_accuracy", "learnable_fraction", "distinct_programs"):
        assert key in summary
    assert summary["steps"] == 2 and summary["seconds"] > 0 and summary["seed"] == 0
    assert set(summary["valid_rate"]) == {"first", "last"}
    acc = summary["heldout_accuracy"]
    assert set(acc) == {"initial", "final"} and set(acc["final"]) == {"code_o", "code_i", "code_f"}
    assert all(0.0 <= v <= 1.0 for part in acc.values() for v in part.values())
    assert set(summary["variants"]) == {"paper", "novelty"}
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "heldout.jsonl").read_text().count("\n") == summary["heldout_n"] > 0
    # The trainer ran on real content: the memorised proposals validate, answers are graded.
    paper = summary["variants"]["paper"]
    assert paper["valid_proposals"] > 0
    assert 0.0 < summary["distinct_programs"] <= 1.0
    verdicts = [
        json.loads(line)["verdict"]
        for path in sorted((out / "paper" / "samples").glob("step_*.jsonl"))
        for line in path.read_text().splitlines()
        if "/solve" in json.loads(line)["group"]
    ]
    assert {"correct", "wrong"} & set(verdicts)
    rows = [json.loads(x) for x in (out / "paper" / "metrics.jsonl").read_text().splitlines()]
    assert "eval/cruxeval_o" in rows[-1] and "code_o/propose/similarity" in rows[-1]
    # the novelty variant ran with its option on (a factor is logged only when it is)
    assert not any(k.endswith("/novelty_factor") for r in rows for k in r)
    rows = [json.loads(x) for x in (out / "novelty" / "metrics.jsonl").read_text().splitlines()]
    assert any(k.endswith("/propose/novelty_factor") for r in rows for k in r)
