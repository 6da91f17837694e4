"""The AZR trainer: set up a run from its config, resume it, and loop over self-play steps.

`train_and_evaluate(config)` is what `scripts/train.py` calls. The run directory
(`config.output_dir`) is the run: config snapshot, metrics.jsonl, TensorBoard events, samples,
plots and Orbax checkpoints. Rerunning the same command resumes from the latest complete
checkpoint and continues exactly as an uninterrupted run would (sampling keys are derived from
(seed, step), buffers carry their RNG state, the executor's hash seeds come from the seed).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import numpy as np

from azr_jax.executor.pool import ExecutorPool
from azr_jax.executor.program import DEFAULT_BANNED
from azr_jax.model import hf_io
from azr_jax.model import transformer as model_lib
from azr_jax.parallel import distributed as dist
from azr_jax.parallel import sharding as shd
from azr_jax.run.checkpointing import Checkpointer
from azr_jax.run.compile_cache import CompileTimer
from azr_jax.run.preemption import PreemptionWatch
from azr_jax.run.records import Progress, RunLogger, write_config
from azr_jax.run.sample_limits import SampleLimits
from azr_jax.sampling.engine import MIN_WINDOW, Engine
from azr_jax.sampling.generate import Generator
from azr_jax.sampling.sampler import Sampler
from azr_jax.sampling.settings import settings_from_model_dir
from azr_jax.selfplay import step as selfplay
from azr_jax.selfplay import streaming
from azr_jax.selfplay.buffers import TaskBuffer, initial_buffers
from azr_jax.selfplay.diversity import ProgramCensus
from azr_jax.selfplay.tasks import GROUPS, TaskType, group_name
from azr_jax.storage import paths, staging
from azr_jax.update import packing
from azr_jax.update.guard import describe as describe_nonfinite
from azr_jax.update.pg_loss import PGBatch, PGLossConfig
from azr_jax.update.train_step import (
    TrainHparams,
    TrainState,
    init_train_state,
    jit_init_state,
    jit_train_step,
    state_shardings,
)

log = logging.getLogger(__name__)
PHASES = {"propose": 0, "solve": 1, "estimate": 2, "eval": 3}


# ----------------------------------------------------------------------------- the policy
class JaxPolicy(selfplay.Policy):
    """Text in, episodes out: chunks prompts into fixed-size sampler calls with (seed, step) keys."""

    def __init__(self, generator: Generator, settings, batch_size: int, seed: int):
        self.generator, self.settings, self.batch_size, self.seed = (
            generator,
            settings,
            batch_size,
            seed,
        )
        self.params: dict | None = None
        self.step = 0

    def phase_key(self, phase: str) -> jax.Array:
        return _phase_key(self.seed, self.step, PHASES[phase])

    def queue(self) -> EngineQueue:
        """One engine queue for a step's requests (selfplay/streaming.py)."""
        return EngineQueue(self)

    def generate(self, texts, n, phase):
        if self.generator.engine is not None:  # one queue for the phase, keyed as streaming is
            queue, done = self.queue(), {}
            for i, text in enumerate(texts):
                queue.submit(text, n, phase, i)
            while queue.busy():
                done.update((i, rows) for (_, i), rows in queue.step())
            return [done[i] for i in range(len(texts))]
        out = []
        base = self.phase_key(phase)
        settings = self.settings.replace(n=n)
        for c, start in enumerate(range(0, len(texts), self.batch_size)):
            chunk = list(texts[start : start + self.batch_size])
            g = self.generator.generate(self.params, chunk, jax.random.fold_in(base, c), settings)
            for b in range(len(chunk)):
                p = g.prompt_tokens[b, g.prompt_tokens.shape[1] - g.prompt_lengths[b] :]
                rows = []
                for j in range(n):
                    r = b * n + j
                    k = int(g.lengths[r])
                    rows.append((p, g.tokens[r, :k], g.logprobs[r, :k], g.texts[r]))
                out.append(rows)
        return out


