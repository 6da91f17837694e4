"""Weights & Biases as an option: the run's metrics, plots and a sample table, mirrored to W&B.

`--config.logging.wandb=True` makes the trainer build a `WandbMirror` on process 0 only and hand
it to `records.RunLogger`, which sends it everything it writes: every numeric metric of a step
(the same keys as metrics.jsonl and TensorBoard, against the step metric "step"), a table of
the step's kept samples every `samples_every` steps, and plots/*.png when they are drawn.

Resuming: the W&B run id is kept in `<run dir>/wandb_run_id`; a restarted run reopens the same
W&B run (`resume="allow"`). Every key is plotted against "step" rather than W&B's own counter,
so steps re-run after a crash are accepted (W&B drops rows whose own step goes backwards).

`wandb` is imported only here, only when enabled: `pip install wandb` (it is in
requirements-dev.txt for the tests). Offline (no network, e.g. tests): `WANDB_MODE=offline`;
`wandb sync <run dir>/wandb/offline-run-*` uploads later.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from azr_jax.storage import paths

RUN_ID_FILE = "wandb_run_id"
STEP_KEY = "step"


def _import_wandb():
    try:
        import wandb
    except ImportError as e:
        raise ImportError(
            "--config.logging.wandb=True needs the wandb package: pip install wandb "
            "(or set --config.logging.wandb=False)"
        ) from e
    return wandb


class WandbMirror:
    """One W&B run per run directory; `log`, `log_samples`, `log_plots`, `close`."""

    def __init__(
        self,
        workdir: str | Path,
        *,
        project: str,
        entity: str = "",
        name: str = "",
        config: Mapping[str, Any] | None = None,
        samples_every: int = 10,
    ):
        """Starts (or resumes) the W&B run of `workdir`.

        Args:
            workdir: the run directory; holds `wandb_run_id` and W&B's own files (`wandb/`).
            project / entity: where the run goes ("" entity: the account's default).
            name: the run's display name ("" = the run directory's name).
            config: the run config, shown in W&B.
            samples_every: a sample table every this many steps (0 = never).
        """
        wandb = _import_wandb()
        self._wandb = wandb
        self.workdir = paths.run_path(workdir)
        self.samples_every = samples_every
        id_file = self.workdir / RUN_ID_FILE
        if id_file.exists():
            run_id = id_file.read_text().strip()
        else:
            run_id = uuid.uuid4().hex[:12]  # W&B ids: letters and digits
            paths.write_atomic(id_file, (run_id + "\n").encode())
        # W&B's own files need a local directory: a bucket run keeps them in a temporary one
        # (`wandb sync` is then not available offline; online runs upload as they go).
        local = (
            Path(tempfile.mkdtemp(prefix="azr-wandb-"))
            if paths.is_url(self.workdir)
            else Path(self.workdir)
        )
        self.run_id = run_id
        self.run = wandb.init(
            project=project,
            entity=entity or None,
            name=name or self.workdir.name,
            id=run_id,
            resume="allow",
            dir=str(local),
            config=dict(config or {}),
        )
        self.run.define_metric(STEP_KEY)
        self.run.define_metric("*", step_metric=STEP_KEY)

    def log(self, step: int, record: Mapping[str, Any]) -> None:
        """The numeric metrics of `step` (bools and strings are left to metrics.jsonl)."""
        row = {
            k: v
            for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        row[STEP_KEY] = step
        self.run.log(row)

    def log_samples(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """A table of the step's kept sample rows, every `samples_every` steps."""
        if not rows or not self.samples_every or step % self.samples_every:
            return
        columns = sorted({k for r in rows for k in r})
        data = [[_cell(r.get(c)) for c in columns] for r in rows]
        self.run.log({"samples": self._wandb.Table(columns=columns, data=data), STEP_KEY: step})

    def log_plots(self, paths: Sequence[Path]) -> None:
        """The run's plots as images, under plots/<name>."""
        if paths:
            step = self.run.summary.get(STEP_KEY)
            row = {f"plots/{Path(p).stem}": self._wandb.Image(str(p)) for p in paths}
            if step is not None:
                row[STEP_KEY] = step
            self.run.log(row)

    def close(self) -> None:
        self.run.finish()


def _cell(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
