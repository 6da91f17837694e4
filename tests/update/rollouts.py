"""Random rollout rows for the update's tests: left-padded prompts + right-padded responses."""

from __future__ import annotations

import numpy as np


def rollout_rows(
    batch: int, prompt: int, response: int, vocab: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """tokens/attn_mask/loss_mask [B, P + R], advantages/rewards/group_ids [B].

    Row b: `prompt - p_b` pads, p_b prompt tokens, r_b response tokens, `response - r_b` pads.
    The last row is all padding (no response) when batch > 2, as a mesh-filling row would be.
    """
    rng = np.random.default_rng(seed)
    length = prompt + response
    tokens = rng.integers(2, vocab, (batch, length)).astype(np.int32)
    attn = np.zeros((batch, length), np.int32)
    loss = np.zeros((batch, length), np.int32)
    for b in range(batch):
        p = int(rng.integers(1, prompt + 1))
        r = int(rng.integers(1, response + 1))
        if batch > 2 and b == batch - 1:
            r = 0
        attn[b, prompt - p : prompt + r] = 1
        loss[b, prompt : prompt + r] = 1
    tokens = np.where(attn == 1, tokens, 1).astype(np.int32)  # 1: the pad id
    return dict(
        tokens=tokens,
        attn_mask=attn,
        loss_mask=loss,
        advantages=rng.normal(size=batch).astype(np.float32),
        rewards=rng.uniform(-1, 1, size=batch).astype(np.float32),
        group_ids=(np.arange(batch) % 6).astype(np.int32),
    )
