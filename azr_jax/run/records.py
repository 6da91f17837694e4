"""The run directory's records: metrics, TensorBoard, samples, plots, config snapshot, progress bar.

Layout of `workdir`:
  metrics.jsonl              - one JSON object per step, each with "step" (the source of truth),
  tb/                        - TensorBoard event files (numeric metrics as scalars),
  samples/step_000042.jsonl  - that step's prompts, responses and verdicts, one JSON per line,
  plots/<name>.png           - chosen metrics over steps, redrawn from metrics.jsonl,
  config.json | config.py    - the config the run was started with.

Resuming: a run restored from the checkpoint of step S reopens its `RunLogger` with
`resume_step=S`; records of steps after S (written after that checkpoint, before the crash) are
dropped, so every step appears exactly once once the run finishes.

On multi-host runs only process 0 writes: pass `is_writer=jax.process_index() == 0`.

`workdir` may be a `gs://` URL (storage/paths.py). Object storage has no append: metrics.jsonl
and the TensorBoard event file then grow in a local staging directory and are uploaded whole
after every step (a few kB to MB: small beside a step), before that step's checkpoint is saved,
so a resumed run finds every record up to its checkpoint (and drops any later ones, as locally).
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tqdm
from matplotlib.figure import Figure
from tensorboardX import SummaryWriter

from azr_jax.run.sample_limits import SampleLimits, bounded_lines, rotate
from azr_jax.storage import paths

METRICS_FILE = "metrics.jsonl"
_SAMPLES_NAME = re.compile(r"step_(\d+)\.jsonl")


class RunLogger:
    """Appends one metrics line per step, mirrors numbers to TensorBoard, writes samples/plots."""

    def __init__(
        self,
        workdir: str | Path | paths.epath.Path,
        *,
        is_writer: bool = True,
        resume_step: int | None = None,
        sample_limits: SampleLimits = SampleLimits(),
        mirror: Any = None,
    ):
        """Opens the records of `workdir`, dropping those of steps after `resume_step`.

        Args:
            workdir: the run directory (created if missing): a local path or a gs:// URL.
            is_writer: False makes every method a no-op (non-zero processes of a multi-host run).
            resume_step: the step of the checkpoint the run resumed from; records of later
                steps are removed. None (a fresh start) removes all earlier records.
            sample_limits: what samples/ keeps (`sample_limits.SampleLimits`; default: all).
            mirror: also sends metrics, samples and plots there (e.g. `wandb_mirror.WandbMirror`:
                methods `log(step, record)`, `log_samples(step, rows)`, `log_plots(paths)`,
                `close()`); None for none.
        """
        self.is_writer = is_writer
        self.workdir = paths.run_path(workdir)
        self.last_step: int | None = None
        self.sample_limits = sample_limits
        self.mirror = mirror
        if not is_writer:
            return
        paths.makedirs(self.workdir)
        keep_through = -1 if resume_step is None else resume_step
        self.last_step = _truncate_metrics(self.workdir / METRICS_FILE, keep_through)
        _remove_samples_after(self.workdir / "samples", keep_through)
        # Local: the files themselves. A URL: local copies, uploaded whole by `_upload`.
        self._staging = (
            Path(tempfile.mkdtemp(prefix="azr-records-")) if paths.is_url(self.workdir) else None
        )
        local = self._staging or Path(self.workdir)
        if self._staging is not None:
            (self._staging / METRICS_FILE).write_bytes(_read_bytes(self.workdir / METRICS_FILE))
        self._metrics_path = local / METRICS_FILE
        self._metrics = open(self._metrics_path, "a", encoding="utf-8")
        self._tb_dir = local / "tb"
        # purge_step hides events at steps >= it left by the crashed attempt.
        self._tb = SummaryWriter(str(self._tb_dir), purge_step=keep_through + 1)

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Records `metrics` of `step` (one call per step, steps increasing) and flushes.

        Values may be Python or numpy/jax scalars, strings, lists or dicts; numeric scalars also
        go to TensorBoard under their key.
        """
        if not self.is_writer:
            return
        if self.last_step is not None and step <= self.last_step:
            raise ValueError(
                f"log(step={step}) after step {self.last_step}: log each step once, in order "
                "(merge a step's metrics into one dict)"
            )
        if "step" in metrics and metrics["step"] != step:
            raise ValueError(f"metrics['step']={metrics['step']} disagrees with step={step}")
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items() if k != "step"}}
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._tb.add_scalar(key, value, global_step=step)
        self._tb.flush()
        self._upload()
        if self.mirror is not None:
            self.mirror.log(step, record)
        self.last_step = step

    def _upload(self) -> None:
        """A URL workdir: uploads the staged metrics.jsonl and event files, each whole."""
        if self._staging is None:
            return
        paths.upload(self._metrics_path, self.workdir / METRICS_FILE)
        for event_file in sorted(self._tb_dir.iterdir()):
            paths.upload(event_file, self.workdir / "tb" / event_file.name)

    def log_samples(
        self, step: int, samples: Sequence[Mapping[str, Any]]
    ) -> paths.epath.Path | None:
        """Writes `samples` (e.g. prompt, response, verdict dicts) to samples/step_{step:06d}.jsonl.

        Only the rows `sample_limits` keeps (per group, byte cap); then the oldest step files
        beyond `sample_limits.keep_steps` are deleted.
        """
        if not self.is_writer:
            return None
        path = self.workdir / "samples" / f"step_{step:06d}.jsonl"
        lines = bounded_lines(
            samples, self.sample_limits, lambda s: json.dumps({k: _plain(v) for k, v in s.items()})
        )
        paths.write_atomic(path, "".join(lines).encode())
        rotate(path.parent, self.sample_limits.keep_steps)
        if self.mirror is not None:
            self.mirror.log_samples(step, [json.loads(line) for line in lines])
        return path

    def plot(self, keys_by_figure: Mapping[str, Sequence[str]]) -> list[paths.epath.Path]:
        """Draws each figure's metric keys over steps into plots/<figure>.png.

        Example: `plot({"reward": ["reward/induction/solve", "reward/deduction/solve"]})`.
        A key without data yet is shown as "(no data)" in the legend.
        """
        if not self.is_writer:
            return []
        records = read_metrics(self.workdir / METRICS_FILE)
        out_dir = self.workdir / "plots"
        written, local = [], []
        for name, keys in keys_by_figure.items():
            if not re.fullmatch(r"[\w.-]+", name):
                raise ValueError(f"figure name {name!r}: use letters, digits, '_', '-', '.' only")
            fig = Figure(figsize=(7, 4), layout="constrained")
            ax = fig.subplots()
            for key in keys:
                points = [(r["step"], r[key]) for r in records if _is_number(r.get(key))]
                label = key if points else f"{key} (no data)"
                ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=label)
            ax.set(title=name, xlabel="step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
            path = out_dir / f"{name}.png"
            png = io.BytesIO()
            fig.savefig(png, format="png", dpi=100)
            paths.write_atomic(path, png.getvalue())
            written.append(path)
            if self._staging is not None:  # the mirror reads local files
                (self._staging / "plots").mkdir(exist_ok=True)
                (self._staging / "plots" / path.name).write_bytes(png.getvalue())
                local.append(self._staging / "plots" / path.name)
        if self.mirror is not None:
            self.mirror.log_plots(local if self._staging is not None else written)
        return written

    def close(self) -> None:
        if not self.is_writer:
            return
        self._metrics.close()
        self._tb.close()
        try:
            self._upload()
        finally:
            if self._staging is not None:
                shutil.rmtree(self._staging, ignore_errors=True)
            if self.mirror is not None:
                self.mirror.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress:
    """A console progress bar over training steps, with step rate, ETA and a few metrics."""

    def __init__(self, total_steps: int, initial_step: int = 0, *, enabled: bool = True):
        """`initial_step`: steps already done (a resumed run); the rate counts only new steps."""
        self.step = initial_step
        self._bar = tqdm.tqdm(
            total=total_steps,
            initial=initial_step,
            unit="step",
            dynamic_ncols=True,
            disable=not enabled,
        )

    def update(self, step: int, postfix: Mapping[str, Any] | None = None) -> None:
        """Moves the bar to `step` (steps done) and shows `postfix` metrics."""
        if postfix:
            plain = {k: _plain(v) for k, v in postfix.items()}
            shown = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in plain.items()}
            self._bar.set_postfix(shown, refresh=False)
        self._bar.update(step - self.step)
        self.step = step

    def close(self) -> None:
        self._bar.close()


