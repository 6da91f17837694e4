"""The splash-attention kernel (interpret mode on CPU) against numpy, transformers and einsum.

Interpret mode runs the Pallas kernel as plain JAX ops: slow, so shapes stay tiny (T <= 256,
one 128-token block).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers as tf

from azr_jax.model import hf_io
from azr_jax.model import transformer as model_lib
from azr_jax.model.config import resolve_attention
from azr_jax.model.parity import PROMPTS, left_pad
from azr_jax.model.splash import splash_attention
from azr_jax.parallel import sharding as shd


def _reference(q, k, v, seg):
    """float64 numpy attention: causal, within segments, KV heads repeated by hand."""
    q, k, v, seg = (np.asarray(x, np.float64) for x in (q, k, v, seg))
    t, n, h = q.shape[1:]
    g = n // k.shape[2]
    k, v = np.repeat(k, g, axis=2), np.repeat(v, g, axis=2)
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(h)
    causal = np.arange(t)[None, :] <= np.arange(t)[:, None]  # [T, S]
    allowed = causal[None] & (seg[:, :, None] == seg[:, None, :])  # [B, T, S]
    scores = np.where(allowed[:, None], scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    return np.einsum("bnts,bsnh->btnh", p / p.sum(-1, keepdims=True), v)


def _jnp_reference(q, k, v, seg):
    """The same rule in jnp (float32), differentiable: the gradients' reference."""
    t, n, h = q.shape[1:]
    g = n // k.shape[2]
    k, v = jnp.repeat(k, g, axis=2), jnp.repeat(v, g, axis=2)
    scores = jnp.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(h)
    causal = jnp.arange(t)[None, :] <= jnp.arange(t)[:, None]
    allowed = causal[None] & (seg[:, :, None] == seg[:, None, :])
    scores = jnp.where(allowed[:, None], scores, -1e30)
    return jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(scores, -1), v)


def _inputs(t=200):
    """Grouped-query q/k/v (4 query heads over 2 KV heads) and segments: one left-padded row,
    one packed row of two episodes with trailing padding. T=200 is not a block multiple."""
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, t, 4, 16)).astype(np.float32)
    k, v = (rng.normal(size=(2, t, 2, 16)).astype(np.float32) for _ in range(2))
    seg = np.ones((2, t), np.int32)
    seg[0, :37] = 0
    seg[1, 100:150], seg[1, 150:] = 2, 0
    return q, k, v, seg


def test_splash_equals_numpy_and_its_gradients_equal_jnp():
    q, k, v, seg = _inputs()
    out = splash_attention(q, k, v, seg, interpret=True)
    assert out.shape == q.shape and out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out), _reference(q, k, v, seg), atol=1e-5)

    w = np.random.default_rng(1).normal(size=q.shape).astype(np.float32)

    def loss(fn):
        return lambda q, k, v: jnp.sum(w * fn(q, k, v))

    ours = jax.grad(loss(lambda *a: splash_attention(*a, seg, interpret=True)), (0, 1, 2))(q, k, v)
    ref = jax.grad(loss(lambda *a: _jnp_reference(*a, jnp.asarray(seg))), (0, 1, 2))(q, k, v)
    for a, b in zip(ours, ref, strict=True):
        assert np.abs(np.asarray(b)).max() > 1e-2
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5)


def test_bad_shapes_are_named():
    q, k, v, seg = _inputs(t=128)
    with pytest.raises(ValueError, match=r"K dividing N"):
        splash_attention(q, k[:, :, :1].repeat(3, 2), v[:, :, :1].repeat(3, 2), seg, interpret=True)
    with pytest.raises(ValueError, match=r"segment_ids .* must be \[B, T\]"):
        splash_attention(q, k, v, seg[:, :64], interpret=True)


