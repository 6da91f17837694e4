"""The model against transformers (PyTorch) on random checkpoints of every family."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers as tf

from azr_jax.model import hf_io
from azr_jax.model import transformer as model_lib
from azr_jax.model.parity import PROMPTS, left_pad


def _hf_logits(model_dir, ids, mask, pos):
    hf = tf.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return hf(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
            position_ids=torch.tensor(pos, dtype=torch.long),
        ).logits.numpy()


def test_logits_match_transformers_on_padded_batch(family_dir):
    cfg, params = hf_io.load_hf(family_dir)
    tok = hf_io.load_tokenizer(family_dir)
    ids, mask = left_pad(tok, PROMPTS)
    assert (~mask).any(), "the batch must contain padding"
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
    ours, _ = model_lib.forward(params, cfg, jnp.asarray(ids), jnp.asarray(pos), jnp.asarray(mask))
    ref = _hf_logits(family_dir, ids, mask, pos)
    # Random weights drawn so that logits are O(1): a small diff is meaningful.
    assert np.abs(ref[mask]).mean() > 0.3
    assert np.abs(np.asarray(ours) - ref)[mask].max() <= 1e-4


def test_xla_attention_matches_transformers_and_einsum(family_dir):
    """`attention="xla"` (jax.nn.dot_product_attention) gives transformers' logits on a
    left-padded batch, and the einsum path's gradients at every real position."""
    cfg, params = hf_io.load_hf(family_dir)
    fused = cfg.replace(attention="xla")
    tok = hf_io.load_tokenizer(family_dir)
    ids, mask = left_pad(tok, PROMPTS)
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
    args = (jnp.asarray(ids), jnp.asarray(pos), jnp.asarray(mask))
    ours, _ = model_lib.forward(params, fused, *args)
    assert np.isfinite(np.asarray(ours)).all()  # pad rows too: they must not poison gradients
    ref = _hf_logits(family_dir, ids, mask, pos)
    assert np.abs(np.asarray(ours) - ref)[mask].max() <= 1e-4

    def loss(p, c):
        logits, _ = model_lib.forward(p, c, *args)
        logp = jax.nn.log_softmax(logits, -1)
        return jnp.sum(jnp.where(args[2][..., None], logp, 0.0)[..., :7])

    g_einsum = [np.asarray(x) for x in jax.tree.leaves(jax.grad(loss)(params, cfg))]
    g_fused = [np.asarray(x) for x in jax.tree.leaves(jax.grad(loss)(params, fused))]
    # One scale for all leaves: some (the key bias) are zero up to rounding by construction.
    scale = max(np.abs(a).max() for a in g_einsum)
    assert scale > 1e-2
    for a, b in zip(g_einsum, g_fused, strict=True):
        assert np.isfinite(b).all()
        assert np.abs(a - b).max() <= 1e-5 * scale


def test_chunked_mlp_matches_transformers_and_unchunked_gradients(family_dir):
    """`mlp_chunk` (positions through the MLP a chunk at a time, a length it does not divide)
    gives transformers' logits on a left-padded batch, and the whole-row MLP's gradients."""
    cfg, params = hf_io.load_hf(family_dir)
    tok = hf_io.load_tokenizer(family_dir)
    ids, mask = left_pad(tok, PROMPTS)
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
    chunked = cfg.replace(mlp_chunk=7)
    assert ids.shape[1] > 7 and ids.shape[1] % 7, "the row must span chunks, the last one partial"
    args = (jnp.asarray(ids), jnp.asarray(pos), jnp.asarray(mask))
    ours, _ = model_lib.forward(params, chunked, *args)
    ref = _hf_logits(family_dir, ids, mask, pos)
    assert np.abs(np.asarray(ours) - ref)[mask].max() <= 1e-4

    def loss(p, c):
        h, _ = model_lib.hidden_states(p, c, *args, remat=True)
        return jnp.sum(jnp.where(args[2][..., None], h, 0.0) ** 2)

    g_whole = jax.tree.leaves(jax.grad(loss)(params, cfg))
    g_chunk = jax.tree.leaves(jax.grad(loss)(params, chunked))
    scale = max(float(np.abs(a).max()) for a in g_whole)
    assert scale > 1e-2
    for a, b in zip(g_whole, g_chunk, strict=True):
        assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 1e-5 * scale


