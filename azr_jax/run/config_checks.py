"""Up-front validation of a run's ConfigDict: every problem named with its key and the fix.

Called by the entry scripts before any weights load, so a typo costs seconds, not a TPU boot.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from azr_jax.model.config import (
    ATTENTION_CHOICES,
    FAMILIES,
    SUPPORTED_DTYPES,
    resolve_attention,
)
from azr_jax.storage import paths

TASK_TYPES = ("code_o", "code_i", "code_f")
SCHEDULES = ("constant", "cosine", "linear_warmup")
AGGREGATIONS = ("token-mean", "seq-mean-token-mean")
MASTER_MODES = ("float32", "compensated", "none")  # update/master_weights.MODES
log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """One or more invalid config values; the message lists each key, the problem and the fix."""


def _mesh_sizes(c: Any, num_devices: int) -> dict[str, int] | str:
    sizes = {k: c.mesh[k] for k in ("data", "fsdp", "tensor")}
    free = [k for k, v in sizes.items() if v == -1]
    if len(free) > 1 or any(v == 0 or v < -1 for v in sizes.values()):
        return "mesh: sizes must be >= 1, with at most one -1 ('the devices that remain')"
    fixed = math.prod(v for v in sizes.values() if v != -1)
    if free:
        if num_devices % fixed:
            return f"mesh: {num_devices} devices do not divide by the fixed axes ({fixed})"
        sizes[free[0]] = num_devices // fixed
    if math.prod(sizes.values()) != num_devices:
        return (
            f"mesh {sizes} needs {math.prod(sizes.values())} devices, {num_devices} present; "
            "set one of mesh.data/fsdp/tensor to -1"
        )
    return sizes


def check_config(c: Any, num_devices: int, backend: str | None = None) -> None:
    """Raises ConfigError listing every invalid value of the run config `c`.

    `backend` (jax.default_backend()) enables the checks that depend on the hardware.
    """
    errors: list[str] = []

    def need(ok: bool, key: str, msg: str) -> None:
        if not ok:
            errors.append(f"--config.{key}: {msg}")

    need(
        isinstance(c.num_steps, int) and c.num_steps >= 0,
        "num_steps",
        f"{c.num_steps!r} must be an integer >= 0",
    )
    need(bool(str(c.output_dir).strip()), "output_dir", "must name a directory (the run directory)")
    try:
        paths.run_path(str(c.output_dir))
    except ValueError as e:
        need(False, "output_dir", str(e))
    name = str(c.model_name)
    if name and not paths.is_url(name):  # a gs:// URL is checked when it is staged
        p = Path(name).expanduser()
        local = p.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1
        if local:
            need(
                p.is_dir() and (p / "config.json").exists(),
                "model_name",
                f"{name!r} is not a Hugging Face model directory (no config.json there); pass a "
                "directory with config.json + *.safetensors, a hub name like 'Qwen/Qwen2.5-Coder-7B', "
                "or '' for the tiny default",
            )
    need(
        c.model.tiny_family in FAMILIES,
        "model.tiny_family",
        f"{c.model.tiny_family!r} is not one of {sorted(FAMILIES)}",
    )
    for key in ("param_dtype", "dtype"):
        need(
            c.model[key] in SUPPORTED_DTYPES,
            f"model.{key}",
            f"{c.model[key]!r} is not one of {SUPPORTED_DTYPES}",
        )
    attention = c.model.get("attention", "einsum")
    need(
        attention in ATTENTION_CHOICES,
        "model.attention",
        f"{attention!r} is not one of {ATTENTION_CHOICES}",
    )
    if attention == "auto" and backend is not None:  # what the run will use (model/config.py)
        attention = resolve_attention(attention, backend, c.model.dtype)
    if attention == "splash" and backend == "gpu":
        need(
            False,
            "model.attention",
            "splash is the TPU kernel (on a GPU it would run in interpret mode, far too slowly); "
            "use --config.model.attention=auto (cudnn in bfloat16) or xla",
        )
    if attention == "cudnn":
        need(
            c.model.dtype in ("bfloat16", "float16"),
            "model.attention",
            "cudnn flash attention computes in bfloat16/float16: also pass "
            "--config.model.dtype=bfloat16 (or use attention=xla)",
        )
        if backend is not None and backend != "gpu":
            need(
                False,
                "model.attention",
                f"cudnn needs a CUDA GPU, this run's backend is {backend!r}; use "
                "--config.model.attention=einsum (or xla)",
            )

    if backend is not None:
        _check_hardware(c, num_devices, backend, need)

    sizes = _mesh_sizes(c, num_devices)
    if isinstance(sizes, str):
        errors.append(f"--config.{sizes}")
        batch_div = 1
    else:
        batch_div = sizes["data"] * sizes["fsdp"]

    s = c.sampling
    need(s.temperature >= 0, "sampling.temperature", "must be >= 0 (0 = greedy)")
    need(0 < s.top_p <= 1, "sampling.top_p", "must be in (0, 1]")
    need(s.top_k >= 0, "sampling.top_k", "must be >= 0 (0 = off)")
    need(s.max_prompt_len > 0, "sampling.max_prompt_len", "must be > 0")
    need(s.max_new_tokens > 0, "sampling.max_new_tokens", "must be > 0")
    need(
        s.batch_size > 0 and s.batch_size % batch_div == 0,
        "sampling.batch_size",
        f"{s.batch_size} must be a positive multiple of mesh data x fsdp = {batch_div}",
    )

    g = c.get("engine")
    if g is not None:
        slots = g.slots or s.batch_size
        need(
            g.slots >= 0 and slots % batch_div == 0,
            "engine.slots",
            f"{g.slots} must be 0 (= sampling.batch_size) or a positive multiple of mesh data x "
            f"fsdp = {batch_div}",
        )
        need(g.chunk >= 1, "engine.chunk", "must be >= 1 (decode steps per device call)")
        need(
            g.prefill_batch == 0
            or (0 < g.prefill_batch <= slots and g.prefill_batch % batch_div == 0),
            "engine.prefill_batch",
            f"{g.prefill_batch} must be 0 (auto) or a multiple of mesh data x fsdp = {batch_div} "
            f"no larger than the {slots} slots",
        )
        need(
            g.get("min_window", 0) >= 0,
            "engine.min_window",
            f"{g.get('min_window')} must be >= 1 (cache slots), or 0 to read the whole cache",
        )

    e = c.executor
    need(e.workers >= 1, "executor.workers", "must be >= 1")
    need(
        e.get("max_in_flight", 4) >= 1,
        "executor.max_in_flight",
        "must be >= 1 (programs one zygote runs at once)",
    )
    need(e.timeout_s > 0, "executor.timeout_s", "must be > 0 seconds")
    need(e.memory_mb >= 64, "executor.memory_mb", "must be >= 64 (Python itself needs ~20 MB)")

    a = c.azr
    bad = [t for t in a.task_types if t not in TASK_TYPES]
    need(
        bool(a.task_types) and not bad,
        "azr.task_types",
        f"{tuple(a.task_types)!r}: use a non-empty subset of {TASK_TYPES}",
    )
    need(a.batch_size >= 1, "azr.batch_size", "must be >= 1")
    need(a.n_rollouts >= 1, "azr.n_rollouts", "must be >= 1")
    need(a.num_references >= 0, "azr.num_references", "must be >= 0")
    need(
        a.num_inputs >= 2 and a.num_inputs % 2 == 0,
        "azr.num_inputs",
        "must be an even number >= 2 (half shown, half hidden)",
    )
    need(a.buffer_capacity >= 1, "azr.buffer_capacity", "must be >= 1")
    need(a.seed_buffer_size >= 0, "azr.seed_buffer_size", "must be >= 0")
    need(
        -1 <= a.extreme_reward <= 1,
        "azr.extreme_reward",
        "must be in [-1, 1] (paper 0, authors' code -0.5)",
    )

    r = c.rl
    need(r.learning_rate >= 0, "rl.learning_rate", "must be >= 0")
    need(r.schedule in SCHEDULES, "rl.schedule", f"{r.schedule!r} is not one of {SCHEDULES}")
    need(
        r.aggregation in AGGREGATIONS,
        "rl.aggregation",
        f"{r.aggregation!r} is not one of {AGGREGATIONS}",
    )
    need(r.clip_eps > 0, "rl.clip_eps", "must be > 0")
    need(r.clip_norm > 0, "rl.clip_norm", "must be > 0")
    need(r.kl_coef >= 0 and r.entropy_coef >= 0, "rl.kl_coef / rl.entropy_coef", "must be >= 0")
    rows = 2 * len(a.task_types) * a.batch_size
    need(
        rows % batch_div == 0,
        "azr.batch_size",
        f"the update batch of 2 roles x {len(a.task_types)} task types x {a.batch_size} = {rows} rows "
        f"must divide over mesh data x fsdp = {batch_div}; change azr.batch_size or the mesh",
    )
    need(
        r.get("max_skipped_steps", 3) >= 1,
        "rl.max_skipped_steps",
        "must be >= 1 (non-finite updates in a row before the run stops)",
    )
    mb = r.micro_batch_size
    need(
        mb == 0 or (mb > 0 and rows % mb == 0 and mb % batch_div == 0),
        "rl.micro_batch_size",
        f"{mb} must be 0 (whole batch) or divide the {rows}-row update batch and be a multiple of {batch_div}",
    )

    weights = c.sampling.get("weights", "auto")
    need(
        weights in ("auto", "copy", "shards"),
        "sampling.weights",
        f"{weights!r} must be auto, copy (whole weights per tensor shard) or shards (fsdp shards)",
    )
    acc = r.get("grad_accum_dtype", "float32")
    need(
        acc in ("float32", "bfloat16"),
        "rl.grad_accum_dtype",
        f"{acc!r} must be float32 (default) or bfloat16 (half the gradient accumulator)",
    )
    master = r.get("master_weights", "none")
    need(
        master in MASTER_MODES,
        "rl.master_weights",
        f"{master!r} must be float32 (a float32 master of bfloat16 weights), compensated "
        "(Kahan summation, half the memory) or none",
    )
    if master == "none" and c.model.param_dtype != "float32":
        log.warning(
            "--config.rl.master_weights=none with %s weights: AdamW's updates below half a "
            "weight's spacing round away (an lr of 1e-6 barely trains)",
            c.model.param_dtype,
        )
    chunk = c.model.get("mlp_chunk", 0)
    need(
        isinstance(chunk, int) and chunk >= 0,
        "model.mlp_chunk",
        f"{chunk!r} must be 0 (the MLP on whole rows) or a positive number of positions per chunk",
    )

    packing = r.get("packing", False)
    need(
        isinstance(packing, bool),
        "rl.packing",
        f"{packing!r} must be True (pack several episodes per update row) or False (one per row)",
    )

    k = c.checkpoint
    need(k.interval_steps >= 1, "checkpoint.interval_steps", "must be >= 1")
    need(k.max_to_keep >= 1, "checkpoint.max_to_keep", "must be >= 1")
    lg = c.get("logging")
    if lg is not None:
        for key in ("samples_per_group", "samples_keep_steps", "wandb_samples_every"):
            need(lg[key] >= 0, f"logging.{key}", "must be >= 0 (0 = off / all)")
        need(
            lg.samples_max_file_mb >= 0, "logging.samples_max_file_mb", "must be >= 0 (0 = no cap)"
        )
        if lg.wandb:
            need(bool(lg.wandb_project), "logging.wandb_project", "must name a W&B project")
            try:
                import wandb  # noqa: F401
            except ImportError:
                need(False, "logging.wandb", "needs the wandb package: pip install wandb")
    v = c.eval
    need(v.every_steps >= 0, "eval.every_steps", "must be >= 0 (0 = never)")
    if v.cruxeval_path:  # "" = none (evaluation during training is then off, or the suite's)
        need(
            paths.run_path(v.cruxeval_path).exists(),
            "eval.cruxeval_path",
            f"{v.cruxeval_path!r} does not exist; pass a CRUXEval-format JSONL file, or '' for none",
        )
    _check_paper_eval(v, need)
    _check_warmstart(c, need)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


INSTALL = {
    "tpu": "on a Cloud TPU VM, `bash scripts/launch_tpu_vm.sh install NAME ZONE` from your machine "
    "or `make tpu-vm-setup` on the VM (Python >= 3.11 and the pinned jax[tpu]: pip install -e "
    "'.[tpu]')",
    "gpu": "on a CUDA 12 host, pip install -e '.[cuda12]'",
}


def _check_hardware(c, num_devices: int, backend: str, need) -> None:
    """A preset sized for a TPU slice or a GPU host runs on that hardware, or says why not."""
    h = c.get("hardware")
    if h is None or not (h.platform or h.devices):
        return
    need(
        h.platform in ("", "tpu", "gpu"),
        "hardware.platform",
        f"{h.platform!r} must be tpu, gpu or '' (any)",
    )
    preset = f"the {h.name} preset" if h.name else "this config"
    if h.allow_cpu and backend == "cpu":
        log.warning(
            "%s is sized for %d %s devices and runs on %d CPU devices "
            "(--config.hardware.allow_cpu=True)",
            preset,
            h.devices,
            h.platform.upper() or "accelerator",
            num_devices,
        )
        return
    if h.platform and backend != h.platform:
        need(
            False,
            "hardware.platform",
            f"{preset} needs {h.devices or 'its'} {h.platform.upper()} devices, but jax found "
            f"{num_devices} {backend.upper()} device(s) (jax.default_backend() is {backend!r}: "
            f"jax has no {h.platform.upper()} backend here). Install it: {INSTALL[h.platform]}; "
            "or pass --config.hardware.allow_cpu=True to run this preset on CPU deliberately",
        )
    elif h.devices and num_devices < h.devices:
        need(
            False,
            "hardware.devices",
            f"{preset} is sized for {h.devices} {h.platform.upper()} devices, but this run sees "
            f"{num_devices}: on a multi-host slice start the same command on every worker "
            "(scripts/launch_tpu_vm.sh train ...); or use the preset of the slice you have",
        )


def _check_paper_eval(v, need) -> None:
    """The paper-table keys (issue 15): benchmark names, pass@k, time limits."""
    from azr_jax.evals import benchmarks

    try:
        benchmarks.select(v.suite, v.benchmarks)
    except ValueError as e:
        need(False, "eval.suite / eval.benchmarks", str(e))
    need(v.max_problems >= 0, "eval.max_problems", "must be >= 0 (0 = all)")
    try:
        benchmarks.within_dates([], v.livecodebench_dates)
    except ValueError as e:
        need(False, "eval.livecodebench_dates", str(e))
    need(v.num_samples >= 0, "eval.num_samples", "must be >= 0 (0 = greedy only)")
    need(
        v.greedy or v.num_samples > 0,
        "eval.greedy",
        "is False and eval.num_samples is 0: nothing would be generated",
    )
    if v.num_samples > 0:
        need(v.temperature > 0, "eval.temperature", "must be > 0 for sampled pass@k")
        need(0 < v.top_p <= 1, "eval.top_p", "must be in (0, 1]")
    try:
        ks = [int(k) for k in str(v.pass_k).split(",") if k.strip()]
    except ValueError:
        ks = [0]
    need(
        bool(ks) and all(k >= 1 for k in ks),
        "eval.pass_k",
        f"{v.pass_k!r}: comma-separated integers >= 1, e.g. '1,5,10'",
    )
    need(v.test_timeout_s > 0, "eval.test_timeout_s", "must be > 0 seconds")
    need(v.math_timeout_s >= 1, "eval.math_timeout_s", "must be >= 1 second (an integer)")
    need(v.reference_timeout_s > 0, "eval.reference_timeout_s", "must be > 0 seconds")
    need(
        0 < v.evalplus_min_time_limit_s <= max(v.test_timeout_s, v.reference_timeout_s),
        "eval.evalplus_min_time_limit_s",
        "must be > 0 and <= eval.reference_timeout_s (EvalPlus uses 1 s)",
    )
    need(
        v.evalplus_time_limit_factor >= 1,
        "eval.evalplus_time_limit_factor",
        "must be >= 1 (EvalPlus uses 4)",
    )


def _check_warmstart(c, need) -> None:
    """The warm start's keys (issue 13) and the diversity-aware proposer reward."""
    base = c.model.get("base", "random")
    need(
        base in ("warmstart", "random"),
        "model.base",
        f"{base!r} is not one of ('warmstart', 'random'); it picks the model built when "
        "model_name is ''",
    )
    if "warmstart" in c:
        w = c.warmstart
        need(w.n_programs >= 1, "warmstart.n_programs", "must be >= 1")
        need(w.steps >= 1, "warmstart.steps", "must be >= 1")
        need(bool(str(w.cache_dir).strip()), "warmstart.cache_dir", "must name a directory")
    a = c.azr
    pen = a.get("diversity_penalty", 0.0)
    thr = a.get("diversity_threshold", 0.9)
    need(pen >= 0, "azr.diversity_penalty", f"{pen} must be >= 0 (0 = the paper's reward)")
    need(0 < thr <= 1, "azr.diversity_threshold", f"{thr} must be in (0, 1]")
    dec = a.get("novelty_decay", 0.0)
    need(dec >= 0, "azr.novelty_decay", f"{dec} must be >= 0 (0 = off, the paper's reward)")
    npen = a.get("novelty_penalty", 0.0)
    need(npen >= 0, "azr.novelty_penalty", f"{npen} must be >= 0")
    need(
        npen == 0 or dec > 0,
        "azr.novelty_penalty",
        f"{npen} has no effect with azr.novelty_decay=0; set novelty_decay > 0 (e.g. 1.0) too",
    )
