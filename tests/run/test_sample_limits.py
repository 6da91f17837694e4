"""samples/ limits: rows per group, the byte cap per file (groups interleaved), rotation, via RunLogger."""

import json

import pytest

from azr_jax.run.records import RunLogger, read_metrics
from azr_jax.run.sample_limits import SampleLimits, bounded_lines, rotate, step_files


def _rows(groups=("a", "b", "c"), per_group=5, text="x" * 50):
    return [{"group": g, "i": i, "response": text} for g in groups for i in range(per_group)]


def test_rows_per_group_keeps_the_first_rows_of_each_group():
    lines = bounded_lines(_rows(), SampleLimits(rows_per_group=2))
    kept = [(r["group"], r["i"]) for r in map(json.loads, lines)]
    assert sorted(kept) == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 0), ("c", 1)]
    assert kept[:3] == [("a", 0), ("b", 0), ("c", 0)]  # round-robin over the groups
    assert len(bounded_lines(_rows(), SampleLimits())) == 15  # 0 = all


def test_byte_cap_stops_before_the_row_that_would_pass_it():
    one = len(json.dumps(_rows()[0]) + "\n")
    cap = 4 * one + one // 2  # room for four rows and a half
    lines = bounded_lines(_rows(), SampleLimits(max_file_bytes=cap))
    assert len(lines) == 4 and sum(len(x.encode()) for x in lines) <= cap
    groups = [json.loads(x)["group"] for x in lines]
    assert groups == ["a", "b", "c", "a"]  # every group keeps its share
    assert bounded_lines(_rows(), SampleLimits(max_file_bytes=one - 1)) == []
    with pytest.raises(ValueError, match="keep_steps=-1 must be >= 0"):
        SampleLimits(keep_steps=-1)


def test_rotate_keeps_the_newest_step_files(tmp_path):
    for step in (3, 1, 10, 2):
        (tmp_path / f"step_{step:06d}.jsonl").write_text("{}\n")
    (tmp_path / "notes.txt").write_text("kept")
    rotate(tmp_path, 2)
    assert [s for s, _ in step_files(tmp_path)] == [3, 10]
    assert (tmp_path / "notes.txt").exists()
    rotate(tmp_path, 0)
    assert len(step_files(tmp_path)) == 2


def test_run_logger_bounds_samples_but_not_metrics(tmp_path):
    limits = SampleLimits(rows_per_group=2, max_file_bytes=10_000, keep_steps=3)
    with RunLogger(tmp_path, sample_limits=limits) as log:
        for step in range(1, 7):
            log.log(step, {"reward": 0.1 * step})
            log.log_samples(step, _rows(text="y" * 1000))
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == list(range(1, 7))
    files = step_files(tmp_path / "samples")
    assert [s for s, _ in files] == [4, 5, 6]
    for _, path in files:
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        assert len(rows) == 6 and path.stat().st_size <= 10_000
    # Resuming from step 5 still drops the later step file.
    with RunLogger(tmp_path, resume_step=5, sample_limits=limits):
        pass
    assert [s for s, _ in step_files(tmp_path / "samples")] == [4, 5]