def test_remat_offload_gradients_equal_remat(qwen2_dir):
    """`remat_offload` (each block's saved input in pinned host memory; on CPU the same memory)
    changes where the residuals live, not the numbers: gradients equal plain remat's."""
    cfg, params = hf_io.load_hf(qwen2_dir)
    tok = hf_io.load_tokenizer(qwen2_dir)
    ids, mask = left_pad(tok, PROMPTS)
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
    args = (jnp.asarray(ids), jnp.asarray(pos), jnp.asarray(mask))

    def loss(p, c):
        h, _ = model_lib.hidden_states(p, c, *args, remat=True)
        return jnp.sum(jnp.where(args[2][..., None], h, 0.0) ** 2)

    plain = jax.tree.leaves(jax.jit(jax.grad(loss), static_argnums=1)(params, cfg))
    off = cfg.replace(remat_offload=True)
    moved = jax.tree.leaves(jax.jit(jax.grad(loss), static_argnums=1)(params, off))
    assert max(float(np.abs(a).max()) for a in plain) > 1e-2
    for a, b in zip(plain, moved, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-7)


def test_num_params_matches_transformers(family_dir):
    cfg = hf_io.load_config(family_dir)
    hf = tf.AutoModelForCausalLM.from_pretrained(family_dir)
    assert cfg.num_params == sum(p.numel() for p in hf.parameters())
    leaves = jax.tree_util.tree_leaves(model_lib.abstract_params(cfg))
    assert cfg.num_params == sum(int(np.prod(x.shape)) for x in leaves)


@pytest.mark.parametrize("chunks", [(5, 1, 1, 1), (3, 4, 1)])
def test_cached_incremental_forward_equals_full_forward(qwen2_dir, chunks):
    """Feeding a left-padded batch chunk by chunk through the KV cache gives the full logits."""
    cfg, params = hf_io.load_hf(qwen2_dir)
    rng = np.random.default_rng(0)
    total = sum(chunks)
    ids = rng.integers(2, 200, size=(3, total)).astype(np.int32)
    mask = np.ones((3, total), bool)
    mask[1, :2] = False  # left padding
    mask[2, :4] = False
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
    full, _ = model_lib.forward(params, cfg, jnp.asarray(ids), jnp.asarray(pos), jnp.asarray(mask))
    cache = model_lib.init_cache(cfg, 3, total + 3)
    kv_mask = np.zeros((3, total + 3), bool)
    kv_mask[:, :total] = mask
    start, outs = 0, []
    for c in chunks:
        sl = slice(start, start + c)
        logits, cache = model_lib.forward(
            params,
            cfg,
            jnp.asarray(ids[:, sl]),
            jnp.asarray(pos[:, sl]),
            jnp.asarray(kv_mask),
            cache,
            jnp.int32(start),
        )
        outs.append(np.asarray(logits))
        start += c
    inc = np.concatenate(outs, axis=1)
    assert np.abs(inc - np.asarray(full))[mask].max() < 1e-5


def test_bfloat16_compute_is_close(qwen2_dir):
    cfg, params = hf_io.load_hf(qwen2_dir, param_dtype="bfloat16", dtype="bfloat16")
    cfg32, params32 = hf_io.load_hf(qwen2_dir)
    assert jax.tree_util.tree_leaves(params)[0].dtype == jnp.bfloat16
    ids = jnp.arange(2, 18, dtype=jnp.int32).reshape(2, 8)
    mask = jnp.ones_like(ids, bool)
    pos = model_lib.positions_from_mask(mask)
    lo, _ = model_lib.forward(params, cfg, ids, pos, mask)
    hi, _ = model_lib.forward(params32, cfg32, ids, pos, mask)
    assert lo.dtype == jnp.float32
    assert float(jnp.abs(lo - hi).max()) < 0.25  # bf16 keeps ~3 significant digits


