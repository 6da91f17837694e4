"""Side-by-side check of a checkpoint in azr_jax and in transformers (PyTorch).

Used by `scripts/compare_with_hf.py`, the interim main job, and the parity tests. Needs torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.model import hf_io
from azr_jax.model import transformer as model_lib

PROMPTS = (
    "def f(nums):\n    return sorted(nums)[::-1]",
    "x = 1",
    "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):",
    "import math\nprint(math.sqrt(16))",
)


def left_pad(tokenizer, texts) -> tuple[np.ndarray, np.ndarray]:
    """Token ids [B, T] and mask [B, T] (bool), left padded with the tokenizer's pad id."""
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = np.full((len(rows), width), pad, np.int32)
    mask = np.zeros((len(rows), width), bool)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = r
        mask[i, width - len(r) :] = True
    return ids, mask


def _greedy_jax(params, cfg, ids, mask, steps):
    fwd = jax.jit(model_lib.forward, static_argnums=1)
    out = []
    for _ in range(steps):
        pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
        logits, _ = fwd(params, cfg, jnp.asarray(ids), jnp.asarray(pos), jnp.asarray(mask))
        nxt = np.asarray(jnp.argmax(logits[:, -1], -1)).astype(np.int32)
        out.append(nxt)
        ids = np.concatenate([ids, nxt[:, None]], 1)
        mask = np.concatenate([mask, np.ones_like(mask[:, :1])], 1)
    return np.stack(out, 1)


def compare(
    model_dir: str | Path,
    dtype: str = "float32",
    new_tokens: int = 8,
    prompts=PROMPTS,
    attention: str = "einsum",
) -> dict[str, Any]:
    """Loads `model_dir` both ways and compares logits (non-pad positions) and greedy tokens.

    `attention` is azr_jax's full-sequence attention (model/config.py; splash runs in interpret
    mode off TPU)."""
    import torch
    import transformers as tf

    model_dir = hf_io.resolve_model_dir(str(model_dir))
    cfg, params = hf_io.load_hf(model_dir, param_dtype=dtype, dtype=dtype, attention=attention)
    tokenizer = hf_io.load_tokenizer(model_dir)
    ids, mask = left_pad(tokenizer, prompts)
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
    logits, _ = model_lib.forward(
        params, cfg, jnp.asarray(ids), jnp.asarray(pos), jnp.asarray(mask)
    )
    ours = np.asarray(logits, np.float32)

    hf = tf.AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
    with torch.no_grad():
        ref = (
            hf(
                input_ids=torch.tensor(ids, dtype=torch.long),
                attention_mask=torch.tensor(mask, dtype=torch.long),
                position_ids=torch.tensor(pos, dtype=torch.long),
            )
            .logits.float()
            .numpy()
        )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        gen = hf.generate(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=pad,
        )[:, ids.shape[1] :].numpy()
    ours_gen = _greedy_jax(params, cfg, ids, mask, new_tokens)
    return {
        "architecture": cfg.family,
        "dtype": dtype,
        "attention": cfg.attention,
        "max_abs_logit_diff": float(np.abs(ours - ref)[mask].max()),
        "mean_abs_logit": float(np.abs(ref[mask]).mean()),
        "greedy_tokens_match": bool((ours_gen == gen).all()),
        "num_params": int(cfg.num_params),
        "prompts": len(prompts),
        "new_tokens": new_tokens,
    }