@jax.jit
def _phase_key(seed, step, phase) -> jax.Array:
    """fold_in(fold_in(key(seed), step), phase) in one device call (eager: a few ms)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), step), phase)


@jax.jit
def _request_key(seed, step, phase, index) -> jax.Array:
    """The key of request `index` of a phase: fold_in(phase key, index), in one device call."""
    return jax.random.fold_in(_phase_key(seed, step, phase), index)


class EngineQueue(streaming.Queue):
    """The engine's session as the streaming step's queue: sample j of request (phase, i) has
    the key fold_in(fold_in(phase_key(phase), i), j), whenever it is decoded."""

    def __init__(self, policy: JaxPolicy):
        g = policy.generator
        self.policy, self.generator, self.settings = policy, g, policy.settings
        table = g.stop_table(policy.settings.stop_strings)
        self.session = g.engine.session(policy.params, policy.settings, table)
        self.rows: dict[tuple[str, int], list] = {}

    def submit(self, text, n, phase, index, priority=0):
        rng = _request_key(self.policy.seed, self.policy.step, PHASES[phase], index)
        tags = [(phase, index, j) for j in range(n)]
        self.rows[(phase, index)] = [None] * n
        self.session.submit(self.generator.requests([text], rng, n, tags), priority)

    def busy(self):
        return self.session.busy()

    def step(self):
        out = []
        for c in self.session.step():
            phase, i, j = c.tag
            text = self.generator.detokenize(c.tokens, self.settings)
            rows = self.rows[(phase, i)]
            rows[j] = (c.prompt_ids, c.tokens, c.logprobs, text)
            if all(r is not None for r in rows):
                out.append(((phase, i), self.rows.pop((phase, i))))
        return out


def rollouts(run: Run, step: int, host: ThreadPoolExecutor, share) -> selfplay.StepResult:
    """The self-play part of a step: on one streaming queue (the engine, one process), or phase
    by phase (`engine.streaming=False`, the static sampler, or several processes: their host
    checks split over the hosts, which the streaming step does not)."""
    g = run.config.get("engine")
    if (
        g is not None
        and g.streaming
        and run.policy.generator.engine is not None
        and jax.process_count() == 1
    ):
        return streaming.run_step_streaming(
            run.settings, run.policy, run.pool, run.buffers, step, host
        )
    return selfplay.run_step(run.settings, run.policy, run.pool, run.buffers, step, host, share)


# ----------------------------------------------------------------------------- the update batch
def _bucket(n: int, smallest: int = 16) -> int:
    size = smallest
    while size < n:
        size *= 2
    return size


def make_batch(
    episodes: list[selfplay.Episode], adv: np.ndarray, pad_id: int
) -> tuple[PGBatch, int]:
    """Rows of [left-padded prompt | right-padded response], lengths bucketed to powers of two.

    Returns the batch (numpy leaves) and the number of response tokens.
    """
    p = _bucket(max(len(e.prompt_ids) for e in episodes))
    r = _bucket(max(max(len(e.response_ids) for e in episodes), 1))
    n = len(episodes)
    tokens = np.full((n, p + r), pad_id, np.int32)
    attn = np.zeros((n, p + r), bool)
    loss = np.zeros((n, p + r), bool)
    old = np.zeros((n, p + r), np.float32)
    for i, e in enumerate(episodes):
        lp, lr = len(e.prompt_ids), len(e.response_ids)
        tokens[i, p - lp : p] = e.prompt_ids
        tokens[i, p : p + lr] = e.response_ids
        attn[i, p - lp : p + lr] = True
        loss[i, p : p + lr] = True
        old[i, p : p + lr] = e.logprobs
    batch = PGBatch(
        tokens=tokens,
        attn_mask=attn,
        loss_mask=loss,
        advantages=adv.astype(np.float32),
        old_logprobs=old,
        group_ids=np.array([e.group for e in episodes], np.int32),
        rewards=np.array([e.reward for e in episodes], np.float32),
        response_start=p,
    )
    return batch, int(loss.sum())


def make_packed_batch(
    episodes: list[selfplay.Episode], adv: np.ndarray, pad_id: int, cap: int, row_multiple: int
) -> tuple[PGBatch, int]:
    """`rl.packing`: the episodes packed several to a row (`azr_jax.update.packing`), rows as
    long as `make_batch`'s (capped at `cap`, the prompt + response cap), their number a multiple
    of `row_multiple` (micro-batches x data x fsdp). Returns the batch and its response tokens."""
    prompts = [e.prompt_ids for e in episodes]
    responses = [e.response_ids for e in episodes]
    length = packing.packed_length([len(p) for p in prompts], [len(r) for r in responses], cap=cap)
    batch = packing.pack_episodes(
        prompts,
        responses,
        [e.logprobs for e in episodes],
        adv.astype(np.float32),
        np.array([e.group for e in episodes], np.int32),
        np.array([e.reward for e in episodes], np.float32),
        pad_id=pad_id,
        row_length=length,
        row_multiple=row_multiple,
    )
    return batch, int(batch.loss_mask.sum())


# ----------------------------------------------------------------------------- setup
@dataclasses.dataclass
class Run:
    """Everything a step needs, built once by `setup`."""

    config: Any
    workdir: paths.epath.Path  # local or gs://
    model_dir: Path  # local (a gs:// model is staged)
    mesh: jax.sharding.Mesh
    cfg: Any
    state: TrainState
    step_fn: Any
    policy: JaxPolicy
    pool: ExecutorPool
    buffers: dict[TaskType, TaskBuffer]
    settings: selfplay.SelfPlaySettings
    checkpointer: Checkpointer
    abstract_state: Any
    start_step: int
    pad_id: int
    census: ProgramCensus = dataclasses.field(default_factory=ProgramCensus)


def base_model_dir(config) -> Path:
    """The model to start from: `model_name`, or the tiny default built on first use (the warm
    start, copied from its cache, or random weights with `model.base=random`). Always a local
    directory: a gs:// model (or a run directory's base_model/ in a bucket) is staged once per
    host (storage/staging.py)."""
    if config.model_name:
        return hf_io.resolve_model_dir(config.model_name)
    import tempfile

    from azr_jax.model.tiny_checkpoint import make_tiny_checkpoint

    out = paths.run_path(config.output_dir) / "base_model"
    if dist.is_writer():
        if config.model.get("base", "random") == "warmstart":
            copy_warmstart(config, out)
        elif not paths.is_url(out):
            make_tiny_checkpoint(config.model.tiny_family, Path(out), seed=config.seed)
        elif not (out / "config.json").exists():  # built here, then uploaded (config.json last)
            with tempfile.TemporaryDirectory() as tmp:
                make_tiny_checkpoint(config.model.tiny_family, Path(tmp), seed=config.seed)
                paths.upload_tree(tmp, out)
    dist.sync("tiny_model")
    return staging.stage(out)


def warmstart_recipe(config):
    """The warm start's recipe for this run: the config's `warmstart.*` and the prompt settings
    the corpus must match (induction inputs, references, banned modules)."""
    from azr_jax.warmstart.train import Recipe

    w = config.warmstart
    return Recipe(
        seed=w.seed,
        n_programs=w.n_programs,
        steps=w.steps,
        num_inputs=config.azr.num_inputs,
        max_references=min(2, config.azr.num_references),
        banned_modules=tuple(config.executor.banned_modules) or DEFAULT_BANNED,
    )


def copy_warmstart(config, out) -> Path:
    """Builds (or finds in `warmstart.cache_dir`) the warm start and copies it to `out` (a local
    path or a gs:// URL)."""
    import shutil

    from azr_jax.warmstart.train import build_warmstart

    if (out / "config.json").exists():
        return out
    cached = build_warmstart(warmstart_recipe(config), config.warmstart.cache_dir)
    if paths.is_url(out):
        return paths.upload_tree(cached, out)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(cached, tmp)
    tmp.rename(out)
    return out


def run_time_model(config) -> dict:
    """The ModelConfig fields that are run-time choices of the config (not in config.json)."""
    m = config.model
    return {
        "mlp_chunk": m.get("mlp_chunk", 0),
        "remat_offload": bool(m.get("remat_offload", False)),
    }


def hparams_from(config) -> TrainHparams:
    r = config.rl
    rows = 2 * len(config.azr.task_types) * config.azr.batch_size
    return TrainHparams(
        loss=PGLossConfig(
            clip_eps=r.clip_eps,
            entropy_coef=r.entropy_coef,
            kl_coef=r.kl_coef,
            agg_mode=r.aggregation,
            temperature=config.sampling.temperature or 1.0,
        ),
        lr=r.learning_rate,
        schedule=r.schedule,
        warmup_steps=r.warmup_steps,
        total_steps=config.num_steps,
        weight_decay=r.weight_decay,
        clip_norm=r.clip_norm,
        micro_batches=rows // r.micro_batch_size if r.micro_batch_size else 1,
        remat=config.model.remat,
        grad_accum_dtype=r.get("grad_accum_dtype", "float32"),
        # a master (or compensation) only where the weights are stored in less than float32
        master_weights=r.get("master_weights", "none")
        if config.model.param_dtype != "float32"
        else "none",
    )


def abstract_train_state(cfg, hp: TrainHparams, mesh) -> TrainState:
    """ShapeDtypeStructs with shardings of the train state: what a checkpoint restores into."""
    return jax.tree_util.tree_map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        jax.eval_shape(lambda p: init_train_state(p, hp), model_lib.abstract_params(cfg)),
        state_shardings(cfg, hp, mesh),
    )