def test_pad_content_does_not_change_real_positions(qwen2_dir):
    cfg, params = hf_io.load_hf(qwen2_dir)
    ids = np.arange(2, 26, dtype=np.int32).reshape(2, 12)
    mask = np.ones_like(ids, bool)
    mask[0, :5] = False
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
    a, _ = model_lib.forward(params, cfg, jnp.asarray(ids), jnp.asarray(pos), jnp.asarray(mask))
    ids2 = ids.copy()
    ids2[0, :5] = 999
    b, _ = model_lib.forward(params, cfg, jnp.asarray(ids2), jnp.asarray(pos), jnp.asarray(mask))
    assert np.array_equal(np.asarray(a)[mask], np.asarray(b)[mask])
    assert np.isfinite(np.asarray(b)).all()


def _packed_row(lengths, vocab, seed=0, pad_to=None):
    """One row of back-to-back episodes of `lengths` tokens: ids, segment ids, positions [1, T]."""
    rng = np.random.default_rng(seed)
    total = pad_to or sum(lengths)
    ids = np.ones((1, total), np.int32)  # 1: padding after the episodes
    seg = np.zeros((1, total), np.int32)
    pos = np.zeros((1, total), np.int32)
    at = 0
    for k, n in enumerate(lengths):
        ids[0, at : at + n] = rng.integers(2, vocab, n)
        seg[0, at : at + n] = k + 1
        pos[0, at : at + n] = np.arange(n)
        at += n
    return ids, seg, pos


@pytest.mark.parametrize("attention", ["einsum", "xla"])
def test_segments_are_isolated(qwen2_dir, attention):
    """Changing one episode of a packed row changes its own logits and no other episode's."""
    cfg, params = hf_io.load_hf(qwen2_dir)
    cfg = cfg.replace(attention=attention)
    ids, seg, pos = _packed_row([5, 7, 4], cfg.vocab_size, pad_to=19)
    mask = seg > 0

    def run(x):
        out, _ = model_lib.forward(params, cfg, x, pos, mask, segment_ids=seg)
        return np.asarray(out)

    a = run(ids)
    ids2 = ids.copy()
    ids2[0, 5:12] = (ids[0, 5:12] + 17) % cfg.vocab_size  # episode 2 only
    b = run(ids2)
    other = (seg[0] == 1) | (seg[0] == 3)
    assert np.array_equal(a[0, other], b[0, other])
    assert np.abs(a[0, seg[0] == 2] - b[0, seg[0] == 2]).max() > 1e-3
    assert np.isfinite(b).all()  # the pad positions too


def test_packed_row_matches_transformers_per_episode(family_dir):
    """Each episode's logits in a packed row equal transformers' logits of that episode alone."""
    cfg, params = hf_io.load_hf(family_dir)
    lengths = [6, 9, 3]
    ids, seg, pos = _packed_row(lengths, cfg.vocab_size, seed=3, pad_to=20)
    ours, _ = model_lib.forward(params, cfg, ids, pos, seg > 0, segment_ids=seg)
    ours = np.asarray(ours)
    hf = tf.AutoModelForCausalLM.from_pretrained(family_dir, dtype=torch.float32).eval()
    for k in range(len(lengths)):
        sel = seg[0] == k + 1
        with torch.no_grad():
            ref = hf(input_ids=torch.tensor(ids[:, sel], dtype=torch.long)).logits.numpy()
        assert np.abs(ref).mean() > 0.3
        assert np.abs(ours[0, sel] - ref[0]).max() <= 1e-4, f"episode {k + 1}"
    with pytest.raises(ValueError, match="cache=None"):
        cache = model_lib.init_cache(cfg, 1, 20)
        model_lib.forward(params, cfg, ids, pos, seg > 0, cache, 0, segment_ids=seg)
