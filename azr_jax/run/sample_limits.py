"""What `samples/` keeps: rows per group per step, a byte cap per step file, and rotation.

At the paper's settings a step has 6 x 64 update rows of up to ~14k tokens each (10-20 MB of
text); keeping every row fills tens of GB over a run. `SampleLimits` bounds it:

  rows_per_group - the first N rows of each group (the "group" field, e.g. "code_o/solve") of a
                   step are kept; 0 keeps all;
  max_file_bytes - a step file stops before the row that would take it past this many bytes;
                   rows are taken round-robin over the groups so each group keeps its share; 0 is
                   no cap;
  keep_steps     - only the newest N step files stay (older ones are deleted); 0 keeps all.

So samples/ holds at most max_file_bytes x (keep_steps or the number of steps). Metrics and
TensorBoard are not affected (every step is recorded there in full).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

SAMPLES_NAME = re.compile(r"step_(\d+)\.jsonl")


@dataclasses.dataclass(frozen=True)
class SampleLimits:
    rows_per_group: int = 0  # rows kept per group per step (0 = all)
    max_file_bytes: int = 0  # cap per step file (0 = none)
    keep_steps: int = 0  # newest step files kept (0 = all)

    def __post_init__(self):
        for name in ("rows_per_group", "max_file_bytes", "keep_steps"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"SampleLimits.{name}={getattr(self, name)} must be >= 0 (0 = off)"
                )


def bounded_lines(
    samples: Sequence[Mapping[str, Any]],
    limits: SampleLimits,
    to_json: Callable[[Mapping[str, Any]], str] = json.dumps,
) -> list[str]:
    """The JSON lines (with "\\n") of the rows `limits` keeps, groups interleaved round-robin."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for s in samples:
        groups.setdefault(s.get("group"), []).append(s)
    if limits.rows_per_group:
        groups = {g: rows[: limits.rows_per_group] for g, rows in groups.items()}
    depth = max((len(rows) for rows in groups.values()), default=0)
    ordered = [rows[i] for i in range(depth) for rows in groups.values() if i < len(rows)]
    lines, size = [], 0
    for s in ordered:
        line = to_json(s) + "\n"
        n = len(line.encode())
        if limits.max_file_bytes and size + n > limits.max_file_bytes:
            break
        lines.append(line)
        size += n
    return lines


def step_files(samples_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the step files in `samples_dir`, oldest first."""
    if not samples_dir.is_dir():
        return []
    found = []
    for path in samples_dir.iterdir():
        match = SAMPLES_NAME.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def rotate(samples_dir: Path, keep_steps: int) -> None:
    """Deletes all but the newest `keep_steps` step files (0: keeps all)."""
    if keep_steps:
        for _, path in step_files(samples_dir)[:-keep_steps]:
            path.unlink(missing_ok=True)
