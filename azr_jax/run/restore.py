"""A run's policy for evaluation and export: the model it trained, its weights at a checkpoint.

The run directory is the source of truth. Its `config.json` (written by every start of
`train.py`) says which model the run started from, in which dtypes and on which mesh; a preset
given to `evaluate.py` or `export_hf.py` changes only the keys the user names on the command
line (`recorded_config`). The base model is the run's `base_model/` copy (a built model's),
else the `model_name` it recorded: a local directory, or a hub name resolved as training
resolved it. Only the parameters are read from the checkpoint (`Checkpointer.restore_params`):
no AdamW moments, no float32 master, so a run evaluates on fewer chips than it trained on.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from azr_jax.model import hf_io
from azr_jax.model import transformer as model_lib
from azr_jax.parallel import sharding as shd
from azr_jax.run.checkpointing import Checkpointer
from azr_jax.run.trainer import run_time_model
from azr_jax.storage import paths, staging

log = logging.getLogger(__name__)

# What a run trained with, taken from its config.json unless named on the command line.
RECORDED_KEYS = (
    "model_name",
    "model.param_dtype",
    "model.dtype",
    "model.tiny_family",
    "model.base",
    "model.mlp_chunk",
    "model.remat_offload",
    "mesh.data",
    "mesh.fsdp",
    "mesh.tensor",
)


def named_on_command_line(argv: Iterable[str] | None = None) -> set[str]:
    """The config keys given as `--config.KEY=VALUE` (or `--config.KEY VALUE`) in `argv`."""
    names = set()
    for arg in sys.argv[1:] if argv is None else argv:
        if arg.startswith("--config."):
            names.add(arg[len("--config.") :].split("=", 1)[0])
    return names


def recorded_config(config: Any, named: Iterable[str] = ()) -> Any:
    """`config` with the model, dtype and mesh keys its run's config.json recorded (RECORDED_KEYS),
    except those in `named` (the caller's explicit choices). A run without config.json (or a key
    it did not record) keeps the caller's values."""
    record = paths.run_path(config.output_dir) / "config.json"
    if not record.exists():
        return config
    stored = json.loads(record.read_text())
    named = set(named)
    config = config.copy_and_resolve_references()
    changed = []
    with config.unlocked():
        for key in RECORDED_KEYS:
            group, _, leaf = key.rpartition(".")
            source = stored.get(group, {}) if group else stored
            if key in named or leaf not in source:
                continue
            target = config[group] if group else config
            if target[leaf] != source[leaf]:
                changed.append(f"{key}={source[leaf]!r}")
                target[leaf] = source[leaf]
    if changed:
        log.info("%s trained with %s (its config.json)", config.output_dir, ", ".join(changed))
    return config


def run_base_model(workdir, model_name: str = "") -> Path:
    """The Hugging Face directory a run started from: `model_name` when given, else the run's
    copy (`base_model/`, a built model's), else the `model_name` its config.json recorded (a local
    directory, or a hub name: found in the local hub cache, or downloaded, as training did). The
    run directory and the model may be gs:// URLs: the model is then staged once per host and
    the local copy returned."""
    workdir = paths.run_path(workdir)
    if model_name:
        candidates = [model_name]
    else:
        candidates = [str(workdir / "base_model")]
        record = workdir / "config.json"
        if record.exists():
            recorded = json.loads(record.read_text()).get("model_name") or ""
            if recorded:
                candidates.append(recorded)
    for name in candidates:
        if paths.is_url(name):
            if (paths.run_path(name) / "config.json").exists():
                return staging.stage(name)
        elif (Path(name).expanduser() / "config.json").exists():
            return Path(name).expanduser()
    hub = [n for n in candidates if hf_io.is_hub_name(n)]
    if hub:
        return hf_io.resolve_model_dir(hub[0])  # CheckpointError with the offline fix if it fails
    raise FileNotFoundError(
        f"{workdir}'s base model is not at {' or '.join(candidates)} (no config.json there); pass "
        "--config.model_name=DIR (or the hub name), the Hugging Face model the run started from"
    )


def load_policy(config, step: int | None = None, model_dir: str | None = None):
    """(cfg, params, mesh, base model dir, step) of a run's checkpoint, or of a plain HF directory.

    With `model_dir`, the Hugging Face directory is loaded as is (the base model, for before/after
    comparisons). Otherwise the run in `config.output_dir` is restored, parameters only: `step`,
    or the latest. Pass `recorded_config(config, ...)` to use the run's own model keys.
    """
    mesh = shd.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
    kw = dict(
        param_dtype=config.model.param_dtype,
        dtype=config.model.dtype,
        attention=config.model.attention,
    )
    if model_dir:
        cfg, params = hf_io.load_hf(model_dir, mesh, **kw)
        cfg = cfg.replace(**run_time_model(config))
        return cfg, params, mesh, hf_io.resolve_model_dir(model_dir), None
    workdir = paths.run_path(config.output_dir)
    ckpt_dir = workdir / "checkpoints"
    if not ckpt_dir.exists():
        raise FileNotFoundError(
            f"{workdir} holds no run (no checkpoints/); pass the run's --config.output_dir, or "
            "evaluate a Hugging Face directory with --model_dir"
        )
    base = run_base_model(workdir, config.model_name)
    cfg = hf_io.load_config(base, **kw).replace(**run_time_model(config))
    abstract = abstract_params(cfg, mesh)
    with Checkpointer(ckpt_dir, save_interval_steps=1, max_to_keep=None, async_save=False) as ck:
        step = ck.latest_step() if step is None or step < 0 else step
        if step is None:
            raise FileNotFoundError(f"{ckpt_dir} holds no complete checkpoint yet")
        params = ck.restore_params(step, abstract)
    return cfg, params, mesh, base, step


def abstract_params(cfg, mesh) -> Any:
    """ShapeDtypeStructs of the parameters with their training shardings (TRAIN_RULES)."""
    import jax

    abstract = model_lib.abstract_params(cfg)
    shd.check_heads(mesh, cfg.num_heads, cfg.num_kv_heads)
    shardings = shd.tree_shardings(abstract, model_lib.param_axes(cfg), mesh, shd.TRAIN_RULES)
    return jax.tree_util.tree_map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