def make_generator(cfg, mesh, model_dir: Path, config) -> tuple[Generator, Any]:
    """The text sampler of a run and its rollout settings (the checkpoint's special tokens, the
    config's temperature / top-p / top-k, answers stopping at `</answer>`)."""
    s = config.sampling
    settings = settings_from_model_dir(
        model_dir,
        max_new_tokens=s.max_new_tokens,
        greedy=s.temperature == 0,
        temperature=s.temperature or 1.0,
        top_p=s.top_p,
        top_k=s.top_k,
        stop_strings=(selfplay.ANSWER_STOP,),
    )
    longest = max(s.max_new_tokens, config.eval.max_new_tokens)  # rollouts or evaluation
    rules = sampler_rules(config)
    sampler = Sampler(cfg, mesh, rules=rules, max_cache_length=_bucket(s.max_prompt_len) + longest)
    engine = make_engine(cfg, mesh, sampler.max_cache_length, config)
    return Generator(sampler, hf_io.load_tokenizer(model_dir), engine=engine), settings


def sampler_rules(config):
    """The sampler's parameter rules from `sampling.weights` (None: `sharding.sampling_rules`
    decides from the chip's memory)."""
    weights = config.sampling.get("weights", "auto")
    return {"auto": None, "copy": shd.SAMPLE_RULES, "shards": shd.TRAIN_RULES}[weights]


