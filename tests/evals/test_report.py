"""The report: the Markdown table in Table 1's layout, the comparison PNG, summary files."""

import json

import pytest

from azr_jax.evals import report

BASE = {"humaneval_plus": 0.5, "math500": 0.25, "code_avg": 0.5, "math_avg": 0.25,
        "overall_avg": 0.375, "model": "base"}  # fmt: skip
TRAINED = {"humaneval_plus": 0.625, "math500": 0.5, "code_avg": 0.625, "math_avg": 0.5,
           "overall_avg": 0.5625}  # fmt: skip


def test_markdown_table_layout():
    table = report.markdown_table({"base": BASE, "trained": TRAINED}).splitlines()
    assert table[0] == (
        "| Model | HEval+ | MBPP+ | LCB | AIME24 | AIME25 | AMC23 | MATH500 | Minerva | "
        "Olympiad | CAvg | MAvg | AVG |"
    )
    assert table[2] == "| base | 50.0 | - | - | - | - | - | 25.0 | - | - | 50.0 | 25.0 | 37.5 |"
    assert table[3].startswith("| trained | 62.5 | - |")
    assert table[4] == (
        "| difference | +12.5 | - | - | - | - | - | +25.0 | - | - | +12.5 | +25.0 | +18.8 |"
    )
    assert len(report.markdown_table({"one": BASE}).splitlines()) == 3  # no difference row


def test_evaluated_table_says_what_each_row_graded():
    graded = {**TRAINED, "humaneval_plus/n": 164, "humaneval_plus/skipped": 1,
              "humaneval_plus/dropped_tests": 0, "humaneval_plus/file": "HumanEvalPlus.jsonl.gz",
              "humaneval_plus/sha256": "272720b90ac375502c8ed23cd791c2a93dfb22a9"}  # fmt: skip
    table = report.evaluated_table({"base": BASE, "trained": graded}).splitlines()
    assert table[0] == "| Model | Benchmark | Problems | Skipped | Dropped tests | File | SHA-256 |"
    assert table[2:] == [
        "| trained | HEval+ | 164 | 1 | 0 | HumanEvalPlus.jsonl.gz | 272720b90ac3 |"
    ]


def test_comparison_png(tmp_path):
    path = report.plot_comparison({"base": BASE, "trained": TRAINED}, tmp_path / "x" / "c.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError, match="share no benchmark"):
        report.plot_comparison({"a": {}}, tmp_path / "y.png")


def test_load_summary(tmp_path):
    one = tmp_path / "a.summary.json"
    one.write_text(json.dumps(BASE))
    assert report.load_summary(one)["humaneval_plus"] == 0.5
    log = tmp_path / "stdout.txt"
    log.write_text("| table |\n" + json.dumps(TRAINED) + "\n")
    assert report.load_summary(log)["math500"] == 0.5
    with pytest.raises(FileNotFoundError, match="--compare"):
        report.load_summary(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("hello\n")
    with pytest.raises(ValueError, match="does not end in a JSON summary"):
        report.load_summary(tmp_path / "bad.json")
