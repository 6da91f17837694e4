"""The evaluation report: a Markdown table laid out like the paper's Table 1, and a PNG that
compares two runs benchmark by benchmark.

Table 1 of the paper has one row per model and the columns HEval+, MBPP+, LCB, AIME24,
AIME25, AMC23, MATH500, Minerva, Olympiad, CAvg, MAvg, AVG, in percent with one decimal. Rows
here are the summaries given (e.g. the base model and the trained checkpoint); with two rows a
third shows the difference (second minus first), as the paper's "+x.x" lines do. A benchmark
that was not evaluated shows as "-". A second table says what each row evaluated, per benchmark:
problems scored, records skipped as unreadable, EvalPlus tests dropped, and the file's name and
SHA-256 (its first 12 digits), so two reports show whether they graded the same files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from azr_jax.evals.benchmarks import BENCHMARKS, PAPER_SUITE

AVERAGES = (("code_avg", "CAvg"), ("math_avg", "MAvg"), ("overall_avg", "AVG"))
COLUMNS = tuple((name, BENCHMARKS[name].title) for name in PAPER_SUITE) + AVERAGES


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def markdown_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """The table for `{label: summary}` (summaries from `suite.summarize`), percent."""
    header = "| Model | " + " | ".join(title for _, title in COLUMNS) + " |"
    lines = [header, "|---|" + "---:|" * len(COLUMNS)]
    for label, summary in rows.items():
        cells = [_cell(summary.get(key)) for key, _ in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if len(rows) == 2:
        a, b = rows.values()
        cells = [
            _cell(b[key] - a[key] if key in a and key in b else None, signed=True)
            for key, _ in COLUMNS
        ]
        lines.append("| difference | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluated_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """What each summary evaluated: one line per (summary, benchmark) it holds."""
    lines = [
        "| Model | Benchmark | Problems | Skipped | Dropped tests | File | SHA-256 |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for label, summary in rows.items():
        for name in PAPER_SUITE:
            if f"{name}/n" not in summary:
                continue
            cells = [
                label,
                BENCHMARKS[name].title,
                str(summary[f"{name}/n"]),
                str(summary.get(f"{name}/skipped", "-")),
                str(summary.get(f"{name}/dropped_tests", "-")),
                str(summary.get(f"{name}/file", "-")),
                str(summary.get(f"{name}/sha256", "-"))[:12],
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_comparison(
    rows: Mapping[str, Mapping[str, float]], path: str | Path, title: str = ""
) -> Path:
    """Grouped bars (percent) per benchmark and average for each summary; written to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [(k, t) for k, t in COLUMNS if any(k in s for s in rows.values())]
    if not keys:
        raise ValueError("nothing to plot: the summaries share no benchmark")
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(keys) + 2), 4.0))
    for j, (label, summary) in enumerate(rows.items()):
        xs = [i + (j - (len(rows) - 1) / 2) * width for i in range(len(keys))]
        values = [100 * summary.get(k, 0.0) for k, _ in keys]
        bars = ax.bar(xs, values, width, label=label)
        for bar, (k, _) in zip(bars, keys, strict=True):
            if k in summary:
                ax.annotate(
                    f"{100 * summary[k]:.1f}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(range(len(keys)), [t for _, t in keys], rotation=30, ha="right")
    ax.set_ylabel("pass@1 (%)")
    ax.set_title(title or " vs ".join(rows))
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def load_summary(path: str | Path) -> dict[str, Any]:
    """A summary written by `scripts/evaluate.py` (`*.summary.json`, or a file whose last line
    is the printed JSON)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--compare: {path} not found (a summary JSON from evaluate.py)")
    text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            data = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            raise ValueError(f"--compare: {path} does not end in a JSON summary") from None
    if not isinstance(data, dict):
        raise ValueError(f"--compare: {path} does not end in a JSON summary")
    return data