def write_config(workdir: str | Path, config: Mapping[str, Any] | str) -> paths.epath.Path:
    """Snapshots the run's config: a dict to config.json, source text to config.py."""
    workdir = paths.makedirs(workdir)
    if isinstance(config, str):
        path, text = workdir / "config.py", config
    else:
        path, text = workdir / "config.json", json.dumps(_plain(config), indent=2, sort_keys=True)
    paths.write_atomic(path, text.encode())
    return path


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl (local or gs://); a truncated last line (killed mid-write)
    is skipped."""
    path = paths.run_path(path)
    lines = _read_bytes(path).decode("utf-8").splitlines()
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # the one line a kill can cut short
            raise ValueError(f"{path}:{i + 1} is not a JSON line: {line[:200]!r}") from None
    return records


def _read_bytes(path: paths.epath.Path) -> bytes:
    """The file's bytes; b"" if there is none."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _truncate_metrics(path: paths.epath.Path, keep_through: int) -> int | None:
    """Atomically rewrites `path` with only the records of steps <= keep_through; returns the last."""
    if not path.exists():
        return None
    kept = [r for r in read_metrics(path) if r["step"] <= keep_through]
    paths.write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept).encode())
    return kept[-1]["step"] if kept else None


def _remove_samples_after(samples_dir: paths.epath.Path, keep_through: int) -> None:
    if not samples_dir.is_dir():
        return
    for path in samples_dir.iterdir():
        match = _SAMPLES_NAME.fullmatch(path.name)
        if match and int(match.group(1)) > keep_through:
            path.unlink()


def _plain(value: Any) -> Any:
    """JSON-able form of metric values: numpy/jax scalars and arrays become numbers and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if hasattr(value, "__array__"):  # numpy / jax arrays and scalars
        return np.asarray(value).tolist()
    raise TypeError(f"cannot log a {type(value).__name__} ({value!r:.100}); convert it first")


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
    )