def make_engine(cfg, mesh, max_cache_length: int, config) -> Engine | None:
    """The slot engine of a run (`config.engine`), or None for the static sampler."""
    g = config.get("engine")
    if g is None or not g.enabled:
        return None
    slots = g.slots or config.sampling.batch_size
    rows = shd.batch_shards(mesh)
    prefill = g.prefill_batch or rows  # one row per device: a refill prefills no padding
    return Engine(
        cfg,
        mesh,
        slots=slots,
        chunk=g.chunk,
        max_cache_length=max_cache_length,
        prefill_batch=prefill,
        rules=sampler_rules(config),
        min_window=g.get("min_window", MIN_WINDOW) or None,
    )


def log_hardware(config, mesh) -> None:
    """One line: the host preset the config is sized for, and the devices the run has."""
    h = config.get("hardware")
    if h is None or not h.name or not dist.is_writer():
        return
    found = f"{mesh.devices.size} {jax.devices()[0].platform.upper()} devices"
    wanted = f"{h.devices} {h.platform.upper()} devices"
    note = " (hardware.allow_cpu: a deliberate CPU run)" if h.allow_cpu else ""
    log.info("host preset %s: sized for %s, running on %s%s", h.name, wanted, found, note)


def setup(config) -> Run:
    workdir = paths.run_path(config.output_dir)
    if dist.is_writer():
        write_config(workdir, json.loads(config.to_json_best_effort()))
    mesh = shd.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
    log_hardware(config, mesh)
    model_dir = base_model_dir(config)
    cfg = hf_io.load_config(
        model_dir,
        param_dtype=config.model.param_dtype,
        dtype=config.model.dtype,
        attention=config.model.attention,
    ).replace(**run_time_model(config))
    shd.check_heads(mesh, cfg.num_heads, cfg.num_kv_heads)
    hp = hparams_from(config)
    step_fn = jit_train_step(cfg, hp, mesh, guard=True)  # non-finite updates are not applied
    abstract_state = abstract_train_state(cfg, hp, mesh)
    checkpointer = Checkpointer(
        workdir / "checkpoints",
        save_interval_steps=config.checkpoint.interval_steps,
        max_to_keep=config.checkpoint.max_to_keep,
        async_save=config.checkpoint.async_save,
    )
    latest = checkpointer.latest_step()
    buffers = initial_buffers(config.azr.buffer_capacity, config.seed)
    census = ProgramCensus()
    if latest is None:
        params = hf_io.load_params(model_dir, cfg, mesh)
        state = jit_init_state(cfg, hp, mesh)(params)
        start = 0
    else:
        state, host = checkpointer.restore(latest, abstract_state)
        buffers = {TaskType(k): TaskBuffer.from_state(v) for k, v in host["buffers"].items()}
        census = ProgramCensus.from_state(host.get("census"))
        start = latest
        log.info("resumed %s from step %d", workdir, latest)
    generator, sampling = make_generator(cfg, mesh, model_dir, config)
    policy = JaxPolicy(generator, sampling, config.sampling.batch_size, config.seed)
    e = config.executor
    banned = tuple(e.banned_modules) or DEFAULT_BANNED
    pool = ExecutorPool(
        workers=max(2, e.workers),
        timeout_s=e.timeout_s,
        memory_mb=e.memory_mb,
        banned_modules=banned,
        hash_seeds=[1000 + 7919 * i + config.seed for i in range(max(2, e.workers))],
        max_in_flight=e.get("max_in_flight", 4),
    )
    a = config.azr
    settings = selfplay.SelfPlaySettings(
        task_types=tuple(TaskType(t) for t in a.task_types),
        batch_size=a.batch_size,
        n_rollouts=a.n_rollouts,
        num_references=a.num_references,
        num_inputs=a.num_inputs,
        max_recent=a.max_recent,
        extreme_reward=a.extreme_reward,
        token_weighted=a.token_weighted_advantages,
        banned_modules=banned,
        diversity_penalty=a.get("diversity_penalty", 0.0),
        diversity_threshold=a.get("diversity_threshold", 0.9),
        novelty_decay=a.get("novelty_decay", 0.0),
        novelty_penalty=a.get("novelty_penalty", 0.0),
    )
    return Run(
        config,
        workdir,
        model_dir,
        mesh,
        cfg,
        state,
        step_fn,
        policy,
        pool,
        buffers,
        settings,
        checkpointer,
        abstract_state,
        start,
        sampling.pad_id,
        census,
    )


