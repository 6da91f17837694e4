"""Per-token log-probabilities and entropies of given tokens, unembedded one chunk at a time.

Row layout (what the sampler hands over): each row of `tokens` [B, L] is a left-padded prompt
followed by its right-padded response, `[pad.. prompt | response ..pad]`; `attn_mask` [B, L]
marks the real tokens. Any padding works as long as `attn_mask` is right: positions are counted
over real tokens (`positions_from_mask`). The output is aligned with the tokens: `logprobs[:, t]`
is log p(tokens[:, t] | tokens[:, :t]) taken from the hidden state at position t - 1, so the
loss mask of the response tokens applies to it directly; position 0 (and every position before
`start`) has no prediction and holds 0.

Packed rows (`azr_jax.update.packing`): `segment_ids` keep attention inside each episode,
`positions` restart per episode, and `logprob_index` [B, N] lists the positions to score (the
response tokens; L = none): only their hidden states are unembedded, and the results are
scattered back to [B, L] (0 elsewhere), so the output's layout is the same.

The LM head is applied to `chunk` positions at a time inside `lax.map`, each chunk under
`jax.checkpoint`, so neither the forward nor the backward pass ever holds the [B, L, V] logits
of the whole batch: at most [B, chunk, V] float32.

Legend: B batch, L row length, N predicted positions (L - start, or logprob_index's width),
C chunk, D hidden, V vocab.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from azr_jax.model import transformer as model_lib
from azr_jax.model.config import ModelConfig
from azr_jax.parallel.sharding import constrain


def token_logprobs(
    params: dict,
    cfg: ModelConfig,
    tokens: jax.Array,  # [B, L] int32
    attn_mask: jax.Array,  # [B, L] bool/int, 1 on real tokens
    *,
    temperature: float = 1.0,
    chunk: int = 512,
    start: int = 1,
    remat: bool = False,
    positions: jax.Array | None = None,  # [B, L] int32; None: counted over attn_mask
    segment_ids: jax.Array | None = None,  # [B, L] int32 packed rows; 0 = padding
    logprob_index: jax.Array | None = None,  # [B, N] int32 positions to score; L = none
) -> tuple[jax.Array, jax.Array]:
    """Log-probabilities and entropies of the temperature-scaled policy, both [B, L] float32.

    Args:
      params: model parameters (`model.init_params` / `hf_io.load_hf`).
      cfg: the model's config.
      tokens: [B, L] rows `prompt + response` (see the module docstring).
      attn_mask: [B, L] 1 on real tokens, 0 on padding.
      temperature: the sampling temperature; logits are divided by it before log_softmax.
      chunk: positions unembedded at a time (the [B, chunk, V] working set).
      start: first position whose log-prob is needed (static; e.g. the prompt width, so the
        prompt is never unembedded). Positions before it hold 0.
      remat: recompute each transformer block in the backward pass.
      positions: [B, L] token positions (packed rows restart them per episode); None counts
        them over `attn_mask`.
      segment_ids: [B, L] packed rows' episode ids (see `azr_jax.model.transformer`).
      logprob_index: [B, N] the only positions (>= 1) to score, the rest of the width padded
        with L; `start` is then ignored.

    Returns:
      (logprobs, entropy), each [B, L] float32; entries at positions < start (or not in
      `logprob_index`) are 0.
    """
    if not 1 <= start < tokens.shape[1]:
        raise ValueError(f"start={start} must lie in [1, {tokens.shape[1]}) (row length)")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} must be > 0 (greedy has no log-probs)")
    mask = attn_mask.astype(bool)
    if positions is None:
        positions = model_lib.positions_from_mask(mask)  # [B, L]
    h, _ = model_lib.hidden_states(
        params, cfg, tokens, positions, mask, remat=remat, segment_ids=segment_ids
    )  # [B, L, D]
    if logprob_index is not None:
        return _indexed_logprobs(
            params, cfg, h, tokens, logprob_index, temperature=temperature, chunk=chunk
        )
    lp, ent = chunked_logprobs(
        params, cfg, h[:, start - 1 : -1], tokens[:, start:], temperature=temperature, chunk=chunk
    )  # [B, N] each
    pad = jnp.zeros((tokens.shape[0], start), jnp.float32)
    return jnp.concatenate([pad, lp], axis=1), jnp.concatenate([pad, ent], axis=1)


def _indexed_logprobs(
    params: dict,
    cfg: ModelConfig,
    h: jax.Array,  # [B, L, D]
    tokens: jax.Array,  # [B, L]
    index: jax.Array,  # [B, N] positions to score; L = padding
    *,
    temperature: float,
    chunk: int,
) -> tuple[jax.Array, jax.Array]:
    """Log-probs and entropies at `index` only, scattered into [B, L] zeros."""
    length = tokens.shape[1]
    index = index.astype(jnp.int32)
    src = jnp.clip(index - 1, 0, length - 1)  # [B, N]: the hidden state that predicts it
    h_sel = jax.vmap(lambda hb, ib: hb[ib])(h, src)  # [B, N, D]
    t_sel = jax.vmap(lambda tb, ib: tb[ib])(tokens, jnp.clip(index, 0, length - 1))  # [B, N]
    lp, ent = chunked_logprobs(
        params, cfg, h_sel, t_sel, temperature=temperature, chunk=chunk
    )  # [B, N] each

    def scatter(x):  # [B, N] -> [B, L]; index L (padding) is dropped
        return jax.vmap(
            lambda xb, ib: jnp.zeros((length,), jnp.float32).at[ib].set(xb, mode="drop")
        )(x, index)

    return scatter(lp), scatter(ent)


def chunked_logprobs(
    params: dict,
    cfg: ModelConfig,
    h: jax.Array,  # [B, N, D] final normalised hidden states
    targets: jax.Array,  # [B, N] int32: the token each hidden state predicts
    *,
    temperature: float = 1.0,
    chunk: int = 512,
) -> tuple[jax.Array, jax.Array]:
    """log p(target) and the entropy at each of N positions, [B, N] float32 each."""
    b, n, d = h.shape
    c = max(1, min(chunk, n))
    num = -(-n // c)
    pad = num * c - n
    if pad:  # the padded positions predict token 0 from a zero state; they are dropped below
        h = jnp.pad(h, ((0, 0), (0, pad), (0, 0)))
        targets = jnp.pad(targets, ((0, 0), (0, pad)))

    # Vocab-parallel head: the weight stays split over the vocabulary across fsdp x tensor
    # (one all-to-all from its fsdp layout, outside the loop) and each chunk's hidden states are
    # gathered over the rows instead, so no chip holds the whole [V, D] head or its float32
    # gradient (2 GiB for a 152k x 3584 head); logsumexp and the target's logit reduce over V
    # across chips. On one device (or fsdp = tensor = 1) the constraints are no-ops.
    if cfg.tie_word_embeddings:
        head, eq = constrain(params["embed"], ("loss_vocab", None)), "BCD,VD->BCV"  # [V, D]
    else:
        head, eq = constrain(params["lm_head"], (None, "loss_vocab")), "BCD,DV->BCV"  # [D, V]

    @jax.checkpoint  # the backward pass recomputes this chunk's logits instead of storing them
    def one(h_c: jax.Array, t_c: jax.Array) -> tuple[jax.Array, jax.Array]:
        h_c = constrain(h_c, ("loss_batch", "length", None))  # [B, C, D], rows over data only
        logits = jnp.einsum(eq, h_c, head.astype(h_c.dtype), preferred_element_type=jnp.float32)
        logits = constrain(logits / temperature, ("loss_batch", "length", "loss_vocab"))
        lse = jax.nn.logsumexp(logits, axis=-1)  # [B, C]
        # The target's logit as a masked sum: stays local when V is split over `tensor`.
        vocab = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 2)
        target_logit = jnp.sum(jnp.where(vocab == t_c[..., None], logits, 0.0), axis=-1)
        probs = jnp.exp(logits - lse[..., None])  # [B, C, V]
        entropy = lse - jnp.sum(probs * logits, axis=-1)  # [B, C]
        lp = constrain(target_logit - lse, ("batch", "length"))
        return lp, constrain(entropy, ("batch", "length"))

    if num == 1:
        lp, ent = one(h, targets)
    else:
        hs = h.reshape(b, num, c, d).swapaxes(0, 1)  # [num, B, C, D]
        ts = targets.reshape(b, num, c).swapaxes(0, 1)  # [num, B, C]
        lp, ent = jax.lax.map(lambda xs: one(*xs), (hs, ts))  # [num, B, C] each
        lp = lp.swapaxes(0, 1).reshape(b, num * c)
        ent = ent.swapaxes(0, 1).reshape(b, num * c)
    return lp[:, :n], ent[:, :n]
