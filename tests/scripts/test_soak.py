"""scripts/soak.py: its /proc readings of a live process tree and its summary windows."""

import subprocess
import sys
import time

import pytest

from tests.scripts.script_module import load_module


@pytest.fixture(scope="module")
def soak():
    return load_module("scripts/soak.py")


def test_sample_reads_a_process_tree_and_its_run_dir(soak, tmp_path):
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "samples" / "step_000001.jsonl").write_bytes(b"x" * 3000)
    (run / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3')  # 2 whole lines
    # A child that starts two grandchildren and holds 3 extra fds.
    code = (
        "import os, subprocess, sys, time\n"
        "fs = [open(os.devnull) for _ in range(3)]\n"
        "ps = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']) for _ in range(2)]\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        s = soak.sample(proc.pid, run)
    finally:
        proc.kill()
        proc.wait()
    assert s["children"] == 2
    assert s["step"] == 2
    assert s["fds"] >= 6  # stdin/stdout/stderr + 3 files (+ pipes to the grandchildren)
    assert s["rss_mb"] > 1 and s["threads"] >= 1
    assert s["parts_mb"]["samples"] == pytest.approx(3000 / 2**20)
    time.sleep(0.2)
    assert soak.sample(proc.pid, run) is None  # gone (reaped): no reading


def test_summary_windows_and_slope(soak):
    # 20 steps, 2 samples a step; set-up (step 0) and the shutdown (step 20) are outside the
    # steady state. RSS: 100 in the first tenth, 110 in the last; run dir: 1 MB + 0.5 MB a step.
    samples = [
        {
            "t": 0.0,
            "step": 0,
            "rss_mb": 5000.0,
            "fds": 3,
            "threads": 1,
            "children": 0,
            "run_dir_mb": 0.0,
            "parts_mb": {},
        }
    ]
    for step in range(1, 21):
        for j in range(2):
            samples.append(
                {
                    "t": float(step * 10 + j),
                    "step": step,
                    "rss_mb": 100.0 if step <= 2 else (110.0 if step >= 18 else 300.0),
                    "fds": 11 + (step == 19),
                    "threads": 30,
                    "children": 2 if step < 20 else 0,
                    "run_dir_mb": 1.0 + 0.5 * step,
                    "parts_mb": {"samples": 0.5 * step, "checkpoints": 1.0},
                }
            )
    figures, detail = soak.summarize(samples, 20, 123.4)
    assert list(figures) == ["steps", "rss_mb", "fds", "children", "run_dir_mb_per_step", "seconds"]
    assert figures["steps"] == 20
    assert figures["rss_mb"] == {"first_10pct": 100.0, "last_10pct": 110.0, "max": 5000.0}
    assert figures["fds"] == {"first": 11, "last": 12}
    assert figures["children"] == {"first": 2, "last": 2, "max": 2}
    assert figures["run_dir_mb_per_step"] == pytest.approx(0.5)
    assert figures["seconds"] == 123.4
    assert detail["part_mb_per_step"] == {"checkpoints": 0.0, "samples": 0.5}
    # the trainer finished a step after the last sample: the steps it ran are reported
    assert soak.summarize(samples, 21, 123.4, steps_run=21)[0]["steps"] == 21
