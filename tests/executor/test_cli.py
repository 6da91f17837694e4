"""The command line: every record reported, a summary line last, exit code 0."""

import json
import os
import subprocess
import sys

from tests.executor.data import REPO


def _run(tmp_path, records, *args):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\nnot json\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "azr_jax.executor",
            *args[:1],
            str(path),
            *args[1:],
            "--timeout_s",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_validate(tmp_path):
    records = [
        {"id": "a", "code": "def f(x):\n    return x + 1", "input": "1", "output": "2"},
        {"id": "b", "code": "def f(x):\n    return x + 1", "input": "1", "output": "3"},
        {"id": "c", "code": "def f(x):\n    while True:\n        pass", "input": "1"},
        {"id": "d", "code": "import os\ndef f(x):\n    return 1", "input": "1"},
        {"id": "e", "code": 5},
    ]
    lines = _run(tmp_path, records, "validate")
    by_id = {line.get("id"): line for line in lines[:-1]}
    assert by_id["a"]["valid"] and by_id["a"]["output"] == "2" and by_id["a"]["matches_expected"]
    assert by_id["b"]["valid"] and by_id["b"]["matches_expected"] is False
    assert not by_id["c"]["valid"] and "timeout" in by_id["c"]["error"]
    assert by_id["c"]["matches_expected"] is None
    assert not by_id["d"]["valid"] and "banned" in by_id["d"]["error"]
    assert not by_id["e"]["valid"]
    summary = lines[-1]
    assert summary["n"] == 6 and summary["valid"] == 2 and summary["matched"] == 1
    assert {"seconds", "per_second"} <= set(summary)


def test_grade(tmp_path):
    code = "def f(s):\n    return s * 2"
    ded = [
        {"id": "x", "code": code, "input": "'a'", "output": "'aa'", "answer": "'aa'"},
        {"id": "y", "code": code, "input": "'a'", "output": "'aa'", "answer": "'a' * 2"},
    ]
    lines = _run(tmp_path, ded, "grade", "--task", "deduction")
    assert {line["id"]: line["correct"] for line in lines[:-1]} == {"x": True, "y": False, 2: False}
    assert len(lines) == 4 and lines[-1]["n"] == 3 and lines[-1]["correct"] == 1
    abd = [
        {"id": 1, "code": code, "input": "'a'", "output": "'aa'", "answer": "'a'"},
        {"id": 2, "code": code, "input": "'a'", "output": "'aa'", "answer": "'b'"},
    ]
    lines = _run(tmp_path, abd, "grade", "--task", "abduction")
    got = {line["id"]: line["correct"] for line in lines[:-1] if line["id"] in (1, 2)}
    assert got == {1: True, 2: False}
    ind = [
        {
            "id": "i",
            "code": code,
            "input": ["1", "'x'"],
            "output": ["2", "'xx'"],
            "answer": "def g(v):\n    return v + v",
        }
    ]
    lines = _run(tmp_path, ind, "grade", "--task", "induction")
    assert [line["correct"] for line in lines[:-1] if line["id"] == "i"] == [True]
