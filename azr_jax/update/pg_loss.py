"""The TRR++ policy-gradient objective: PPO-clipped ratio, entropy bonus, optional k3 KL.

Per response token t of sequence b (AZR_SPEC section 4; every token carries its sequence's
advantage A_b):

    ratio   = exp(logp - old_logp)                 (old_logp = stop_gradient(logp) if absent)
    pg      = max(-A_b * ratio, -A_b * clip(ratio, 1 - eps, 1 + eps))
    kl      = exp(ref - logp) - (ref - logp) - 1   (k3, only with reference log-probs)
    loss    = agg(pg) - entropy_coef * agg(entropy) + kl_coef * agg(kl)

Aggregation is a weighted sum `sum_{b,t} w[b, t] * x[b, t]` whose weights come from the WHOLE
batch before it is split into micro-batches (`token_weights`), so summing the micro-batches'
contributions gives the full-batch loss and gradient exactly:
  token-mean:           w = mask / (response tokens in the batch)
  seq-mean-token-mean:  w = mask / (tokens of that sequence * sequences in the batch)
A row without response tokens (padding to a mesh-divisible batch) has weight 0 and does not
count as a sequence.

Legend: B batch rows, L row length.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

AGG_MODES = ("token-mean", "seq-mean-token-mean")


@dataclasses.dataclass(frozen=True)
class PGLossConfig:
    """Hyperparameters of the objective (hashable: a static argument under jit)."""

    clip_eps: float = 0.2  # PPO ratio clip
    entropy_coef: float = 0.001  # entropy bonus (maximised)
    kl_coef: float = 0.0  # k3 KL to the reference; used only when the batch has ref_logprobs
    agg_mode: str = "token-mean"  # one of AGG_MODES
    temperature: float = 1.0  # the sampler's; logits are divided by it

    def __post_init__(self):
        if self.agg_mode not in AGG_MODES:
            raise ValueError(f"agg_mode {self.agg_mode!r} is not one of {AGG_MODES}")
        if not 0 < self.clip_eps < 1:
            raise ValueError(f"clip_eps={self.clip_eps} must lie in (0, 1)")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0")


@struct.dataclass
class PGBatch:
    """One update's rollouts, rows as in `azr_jax.update.logprobs` (prompt left-padded + response).

    Optional fields may be None; the pytree structure (and so the compiled step) follows.
    """

    tokens: jax.Array  # [B, L] int32
    attn_mask: jax.Array  # [B, L] int32/bool: 1 on real tokens
    loss_mask: jax.Array  # [B, L] int32/bool: 1 on response tokens
    advantages: jax.Array  # [B] float32: one per sequence
    old_logprobs: jax.Array | None = None  # [B, L] float32: the sampler's, aligned with tokens
    ref_logprobs: jax.Array | None = None  # [B, L] float32: a frozen reference's
    group_ids: jax.Array | None = None  # [B] int32 in [0, 6): (task type, role); -1 = none
    rewards: jax.Array | None = None  # [B] float32
    # First position with a response token in any row (e.g. the prompt width): positions before
    # it are never unembedded. Static.
    response_start: int = struct.field(pytree_node=False, default=1)


def validate_batch(batch: PGBatch) -> None:
    """Host-side checks of a batch's shapes and of `response_start` (numpy arrays are read)."""
    b, length = np.shape(batch.tokens)
    for name in ("attn_mask", "loss_mask", "old_logprobs", "ref_logprobs"):
        x = getattr(batch, name)
        if x is not None and np.shape(x) != (b, length):
            raise ValueError(f"batch.{name} has shape {np.shape(x)}, expected {(b, length)}")
    for name in ("advantages", "group_ids", "rewards"):
        x = getattr(batch, name)
        if x is not None and np.shape(x) != (b,):
            raise ValueError(f"batch.{name} has shape {np.shape(x)}, expected {(b,)}")
    if not 1 <= batch.response_start < length:
        raise ValueError(f"batch.response_start={batch.response_start} must lie in [1, {length})")
    if isinstance(batch.loss_mask, np.ndarray) and batch.loss_mask[:, : batch.response_start].any():
        raise ValueError(
            f"batch.loss_mask marks tokens before response_start={batch.response_start}; "
            "set response_start to the prompt width (or 1)"
        )


