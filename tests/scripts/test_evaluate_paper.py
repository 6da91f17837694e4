"""scripts/evaluate.py's paper table: --responses on publisher-format fixtures (canonical
answers score 100 on all nine, table and files written, --compare draws the PNG), a tiny model
generating greedy and sampled answers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from azr_jax.evals import benchmarks as bm
from tests.conftest import tiny_checkpoint
from tests.evals import publisher_files as pf

ROOT = Path(__file__).resolve().parents[2]


def _evaluate(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", PYTHONPATH=str(ROOT)
    )
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "evaluate.py"),
            f"--config={ROOT / 'configs' / 'default.py'}",
            *args,
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if ok:
        assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return pf.write_all(tmp_path_factory.mktemp("benchmarks"))


def test_responses_score_the_paper_table(data_dir, tmp_path):
    responses = pf.responses_file(tmp_path / "canonical.jsonl", pf.CANONICAL)
    base = tmp_path / "base.summary.json"
    base.write_text(json.dumps({"humaneval_plus": 0.5, "aime24": 0.0, "model": "base"}))
    out = tmp_path / "run"
    res = _evaluate(
        f"--config.output_dir={out}",
        "--config.eval.suite=paper",
        f"--config.eval.data_dir={data_dir}",
        f"--responses={responses}",
        f"--compare={base}",
    )
    lines = res.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    for key in (*bm.PAPER_SUITE, "code_avg", "math_avg", "overall_avg"):
        assert summary[key] == 1.0, key
    assert lines[0].startswith("| Model | HEval+ | MBPP+ | LCB | AIME24")
    assert lines[2].startswith("| base | 50.0 | - | - | 0.0 |")
    assert lines[3].startswith("| canonical | 100.0 | 100.0 | 100.0 | 100.0 |")
    assert lines[4].startswith("| difference | +50.0 | - | - | +100.0 |")
    # what each row evaluated: the files' digests, skipped records and dropped tests
    assert lines[6] == "| Model | Benchmark | Problems | Skipped | Dropped tests | File | SHA-256 |"
    mbpp = next(x for x in lines if x.startswith("| canonical | MBPP+ |"))
    assert mbpp.startswith("| canonical | MBPP+ | 2 | 0 | 0 | MbppPlus.jsonl | ")
    assert summary["mbpp_plus/sha256"] == bm.file_sha256(data_dir / "MbppPlus.jsonl")
    assert summary["mbpp_plus/skipped"] == 0 and summary["livecodebench/skipped"] == 0
    eval_dir = out / "eval"
    verdicts = [json.loads(x) for x in (eval_dir / "responses_canonical.paper.jsonl").open()]
    assert len(verdicts) == sum(len(v) for v in pf.CANONICAL.values())
    assert all(v["correct"] for v in verdicts)
    assert (eval_dir / "responses_canonical.compare.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((eval_dir / "responses_canonical.summary.json").read_text()) == summary


def test_a_model_generates_greedy_and_sampled_answers(data_dir, tmp_path):
    model = tiny_checkpoint("qwen2")
    out = tmp_path / "run"
    res = _evaluate(
        f"--config.output_dir={out}",
        f"--model_dir={model}",
        "--config.eval.benchmarks=mbpp_plus,aime24",
        f"--config.eval.data_dir={data_dir}",
        "--config.eval.max_problems=1",
        "--config.eval.num_samples=2",
        "--config.eval.pass_k=1,2",
        "--config.eval.max_new_tokens=8",
    )
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("mbpp_plus", "aime24", "mbpp_plus/pass@2", "aime24/pass@1", "overall_avg"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert summary["model"] == model.name
    verdicts = [json.loads(x) for x in (out / "eval" / f"hf_{model.name}.paper.jsonl").open()]
    # 1 problem x 2 benchmarks x (1 greedy + 2 samples)
    assert len(verdicts) == 6
    assert sorted({v["sample"] for v in verdicts}) == [-1, 0, 1]