# ----------------------------------------------------------------------------- the loop
def update(run: Run, episodes, adv) -> dict[str, float]:
    c = run.config
    if c.rl.get("packing", False):
        s = c.sampling
        multiple = hparams_from(c).micro_batches * shd.batch_shards(run.mesh)
        cap = _bucket(s.max_prompt_len) + s.max_new_tokens
        batch, n_tokens = make_packed_batch(episodes, adv, run.pad_id, cap, multiple)
    else:
        batch, n_tokens = make_batch(episodes, adv, run.pad_id)
    n_rows = batch.tokens.shape[0]
    # Every host holds the whole (identical) batch; each feeds only its own rows.
    rows = dist.process_rows(run.mesh, n_rows)
    local = jax.tree_util.tree_map(lambda x: x[rows], batch)
    batch = dist.global_batch(local, run.mesh, n_rows)
    rng = jax.random.fold_in(jax.random.key(run.config.seed + 1), int(run.state.step))
    run.state, m = run.step_fn(run.state, batch, rng)
    m = dist.fetch(m)
    out = {}
    for k, v in m.items():
        v = np.asarray(v)
        if v.ndim == 0:
            out[f"policy/{k}"] = float(v)
        elif k.startswith("group_") and v.shape == (len(GROUPS),):
            for gid in range(len(GROUPS)):
                out[f"{group_name(gid)}/{k[len('group_') :]}_update"] = float(v[gid])
    out["policy/response_tokens"] = n_tokens
    out["policy/update_rows"] = n_rows
    return out