def test_splash_logits_match_transformers_on_a_padded_batch(family_dir):
    cfg, params = hf_io.load_hf(family_dir)
    cfg = cfg.replace(attention="splash")
    ids, mask = left_pad(hf_io.load_tokenizer(family_dir), PROMPTS)
    assert (~mask).any(), "the batch must contain padding"
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
    ours, _ = model_lib.forward(params, cfg, jnp.asarray(ids), jnp.asarray(pos), jnp.asarray(mask))
    assert np.isfinite(np.asarray(ours)).all()  # pad rows too
    hf = tf.AutoModelForCausalLM.from_pretrained(family_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = hf(
            input_ids=torch.tensor(ids, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
            position_ids=torch.tensor(pos, dtype=torch.long),
        ).logits.numpy()
    assert np.abs(ref[mask]).mean() > 0.3
    assert np.abs(np.asarray(ours) - ref)[mask].max() <= 1e-4


def _batch():
    ids = np.arange(2, 2 + 8 * 24, dtype=np.int32).reshape(8, 24) % 2000
    mask = np.ones_like(ids, bool)
    mask[::3, :5] = False  # left padding on some rows
    return ids, np.maximum(np.cumsum(mask, -1) - 1, 0), mask


def test_splash_gradients_equal_the_einsum_path(qwen2_dir):
    cfg, params = hf_io.load_hf(qwen2_dir)
    ids, pos, mask = _batch()

    def loss(p, c):
        logits, _ = model_lib.forward(p, c, ids, pos, mask)
        return jnp.sum(jnp.where(mask[..., None], jax.nn.log_softmax(logits, -1), 0.0)[..., :7])

    grad = jax.jit(jax.grad(loss), static_argnums=1)
    g_einsum = jax.tree.leaves(grad(params, cfg))
    g_splash = jax.tree.leaves(grad(params, cfg.replace(attention="splash")))
    scale = max(float(np.abs(a).max()) for a in g_einsum)
    assert scale > 1e-2
    for a, b in zip(g_einsum, g_splash, strict=True):
        assert np.isfinite(np.asarray(b)).all()
        assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 1e-5 * scale


@pytest.mark.parametrize("mesh_shape", [dict(data=2, fsdp=2, tensor=2), dict(data=1, fsdp=8)])
def test_sharded_splash_forward_equals_unsharded(qwen2_dir, mesh_shape):
    """On the fake 8-device mesh the kernel runs per device (shard_map): rows over data x fsdp,
    heads over tensor; the logits equal the unsharded einsum forward."""
    cfg, ref_params = hf_io.load_hf(qwen2_dir)
    ids, pos, mask = _batch()
    ref, _ = model_lib.forward(ref_params, cfg, ids, pos, mask)
    mesh = shd.make_mesh(**mesh_shape)
    _, params = hf_io.load_hf(qwen2_dir, mesh)
    want = shd.tree_shardings(model_lib.abstract_params(cfg), model_lib.param_axes(cfg), mesh)
    batch = shd.batch_sharding(mesh, 2)
    fwd = jax.jit(model_lib.forward, static_argnums=1, in_shardings=(want, batch, batch, batch))
    with jax.set_mesh(mesh):
        out, _ = fwd(params, cfg.replace(attention="splash"), ids, pos, mask)
        text = fwd.lower(params, cfg.replace(attention="splash"), ids, pos, mask).as_text()
    assert "shard_map" in text or "sdy.manual_computation" in text  # the kernel ran per device
    np.testing.assert_allclose(np.asarray(out)[mask], np.asarray(ref)[mask], atol=1e-5)


@pytest.mark.parametrize(
    ("backend", "dtype", "want"),
    [
        ("tpu", "bfloat16", "splash"),
        ("tpu", "float32", "splash"),
        ("gpu", "bfloat16", "cudnn"),
        ("gpu", "float32", "einsum"),
        ("cpu", "bfloat16", "einsum"),
        ("cpu", "float32", "einsum"),
    ],
)
def test_auto_attention_resolves_per_backend(backend, dtype, want):
    assert resolve_attention("auto", backend, dtype) == want
    assert resolve_attention("xla", backend, dtype) == "xla"  # an explicit choice stays


def test_auto_in_a_model_config_resolves_for_this_backend(qwen2_dir):
    assert jax.default_backend() == "cpu"
    assert hf_io.load_config(qwen2_dir, attention="auto").attention == "einsum"
    with pytest.raises(ValueError, match=r"attention 'flash' is not one of.*auto"):
        resolve_attention("flash", "cpu", "float32")


def test_splash_prefill_equals_einsum_and_fills_the_same_cache(qwen2_dir):
    """The sampler's prefill (a cache, cache_index 0) runs splash over the prompt: the same
    logits at real positions and the same cache as the einsum path."""
    cfg, params = hf_io.load_hf(qwen2_dir)
    ids, pos, mask = _batch()
    kv_mask = np.concatenate([mask, np.ones((8, 4), bool)], axis=1)  # 4 slots for new tokens
    out = {}
    for attention in ("einsum", "splash"):
        c = cfg.replace(attention=attention)
        cache = model_lib.init_cache(c, 8, 24 + 4)
        out[attention] = model_lib.forward(params, c, ids, pos, kv_mask, cache, 0)
    (ref, ref_cache), (got, got_cache) = out["einsum"], out["splash"]
    np.testing.assert_allclose(np.asarray(got)[mask], np.asarray(ref)[mask], atol=1e-5)
    # Real slots only: pad slots stay masked forever (their contents differ: an einsum pad query
    # averages over nothing, a splash one attends to the pads).
    real = np.broadcast_to(mask[:, None, :], (8, cfg.num_kv_heads, 24))
    for a, b in zip(jax.tree.leaves(ref_cache), jax.tree.leaves(got_cache), strict=True):
        a, b = np.asarray(a)[:, :, :24], np.asarray(b)[:, :, :24]  # [B, K, T, H]
        assert np.abs(a).max() > 0.1
        np.testing.assert_allclose(b[real], a[real], atol=1e-5)
