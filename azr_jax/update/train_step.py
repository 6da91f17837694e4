"""The policy update: optimizer, train state, and the pure step `train_step(state, batch, rng)`.

`train_step` computes the TRR++ loss (`pg_loss`) on log-probs from `logprobs`, accumulates the
gradient over micro-batches (sums with full-batch weights, so any split equals the full batch),
clips it at global norm `clip_norm` and applies AdamW (to a float32 master copy of the weights
with `master_weights`, `update/master_weights.py`). `jit_train_step` jits it once with the
shardings of `azr_jax.parallel.sharding` (parameters and optimizer state FSDP x tensor-parallel, batch
over data x fsdp) and donates the state. A packed batch (`packing.pack_episodes`: several
episodes per row) goes through the same step; its loss, gradient and metrics are per episode.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from azr_jax.model import transformer as model_lib
from azr_jax.model.config import ModelConfig
from azr_jax.parallel import sharding as shd
from azr_jax.update import master_weights
from azr_jax.update.guard import guarded
from azr_jax.update.logprobs import token_logprobs
from azr_jax.update.pg_loss import (
    PGBatch,
    PGLossConfig,
    episode_lengths,
    pg_objective,
    token_weights,
    validate_batch,
)

NUM_GROUPS = 6  # (task type, role) groups, the order of azr_jax.selfplay.tasks.GROUPS
SCHEDULES = ("constant", "cosine", "linear_warmup")


@struct.dataclass
class TrainState:
    params: dict  # the model's parameter tree
    opt_state: Any  # optax state of make_optimizer(...)
    step: jax.Array  # [] int32: updates applied so far


@dataclasses.dataclass(frozen=True)
class TrainHparams:
    """Everything static about the update (hashable: it keys the compiled step)."""

    loss: PGLossConfig = PGLossConfig()  # the objective
    lr: float = 1e-6  # peak learning rate (AZR: 1e-6 constant)
    schedule: str = "constant"  # one of SCHEDULES
    warmup_steps: int = 0  # linear warmup from 0 (cosine, linear_warmup)
    total_steps: int = 0  # cosine: decays to 0 at this step
    weight_decay: float = 0.01  # AdamW decoupled decay, on every parameter (as torch / verl)
    clip_norm: float = 1.0  # global gradient-norm clip
    micro_batches: int = 1  # the batch is split into this many sequential micro-batches
    logprob_chunk: int = 512  # positions unembedded at a time
    # dtype of the gradient summed over micro-batches: float32, or bfloat16 where HBM is short
    # (half the accumulator; sums of up to micro_batches bfloat16 terms, as DeepSpeed's
    # grad_accum_dtype). With one micro-batch nothing is accumulated.
    grad_accum_dtype: str = "float32"
    remat: bool = False  # recompute each block in the backward pass (GPU/TPU: 0.5B at 4 x 2048
    # tokens, 40 -> 3.5 GiB of temporaries on an H200; XLA:CPU schedules the recompute early)
    # How low-precision weights take AdamW's small updates (`master_weights.MODES`): "float32"
    # (a float32 master in the optimizer state, the weights recast from it), "compensated"
    # (Kahan: a compensation in the weights' dtype, half the memory) or "none" (plain sum).
    master_weights: str = "none"

    def lr_schedule(self) -> optax.Schedule:
        return lr_schedule(
            self.lr, self.schedule, warmup=self.warmup_steps, total_steps=self.total_steps
        )

    def optimizer(self) -> optax.GradientTransformation:
        opt = make_optimizer(
            self.lr,
            self.schedule,
            warmup=self.warmup_steps,
            total_steps=self.total_steps,
            weight_decay=self.weight_decay,
            clip_norm=self.clip_norm,
        )
        wrap = master_weights.MODES[self.master_weights]
        return wrap(opt) if wrap else opt


def lr_schedule(
    lr: float, schedule: str = "constant", *, warmup: int = 0, total_steps: int = 0
) -> optax.Schedule:
    """step -> learning rate: 'constant', 'linear_warmup' (0 -> lr over `warmup` steps, then
    constant) or 'cosine' (linear warmup, then cosine decay to 0 at `total_steps`)."""
    if schedule == "constant":
        if warmup:
            raise ValueError("schedule 'constant' takes no warmup; use 'linear_warmup'")
        return optax.constant_schedule(lr)
    if schedule == "linear_warmup":
        w = max(warmup, 1)
        return optax.join_schedules(
            [optax.linear_schedule(0.0, lr, w), optax.constant_schedule(lr)], [w]
        )
    if schedule == "cosine":
        if total_steps <= warmup:
            raise ValueError(
                f"schedule 'cosine' needs total_steps > warmup, got {total_steps} <= {warmup}"
            )
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, total_steps, end_value=0.0)
    raise ValueError(f"schedule {schedule!r} is not one of {SCHEDULES}")


def make_optimizer(
    lr: float,
    schedule: str = "constant",
    *,
    warmup: int = 0,
    total_steps: int = 0,
    weight_decay: float = 0.01,
    clip_norm: float = 1.0,
) -> optax.GradientTransformation:
    """AdamW (b1 0.9, b2 0.999, eps 1e-8) after clipping the gradient at global norm `clip_norm`."""
    lr_fn = lr_schedule(lr, schedule, warmup=warmup, total_steps=total_steps)
    return optax.chain(
        optax.clip_by_global_norm(clip_norm),
        optax.adamw(lr_fn, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay),
    )


def init_train_state(params: dict, hparams: TrainHparams) -> TrainState:
    """A fresh state (step 0, zero moments) around `params`; jit it with out_shardings to place."""
    opt_state = hparams.optimizer().init(params)
    return TrainState(params=params, opt_state=opt_state, step=jnp.zeros((), jnp.int32))


def _split(batch: PGBatch, micro_batches: int) -> PGBatch:
    """[B, ...] -> [M, B / M, ...]; micro-batch j takes rows j, j + M, ... so that each device's
    contiguous block of rows stays on that device."""

    def split(x):
        x = x.reshape(x.shape[0] // micro_batches, micro_batches, *x.shape[1:])
        return jnp.swapaxes(x, 0, 1)

    return jax.tree_util.tree_map(split, batch)


def loss_and_grads(
    params: dict, batch: PGBatch, *, cfg: ModelConfig, hparams: TrainHparams
) -> tuple[dict, dict[str, jax.Array]]:
    """Gradient of the batch's loss, accumulated over `hparams.micro_batches`, and loss metrics.

    The aggregation weights come from the whole batch first, so every split gives the same sums.
    Returns (grads like params, aux) with aux as in `pg_loss.pg_objective`.
    """
    lc = hparams.loss
    rows, m = batch.tokens.shape[0], hparams.micro_batches
    if rows % m:
        raise ValueError(f"batch of {rows} rows does not split into {m} micro-batches")
    weights = token_weights(batch.loss_mask, lc.agg_mode, batch.segment_ids)  # [B, L]
    metric_weights = token_weights(batch.loss_mask, "token-mean")  # [B, L]

    def loss_fn(params, mb: PGBatch, w, mw):
        logp, ent = token_logprobs(
            params,
            cfg,
            mb.tokens,
            mb.attn_mask,
            temperature=lc.temperature,
            chunk=hparams.logprob_chunk,
            start=batch.response_start,
            remat=hparams.remat,
            positions=mb.positions,
            segment_ids=mb.segment_ids,
            logprob_index=mb.logprob_index,
        )
        return pg_objective(logp, ent, mb, w, mw, lc)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if m == 1:
        (_, aux), grads = grad_fn(params, batch, weights, metric_weights)
        return grads, aux

    xs = _split((batch, weights, metric_weights), m)  # [M, B / M, ...] each

    def body(carry, x):
        g_sum, aux_sum = carry
        (_, aux), g = grad_fn(params, *x)
        g_sum = jax.tree_util.tree_map(lambda a, b: a + b.astype(a.dtype), g_sum, g)
        aux_sum = {
            k: jnp.maximum(v, aux[k]) if k == "logprob_diff_max" else v + aux[k]
            for k, v in aux_sum.items()
        }
        return (g_sum, aux_sum), None

    acc = jnp.dtype(hparams.grad_accum_dtype)
    g0 = jax.tree_util.tree_map(lambda p: jnp.zeros(p.shape, acc), params)
    first = jax.tree_util.tree_map(lambda x: x[0], xs)
    aux0 = jax.tree_util.tree_map(jnp.zeros_like, jax.eval_shape(loss_fn, params, *first)[1])
    (grads, aux), _ = jax.lax.scan(body, (g0, aux0), xs)
    return jax.tree_util.tree_map(lambda g, p: g.astype(p.dtype), grads, params), aux


def train_step(
    state: TrainState,
    batch: PGBatch,
    rng: jax.Array,
    *,
    cfg: ModelConfig,
    hparams: TrainHparams,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One policy-gradient update. Pure: jit it with `jit_train_step`.

    Args:
      state: params, optimizer state and step.
      batch: the rollouts; B must divide by `hparams.micro_batches`.
      rng: unused today (no dropout); part of the signature for stochastic variants.
      cfg: model config (static).
      hparams: update hyperparameters (static).

    Returns:
      (new state, metrics): scalars "loss", "pg_loss", "entropy", "clip_frac", "kl" (with a
      reference), "grad_norm" (before clipping), "logprob_diff_max" (sampler vs trainer, 0
      without old log-probs), "lr"; with group ids and rewards also "group_count",
      "group_reward", "group_advantage", "group_length", each [6].
    """
    del rng
    grads, aux = loss_and_grads(state.params, batch, cfg=cfg, hparams=hparams)
    updates, opt_state = hparams.optimizer().update(grads, state.opt_state, state.params)
    params = master_weights.apply(state.params, updates, opt_state)
    metrics = dict(aux)
    metrics["grad_norm"] = optax.tree.norm(grads)
    metrics["lr"] = jnp.asarray(hparams.lr_schedule()(state.step), jnp.float32)
    if batch.group_ids is not None and batch.rewards is not None:
        metrics.update(group_metrics(batch))
    new_state = TrainState(params=params, opt_state=opt_state, step=state.step + 1)
    return new_state, metrics


