"""Chunked log-probs and entropies against full-vocab numpy and a PyTorch teacher-forced pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.model import hf_io
from azr_jax.model import transformer as model_lib
from azr_jax.update.logprobs import token_logprobs
from tests.update.rollouts import rollout_rows

P, R, TEMP = 5, 9, 0.7


def _numpy_reference(params, cfg, tokens, attn, temperature):
    """Full [B, L, V] logits, log_softmax in float64: log p(token t | < t) and entropy at t."""
    mask = jnp.asarray(attn, bool)
    logits, _ = model_lib.forward(
        params, cfg, jnp.asarray(tokens), model_lib.positions_from_mask(mask), mask
    )
    z = np.asarray(logits, np.float64)[:, :-1] / temperature  # [B, L-1, V]
    z = z - z.max(-1, keepdims=True)
    logp_all = z - np.log(np.exp(z).sum(-1, keepdims=True))
    lp = np.take_along_axis(logp_all, tokens[:, 1:, None], -1)[..., 0]
    ent = -(np.exp(logp_all) * logp_all).sum(-1)
    pad = np.zeros((tokens.shape[0], 1))
    return np.concatenate([pad, lp], 1), np.concatenate([pad, ent], 1)


@pytest.mark.parametrize("chunk,start", [(3, P), (64, 1)])
def test_chunked_equals_full_vocab_numpy(qwen2_dir, chunk, start):
    cfg, params = hf_io.load_hf(qwen2_dir)
    rows = rollout_rows(4, P, R, cfg.vocab_size, seed=1)
    lp, ent = token_logprobs(
        params,
        cfg,
        rows["tokens"],
        rows["attn_mask"],
        temperature=TEMP,
        chunk=chunk,
        start=start,
    )
    ref_lp, ref_ent = _numpy_reference(params, cfg, rows["tokens"], rows["attn_mask"], TEMP)
    m = rows["loss_mask"].astype(bool)
    np.testing.assert_allclose(np.asarray(lp)[m], ref_lp[m], atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(ent)[m], ref_ent[m], atol=2e-5, rtol=1e-5)
    assert np.all(np.asarray(lp)[:, :start] == 0)


def test_matches_transformers_teacher_forcing(family_dir):
    torch = pytest.importorskip("torch")
    import transformers

    cfg, params = hf_io.load_hf(family_dir)
    rows = rollout_rows(3, P, R, cfg.vocab_size, seed=2)
    lp, ent = token_logprobs(
        params, cfg, rows["tokens"], rows["attn_mask"], temperature=TEMP, chunk=4, start=P
    )
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        family_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    tokens = torch.tensor(rows["tokens"], dtype=torch.long)
    attn = torch.tensor(rows["attn_mask"], dtype=torch.long)
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = hf(input_ids=tokens, attention_mask=attn, position_ids=positions).logits
    logp_all = torch.log_softmax(logits[:, :-1].double() / TEMP, -1)
    ref_lp = logp_all.gather(-1, tokens[:, 1:, None])[..., 0].numpy()
    ref_ent = -(logp_all.exp() * logp_all).sum(-1).numpy()
    m = rows["loss_mask"][:, 1:].astype(bool)
    np.testing.assert_allclose(np.asarray(lp)[:, 1:][m], ref_lp[m], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(ent)[:, 1:][m], ref_ent[m], atol=1e-4, rtol=1e-4)


def test_chunked_gradient_equals_unchunked(qwen2_dir):
    """Checkpointed chunks give the same gradient as one chunk (and remat the same again)."""
    cfg, params = hf_io.load_hf(qwen2_dir)
    rows = rollout_rows(2, P, R, cfg.vocab_size, seed=3)
    w = jnp.asarray(np.random.default_rng(0).normal(size=rows["tokens"].shape), jnp.float32)
    w = w * rows["loss_mask"]

    def f(p, chunk, remat):
        lp, ent = token_logprobs(
            p, cfg, rows["tokens"], rows["attn_mask"], chunk=chunk, start=P, remat=remat
        )
        return jnp.sum(w * (lp + 0.1 * ent))

    g_full = jax.grad(f)(params, R, False)
    for chunk, remat in ((2, False), (4, True)):
        g = jax.grad(f)(params, chunk, remat)
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_full), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4 * float(jnp.abs(b).max()), rtol=1e-4)


def test_rejects_bad_arguments(qwen2_dir):
    cfg, params = hf_io.load_hf(qwen2_dir)
    rows = rollout_rows(2, P, R, cfg.vocab_size)
    with pytest.raises(ValueError, match="start"):
        token_logprobs(params, cfg, rows["tokens"], rows["attn_mask"], start=0)
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs(params, cfg, rows["tokens"], rows["attn_mask"], temperature=0.0)


def test_logprob_index_scores_only_its_positions(qwen2_dir):
    """`logprob_index` (packed rows): log-probs and entropies at the listed positions equal the
    full pass's; every other position holds 0; index L is padding. (Gradients through it:
    tests/update/test_packing.py, packed step == padded step.)"""
    cfg, params = hf_io.load_hf(qwen2_dir)
    rows = rollout_rows(3, P, R, cfg.vocab_size, seed=5)
    length = rows["tokens"].shape[1]
    index = np.full((3, R + 1), length, np.int32)  # one slot of padding in every row at least
    for b in range(3):
        pos = np.flatnonzero(rows["loss_mask"][b])
        index[b, : len(pos)] = pos
    scored = np.zeros_like(rows["loss_mask"], bool)
    np.put_along_axis(scored, np.minimum(index, length - 1), index < length, axis=1)

    def f(p, idx):
        return token_logprobs(
            p, cfg, rows["tokens"], rows["attn_mask"], chunk=4, temperature=TEMP, logprob_index=idx
        )

    lp, ent = (np.asarray(x) for x in jax.jit(f)(params, index))
    lp_all, ent_all = (np.asarray(x) for x in jax.jit(lambda p: f(p, None))(params))
    assert scored.sum() == rows["loss_mask"].sum()
    np.testing.assert_allclose(lp[scored], lp_all[scored], atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(ent[scored], ent_all[scored], atol=1e-6, rtol=1e-6)
    assert np.all(lp[~scored] == 0) and np.all(ent[~scored] == 0)
