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

Packed batches (`azr_jax.update.packing`, `segment_ids` set): a row holds several episodes
(segment k = the row's k-th episode, 0 = padding), and every per-sequence quantity is per
episode: the per-episode fields (advantages, group ids, rewards) are [B, S] (slot k - 1 holds
segment k), and "tokens of that sequence" / "sequences in the batch" count episodes. The loss,
its gradient and the metrics equal those of the same episodes in padded rows.

Legend: B batch rows, L row length, S episode slots per packed row, N scored positions per row.
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
    """One update's rollouts, rows as in `azr_jax.update.logprobs` (prompt left-padded + response),
    or packed rows (several episodes per row, `azr_jax.update.packing`).

    Optional fields may be None; the pytree structure (and so the compiled step) follows.
    Per-episode fields are [B] (one episode per row) or, packed, [B, S] (slot k - 1 = segment k).
    """

    tokens: jax.Array  # [B, L] int32
    attn_mask: jax.Array  # [B, L] int32/bool: 1 on real tokens
    loss_mask: jax.Array  # [B, L] int32/bool: 1 on response tokens
    advantages: jax.Array  # [B] (packed: [B, S]) float32: one per episode
    old_logprobs: jax.Array | None = None  # [B, L] float32: the sampler's, aligned with tokens
    ref_logprobs: jax.Array | None = None  # [B, L] float32: a frozen reference's
    group_ids: jax.Array | None = None  # [B] (packed: [B, S]) int32 in [0, 6); -1 = none
    rewards: jax.Array | None = None  # [B] (packed: [B, S]) float32
    # First position with a response token in any row (e.g. the prompt width): positions before
    # it are never unembedded. Static.
    response_start: int = struct.field(pytree_node=False, default=1)
    # Packed rows (all three set together by `packing.pack_episodes`; None = one episode a row):
    segment_ids: jax.Array | None = None  # [B, L] int32: 0 = padding, k = the row's k-th episode
    positions: jax.Array | None = None  # [B, L] int32: restart at 0 for each episode
    # [B, N] int32: the positions whose log-probs the loss reads (the response tokens), the
    # rest L; only they are unembedded. None: every position from response_start.
    logprob_index: jax.Array | None = None

    @property
    def packed(self) -> bool:
        return self.segment_ids is not None


def validate_batch(batch: PGBatch) -> None:
    """Host-side checks of a batch's shapes and of `response_start` (numpy arrays are read)."""
    b, length = np.shape(batch.tokens)
    for name in ("attn_mask", "loss_mask", "old_logprobs", "ref_logprobs", "segment_ids"):
        x = getattr(batch, name)
        if x is not None and np.shape(x) != (b, length):
            raise ValueError(f"batch.{name} has shape {np.shape(x)}, expected {(b, length)}")
    packed = (batch.segment_ids, batch.positions, batch.logprob_index)
    if any(x is not None for x in packed) and any(x is None for x in packed):
        raise ValueError(
            "a packed batch sets segment_ids, positions and logprob_index together; build it "
            "with azr_jax.update.packing.pack_episodes"
        )
    if batch.packed:
        if np.shape(batch.positions) != (b, length):
            raise ValueError(
                f"batch.positions has shape {np.shape(batch.positions)}, expected {(b, length)}"
            )
        if np.ndim(batch.logprob_index) != 2 or np.shape(batch.logprob_index)[0] != b:
            raise ValueError(
                f"batch.logprob_index has shape {np.shape(batch.logprob_index)}, expected ({b}, N)"
            )
        episode_shape = (
            b,
            np.shape(batch.advantages)[-1] if np.ndim(batch.advantages) == 2 else -1,
        )
    else:
        episode_shape = (b,)
    for name in ("advantages", "group_ids", "rewards"):
        x = getattr(batch, name)
        if x is not None and np.shape(x) != episode_shape:
            want = "(B, S) (packed: one slot per episode of a row)" if batch.packed else str((b,))
            raise ValueError(f"batch.{name} has shape {np.shape(x)}, expected {want}")
    if batch.packed and isinstance(batch.segment_ids, np.ndarray):
        if (
            batch.segment_ids.min(initial=0) < 0
            or batch.segment_ids.max(initial=0) > episode_shape[1]
        ):
            raise ValueError(
                f"batch.segment_ids must lie in [0, S={episode_shape[1]}] (S: the advantages' slots)"
            )
    if batch.packed and isinstance(batch.logprob_index, np.ndarray):
        if batch.logprob_index.size and not (
            1 <= batch.logprob_index.min() and batch.logprob_index.max() <= length
        ):
            raise ValueError(
                f"batch.logprob_index must lie in [1, {length}] (a position >= 1, or {length} "
                "for none)"
            )
    if not 1 <= batch.response_start < length:
        raise ValueError(f"batch.response_start={batch.response_start} must lie in [1, {length})")
    if isinstance(batch.loss_mask, np.ndarray) and batch.loss_mask[:, : batch.response_start].any():
        raise ValueError(
            f"batch.loss_mask marks tokens before response_start={batch.response_start}; "
            "set response_start to the prompt width (or 1)"
        )


def episode_lengths(loss_mask: jax.Array, segment_ids: jax.Array, slots: int) -> jax.Array:
    """[B, L] loss mask, [B, L] segment ids -> [B, S] float32 response tokens of each episode slot."""
    mask = loss_mask.astype(jnp.float32)  # [B, L]
    counts = jax.vmap(lambda m, s: jax.ops.segment_sum(m, s, num_segments=slots + 1))(
        mask, segment_ids.astype(jnp.int32)
    )  # [B, S + 1]; column 0 is the padding
    return counts[:, 1:]


def per_token(x: jax.Array, segment_ids: jax.Array) -> jax.Array:
    """[B, S] per-episode values -> [B, L]: each token gets its episode's (padding: slot 0's)."""
    slot = jnp.maximum(segment_ids.astype(jnp.int32) - 1, 0)  # [B, L]
    return jnp.take_along_axis(x, slot, axis=1)


def token_weights(
    loss_mask: jax.Array, agg_mode: str, segment_ids: jax.Array | None = None
) -> jax.Array:
    """[B, L] float32 aggregation weights over the whole batch; they sum to 1 (or 0 if empty).

    `segment_ids` [B, L] (packed rows): "sequences" are the episodes, not the rows.
    """
    mask = loss_mask.astype(jnp.float32)  # [B, L]
    if agg_mode == "token-mean":
        return mask / jnp.maximum(mask.sum(), 1.0)
    if agg_mode == "seq-mean-token-mean":
        if segment_ids is None:
            per_seq = mask.sum(axis=1, keepdims=True)  # [B, 1]
            num_seqs = jnp.sum(per_seq > 0)
        else:
            # An episode holds at most L tokens, so a row has at most L segments.
            counts = episode_lengths(mask, segment_ids, mask.shape[1])  # [B, L]
            per_seq = per_token(counts, segment_ids)  # [B, L]: its episode's length
            num_seqs = jnp.sum(counts > 0)
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
    if batch.packed:
        adv = per_token(batch.advantages.astype(jnp.float32), batch.segment_ids)  # [B, L]
    else:
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