def token_weights(loss_mask: jax.Array, agg_mode: str) -> jax.Array:
    """[B, L] float32 aggregation weights over the whole batch; they sum to 1 (or 0 if empty)."""
    mask = loss_mask.astype(jnp.float32)  # [B, L]
    if agg_mode == "token-mean":
        return mask / jnp.maximum(mask.sum(), 1.0)
    if agg_mode == "seq-mean-token-mean":
        per_seq = mask.sum(axis=1, keepdims=True)  # [B, 1]
        num_seqs = jnp.sum(per_seq > 0)
        return mask / jnp.maximum(per_seq, 1.0) / jnp.maximum(num_seqs, 1)
    raise ValueError(f"agg_mode {agg_mode!r} is not one of {AGG_MODES}")


def pg_objective(
    logprobs: jax.Array,  # [B, L] float32, the trainer's (differentiable)
    entropy: jax.Array,  # [B, L] float32
    batch: PGBatch,
    weights: jax.Array,  # [B, L] from token_weights(agg_mode) of the FULL batch
    metric_weights: jax.Array,  # [B, L] from token_weights("token-mean") of the FULL batch
    cfg: PGLossConfig,
) -> tuple[jax.Array, dict[str, Any]]:
    """This (micro-)batch's contribution to the loss, and to the metrics.

    Returns:
      (loss, aux): `loss` is a scalar; summing it over micro-batches gives the full-batch loss.
      `aux` holds additive contributions ("pg_loss" in the aggregation mode; "entropy", "kl",
      "clip_frac" as token means) and "logprob_diff_max" (combine with max).
    """
    if cfg.kl_coef and batch.ref_logprobs is None:
        raise ValueError("kl_coef > 0 needs batch.ref_logprobs (a frozen reference's log-probs)")
    mask = batch.loss_mask.astype(bool)  # [B, L]
    adv = batch.advantages.astype(jnp.float32)[:, None]  # [B, 1]
    if batch.old_logprobs is None:
        old = jax.lax.stop_gradient(logprobs)
    else:
        old = batch.old_logprobs.astype(jnp.float32)
    # Masked (padding) positions can hold anything: keep their ratio at 1 so nothing overflows.
    log_ratio = jnp.where(mask, logprobs - old, 0.0)
    ratio = jnp.exp(log_ratio)  # [B, L]
    pg_unclipped = -adv * ratio
    pg_clipped = -adv * jnp.clip(ratio, 1.0 - cfg.clip_eps, 1.0 + cfg.clip_eps)
    pg = jnp.maximum(pg_unclipped, pg_clipped)  # [B, L]
    clipped = (pg_clipped > pg_unclipped).astype(jnp.float32)

    def agg(x, w):
        return jnp.sum(w * jnp.where(mask, x, 0.0))

    pg_loss = agg(pg, weights)
    loss = pg_loss - cfg.entropy_coef * agg(entropy, weights)
    aux = {
        "pg_loss": pg_loss,
        "entropy": agg(entropy, metric_weights),
        "clip_frac": agg(clipped, metric_weights),
        "logprob_diff_max": jnp.max(
            jnp.where(mask, jnp.abs(jax.lax.stop_gradient(logprobs) - old), 0.0)
        ),
    }
    if batch.ref_logprobs is not None:
        delta = jnp.where(mask, batch.ref_logprobs.astype(jnp.float32) - logprobs, 0.0)
        kl = jnp.exp(delta) - delta - 1.0  # [B, L] k3: >= 0, unbiased for KL(pi || ref)
        loss = loss + cfg.kl_coef * agg(kl, weights)
        aux["kl"] = agg(kl, metric_weights)
    aux["loss"] = loss
    return loss, aux