def train_step_once(run: Run, step: int, host: ThreadPoolExecutor) -> dict[str, Any]:
    """One full AZR step: self-play phases, TRR++ advantages, the update, buffer growth."""
    t0 = time.perf_counter()
    run.policy.params, run.policy.step = run.state.params, step
    share = selfplay.HostShare(mine=dist.my_share, gather=dist.gather_shares)
    result = rollouts(run, step, host, share)
    adv = selfplay.advantages(run.settings, result.episodes)
    t1 = time.perf_counter()
    metrics = update(run, result.episodes, adv)
    metrics["time/update_s"] = time.perf_counter() - t1
    for t, tasks in result.new_tasks.items():
        run.buffers[t].extend(tasks, step)
        metrics[f"buffer/{t.value}"] = len(run.buffers[t].tasks)
    metrics.update(result.metrics)
    metrics.update(census_metrics(run.census, result.new_tasks))
    metrics["time/step_s"] = time.perf_counter() - t0
    metrics["time/device_wait_frac"] = metrics["time/device_wait_s"] / metrics["time/step_s"]
    return {"metrics": metrics, "episodes": result.episodes}


def census_metrics(census: ProgramCensus, new_tasks: dict) -> dict[str, float]:
    """Counts the step's valid programs; distinct / all valid proposals so far, per type and all
    (deduction and abduction: induction programs come from the buffers)."""
    types = [t for t in new_tasks if t is not TaskType.INDUCTION]
    for t in types:
        census.add(t.value, [task.program for task in new_tasks[t]])
    out = {f"{t.value}/propose/distinct_programs": census.distinct_fraction(t.value) for t in types}
    out["diversity/distinct_programs"] = census.distinct_fraction()
    return out


def _samples(episodes) -> list[dict]:
    return [
        {
            "group": group_name(e.group),
            "prompt": e.prompt,
            "response": e.response,
            "reward": e.reward,
            "verdict": e.verdict,
        }
        for e in episodes
    ]


def host_state(run: Run, step: int) -> dict:
    return {
        "step": step,
        "buffers": {t.value: b.to_state() for t, b in run.buffers.items()},
        "census": run.census.to_state(),
    }


PLOTS = {
    "reward": [f"{group_name(g)}/reward" for g in range(len(GROUPS))],
    "accuracy": [f"{group_name(g)}/accuracy" for g in range(len(GROUPS)) if g % 2 == 1],
    "valid_rate": [f"{group_name(g)}/valid_rate" for g in range(len(GROUPS)) if g % 2 == 0],
}


def evaluates_during_training(config) -> bool:
    """Whether `eval.every_steps` has something to evaluate: a CRUXEval file, HumanEval, or the
    paper's suite. Logs once why not when it is set without one."""
    from azr_jax.run import paper_eval

    if not config.eval.every_steps:
        return False
    if has_cruxeval_or_humaneval(config) or paper_eval.selected(config):
        return True
    if dist.is_writer():
        log.warning(
            "eval.every_steps=%d but nothing to evaluate: evaluation during training is off. "
            "Pass --config.eval.cruxeval_path=FILE (CRUXEval format), --config.eval.humaneval=True "
            "or --config.eval.suite=paper --config.eval.data_dir=DIR to turn it on",
            config.eval.every_steps,
        )
    return False