def group_metrics(batch: PGBatch) -> dict[str, jax.Array]:
    """Per-(task type, role) means of reward, advantage and response length, each [6].

    Rows whose group id is outside [0, 6) (padding) are left out; an empty group reads 0.
    Packed batches count episodes: their per-episode [B, S] fields are read slot by slot.
    """
    if batch.packed:
        slots = batch.group_ids.shape[1]
        length = episode_lengths(batch.loss_mask, batch.segment_ids, slots).reshape(-1)  # [B * S]
        group_ids, rewards, advantages = (
            x.reshape(-1) for x in (batch.group_ids, batch.rewards, batch.advantages)
        )
    else:
        length = batch.loss_mask.astype(jnp.float32).sum(axis=1)  # [B]
        group_ids, rewards, advantages = batch.group_ids, batch.rewards, batch.advantages
    onehot = jax.nn.one_hot(group_ids, NUM_GROUPS, dtype=jnp.float32)  # [E, 6]
    count = onehot.sum(axis=0)  # [6]

    def mean(x):  # [E] -> [6]
        return (onehot * x.astype(jnp.float32)[:, None]).sum(axis=0) / jnp.maximum(count, 1.0)

    return {
        "group_count": count,
        "group_reward": mean(rewards),
        "group_advantage": mean(advantages),
        "group_length": mean(length),
    }


