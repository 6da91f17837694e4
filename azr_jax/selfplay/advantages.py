"""Task-Relative REINFORCE++ advantages, computed on the host in numpy (AZR_SPEC section 4).

Each response carries one scalar reward. Rewards are normalised separately within each of the
six (task type, role) groups of `tasks.GROUPS`:

    A_i = (r_i - mean_g) / (std_g + eps),   g = group of sample i,

with the population standard deviation (ddof=0). Per sample (the paper) every response counts
once; token-weighted (the authors' code) every response counts once per response token, so
the group's mean and variance are weighted by response length. A group with a single member
or with all rewards equal gets zero advantage, never NaN. The device side broadcasts each
sample's advantage over its response tokens.
"""

from __future__ import annotations

import numpy as np

from azr_jax.selfplay.tasks import NUM_GROUPS


def trr_advantages(
    rewards: np.ndarray,
    group_ids: np.ndarray,
    lengths: np.ndarray | None = None,
    token_weighted: bool = False,
    eps: float = 1e-6,
    num_groups: int = NUM_GROUPS,
) -> np.ndarray:
    """Group-normalised advantages.

    Args:
      rewards: [N] scalar reward per response.
      group_ids: [N] int group of each response, in [0, num_groups) (`tasks.group_id`).
      lengths: [N] response lengths in tokens; required when `token_weighted`.
      token_weighted: weight each response's reward by its length in the group statistics.
      eps: added to the group's standard deviation.
      num_groups: number of groups ids may take.

    Returns:
      [N] float32 advantages.
    """
    rewards = np.asarray(rewards, dtype=np.float64)  # [N]
    group_ids = np.asarray(group_ids)  # [N]
    if rewards.ndim != 1 or group_ids.shape != rewards.shape:
        raise ValueError(
            f"rewards and group_ids must be 1-D of equal length, got {rewards.shape} and "
            f"{group_ids.shape}"
        )
    if not np.all(np.isfinite(rewards)):
        raise ValueError("rewards contain NaN or inf")
    if group_ids.size and (
        not np.issubdtype(group_ids.dtype, np.integer)
        or group_ids.min() < 0
        or group_ids.max() >= num_groups
    ):
        raise ValueError(f"group_ids must be integers in [0, {num_groups}), got {group_ids}")
    if token_weighted:
        if lengths is None:
            raise ValueError("token_weighted advantages need the response lengths")
        weights = np.asarray(lengths, dtype=np.float64)  # [N]
        if weights.shape != rewards.shape or np.any(weights < 0):
            raise ValueError(f"lengths must be [N] non-negative, got {weights}")
    else:
        weights = np.ones_like(rewards)  # [N]

    advantages = np.zeros_like(rewards)  # [N]
    for gid in range(num_groups):
        members = group_ids == gid
        r, w = rewards[members], weights[members]
        total = w.sum()
        if r.size < 2 or total <= 0 or np.all(r == r[0]):
            continue  # Nothing to compare against: advantage stays zero.
        mean = np.sum(w * r) / total
        std = np.sqrt(np.sum(w * (r - mean) ** 2) / total)
        advantages[members] = (r - mean) / (std + eps)
    return advantages.astype(np.float32)


def group_reward_stats(
    rewards: np.ndarray, group_ids: np.ndarray, num_groups: int = NUM_GROUPS
) -> dict[int, dict[str, float]]:
    """Per-group count, mean and std of rewards (ddof=0), for logging; empty groups omitted."""
    rewards = np.asarray(rewards, dtype=np.float64)
    group_ids = np.asarray(group_ids)
    stats = {}
    for gid in range(num_groups):
        r = rewards[group_ids == gid]
        if r.size:
            stats[gid] = {"count": float(r.size), "mean": float(r.mean()), "std": float(r.std())}
    return stats