def has_cruxeval_or_humaneval(config) -> bool:
    return bool(config.eval.cruxeval_path) or bool(config.eval.humaneval)


def periodic_eval(run: Run, config) -> dict[str, float]:
    """Greedy CRUXEval-O/I (and HumanEval if asked) with the current policy, as `eval/*` metrics."""
    from azr_jax.evals import evaluation

    t = time.perf_counter()
    out: dict[str, float] = {}
    if has_cruxeval_or_humaneval(config):
        pool = evaluation.evaluation_pool(workers=max(2, config.executor.workers))
        try:
            summary, _ = run_evaluation(
                run.policy.generator, run.state.params, run.policy.settings, config, pool
            )
        finally:
            pool.close()
        out = {f"eval/{k}": float(v) for k, v in summary.items()}
    out.update(periodic_paper_eval(run, config))
    out["time/eval_s"] = time.perf_counter() - t
    return out


def periodic_paper_eval(run: Run, config) -> dict[str, float]:
    """The paper's table (issue 15) as `eval/*` metrics, when eval.suite/benchmarks asks for it."""
    from azr_jax.run import paper_eval

    if not paper_eval.selected(config):
        return {}
    summary, _ = paper_eval.evaluate_paper(
        config, run.policy.generator, run.state.params, run.policy.settings
    )
    return {f"eval/{k}": float(v) for k, v in summary.items() if isinstance(v, (int, float))}


def train_and_evaluate(config, resume_command: str = "") -> dict[str, Any]:
    """Runs (or resumes) `config.num_steps` AZR steps in `config.output_dir`; returns the last metrics.

    SIGTERM (or JAX's preemption notice, run/preemption.py) stops it after the step in flight:
    that step is saved synchronously, the pools are closed, and one line names the step saved
    and `resume_command` (the command that resumes); the returned metrics then carry
    "preempted": True.
    """
    with PreemptionWatch() as watch:
        return _train(config, watch, resume_command)


def _train(config, watch: PreemptionWatch, resume_command: str) -> dict[str, Any]:
    timer = CompileTimer()
    run = setup(config)
    logger = RunLogger(
        run.workdir,
        is_writer=dist.is_writer(),
        resume_step=run.start_step if run.start_step else None,
        sample_limits=sample_limits_from(config),
        mirror=wandb_mirror_from(config, run.workdir) if dist.is_writer() else None,
    )
    progress = Progress(config.num_steps, run.start_step, enabled=dist.is_writer())
    evaluating = evaluates_during_training(config)
    last: dict[str, Any] = {}
    skipped: list[str] = []  # causes of the non-finite updates in a row just before this step
    preempted = None  # the step saved on SIGTERM
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="azr-host") as host:
            for step in range(run.start_step, config.num_steps):
                out = train_step_once(run, step, host)
                done = step + 1
                last = {"step": done, **out["metrics"]}
                if evaluating and done % config.eval.every_steps == 0:
                    last.update(periodic_eval(run, config))
                last.update(timer.take())  # compiling this step did (setup's: in step 1's)
                logger.log(done, last)
                logger.log_samples(done, _samples(out["episodes"]))
                skipped = check_nonfinite(run, done, last, skipped, config.rl.max_skipped_steps)
                saved = run.checkpointer.save(
                    done, run.state, host_state(run, done), force=done == config.num_steps
                )
                if watch.should_stop(done):  # every process, after the same step
                    if not saved:
                        run.checkpointer.save(done, run.state, host_state(run, done), force=True)
                    run.checkpointer.wait()  # committed before anything else happens
                    preempted = done
                    break
                progress.update(
                    done,
                    {
                        k: round(v, 3)
                        for k, v in last.items()
                        if k.endswith("/reward") and isinstance(v, float)
                    },
                )
        logger.plot(PLOTS)
    finally:
        progress.close()
        timer.close()
        try:
            run.checkpointer.wait()
            run.checkpointer.close()
        finally:
            run.pool.close()
            logger.close()
    if preempted is not None:
        if dist.is_writer():
            print(
                f"preempted: saved step {preempted} to {run.checkpointer.directory}; resume with: "
                f"{resume_command or 'the same command'}",
                flush=True,
            )
        last["preempted"] = True
    return last