# ----------------------------------------------------------------------------- sharded jit
def state_shardings(cfg: ModelConfig, hparams: TrainHparams, mesh: jax.sharding.Mesh) -> TrainState:
    """TrainState of NamedShardings: params by TRAIN_RULES, optimizer moments alike."""
    abstract = model_lib.abstract_params(cfg)
    shd.check_heads(mesh, cfg.num_heads, cfg.num_kv_heads)
    params = shd.tree_shardings(abstract, model_lib.param_axes(cfg), mesh, shd.TRAIN_RULES)
    opt = shd.optimizer_state_shardings(hparams.optimizer().init, abstract, params, mesh)
    return TrainState(params=params, opt_state=opt, step=shd.replicated(mesh))


def jit_init_state(
    cfg: ModelConfig, hparams: TrainHparams, mesh: jax.sharding.Mesh
) -> Callable[[dict], TrainState]:
    """`params -> TrainState` placed on `state_shardings` (params are donated)."""
    sh = state_shardings(cfg, hparams, mesh)
    fn = jax.jit(
        functools.partial(init_train_state, hparams=hparams),
        in_shardings=(sh.params,),
        out_shardings=sh,
        donate_argnums=0,
    )

    def init(params):
        with jax.set_mesh(mesh):
            return fn(params)

    return init


def jit_train_step(
    cfg: ModelConfig, hparams: TrainHparams, mesh: jax.sharding.Mesh, *, guard: bool = False
) -> Callable[[TrainState, PGBatch, jax.Array], tuple[TrainState, dict]]:
    """`train_step` jitted once with in/out shardings on `mesh` and the state donated.

    The batch's rows must divide by data x fsdp times `micro_batches`. `guard`: wrap the step in
    `guard.guarded` (a non-finite update leaves the state as it was; adds metrics "nonfinite",
    "applied").
    """
    sh = state_shardings(cfg, hparams, mesh)
    repl = shd.replicated(mesh)
    pure = functools.partial(train_step, cfg=cfg, hparams=hparams)
    fn = jax.jit(
        guarded(pure) if guard else pure,
        # One prefix sharding for every batch field: rows over data x fsdp, the rest replicated.
        in_shardings=(sh, shd.batch_sharding(mesh, 1), repl),
        out_shardings=(sh, repl),
        donate_argnums=0,
        compiler_options=shd.compiler_options(mesh),
    )

    def step(state: TrainState, batch: PGBatch, rng: jax.Array):
        validate_batch(batch)
        shd.check_batch(mesh, batch.tokens.shape[0] // hparams.micro_batches, "micro-batch")
        with jax.set_mesh(mesh):
            return fn(state, batch, rng)

    step.jitted = fn  # the jax.jit object: scripts/compile_tpu.py lowers it ahead of time
    return step