# ----------------------------------------------------------------------------- run-dir records
def sample_limits_from(config) -> SampleLimits:
    """What samples/ keeps, from `config.logging` (see configs/default.py)."""
    lg = config.logging
    return SampleLimits(
        rows_per_group=lg.samples_per_group,
        max_file_bytes=int(lg.samples_max_file_mb * 2**20),
        keep_steps=lg.samples_keep_steps,
    )


def wandb_mirror_from(config, workdir):
    """A `WandbMirror` if `config.logging.wandb` (process 0 only: the caller checks), else None."""
    lg = config.logging
    if not lg.wandb:
        return None
    from azr_jax.run.wandb_mirror import WandbMirror

    return WandbMirror(
        workdir,
        project=lg.wandb_project,
        entity=lg.wandb_entity,
        name=lg.wandb_run_name,
        config=json.loads(config.to_json_best_effort()),
        samples_every=lg.wandb_samples_every,
    )


# ----------------------------------------------------------------------------- non-finite updates
class NonFiniteUpdateError(RuntimeError):
    """Too many updates in a row were not finite; the message names the step and the checkpoint."""


def check_nonfinite(
    run: Run, step: int, metrics: dict[str, Any], skipped: list[str], max_skipped: int
) -> list[str]:
    """Logs a step whose update the guard rejected; raises after `max_skipped` in a row.

    `skipped`: causes of the rejected updates in a row before this one. Returns the new list
    (empty once an update is applied).
    """
    mask = int(metrics.get("policy/nonfinite", 0))
    if not mask:
        return []
    skipped = [*skipped, describe_nonfinite(mask)]
    log.warning(
        "step %d: update not applied, non-finite %s (%d in a row; the run stops at %d)",
        step,
        skipped[-1],
        len(skipped),
        max_skipped,
    )
    if len(skipped) >= max_skipped:
        run.checkpointer.wait()
        good = run.checkpointer.latest_step()
        where = (
            f"the last good checkpoint is step {good} in {run.checkpointer.directory} "
            "(rerunning the command resumes from it)"
            if good is not None
            else f"no checkpoint was saved yet in {run.checkpointer.directory}"
        )
        raise NonFiniteUpdateError(
            f"step {step}: {len(skipped)} updates in a row were not finite "
            f"({'; '.join(skipped)}) and none was applied; {where}. Lower --config.rl."
            "learning_rate, check the rewards and log-probs in metrics.jsonl, or raise "
            "--config.rl.max_skipped_steps."
        )
    return skipped


# ----------------------------------------------------------------------------- evaluation & export
def greedy_fn(generator: Generator, params, settings, batch_size: int):
    """A `generate_fn` for evaluation: greedy, one response per prompt, in order."""
    greedy = settings.replace(greedy=True, n=1)

    def generate(texts):
        out = []
        size = max(len(texts), 1) if generator.engine is not None else batch_size  # one queue
        for start in range(0, len(texts), size):
            g = generator.generate(
                params, list(texts[start : start + size]), jax.random.key(0), greedy
            )
            out += g.texts
        return out

    return generate


def run_evaluation(generator, params, settings, config, pool) -> tuple[dict, list[dict]]:
    """CRUXEval-O/I (and HumanEval if asked) with the given params, greedy."""
    from azr_jax.evals import evaluation

    path = config.eval.cruxeval_path  # local or gs:// (staged once per host)
    records = evaluation.load_cruxeval(staging.stage(path), config.eval.max_records) if path else []
    settings = settings.replace(max_new_tokens=config.eval.max_new_tokens)
    return evaluation.evaluate(
        greedy_fn(generator, params, settings, config.sampling.batch_size),
        pool,
        cruxeval_records=records,
        humaneval=config.eval.humaneval,
    )
