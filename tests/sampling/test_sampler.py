"""The sampler against transformers, teacher forcing, statistics, meshes and stop rules."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.model import hf_io
from azr_jax.model import transformer as model_lib
from azr_jax.parallel import sharding as shd
from azr_jax.sampling import sampler as sampler_lib
from azr_jax.sampling.generate import Generator
from azr_jax.sampling.sampler import Sampler
from azr_jax.sampling.settings import SamplingSettings, settings_from_model_dir

PROMPTS = [
    "def add(a, b):\n    return",
    "import os",
    "class Foo(object):\n    def __init__(self, x):\n        self.x = x\n",
]


@pytest.fixture(scope="module")
def qwen2(qwen2_dir):
    cfg, params = hf_io.load_hf(qwen2_dir)
    tokenizer = hf_io.load_tokenizer(qwen2_dir)
    return cfg, params, tokenizer, Generator(Sampler(cfg), tokenizer)


def _batch(tokenizer, texts, pad_id, p=32):
    """Left-padded [B, p] ids and [B] lengths."""
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    tokens = np.full((len(ids), p), pad_id, np.int32)
    for row, x in enumerate(ids):
        tokens[row, p - len(x) :] = x
    return tokens, np.array([len(x) for x in ids], np.int32)


def test_greedy_matches_transformers(family_dir):
    import torch
    from transformers import AutoModelForCausalLM

    cfg, params = hf_io.load_hf(family_dir)
    tokenizer = hf_io.load_tokenizer(family_dir)
    settings = settings_from_model_dir(family_dir, greedy=True, max_new_tokens=12)
    gen = Generator(Sampler(cfg), tokenizer).generate(params, PROMPTS, jax.random.key(0), settings)

    hf = AutoModelForCausalLM.from_pretrained(family_dir, dtype=torch.float32).eval()
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = hf.generate(**enc, do_sample=False, max_new_tokens=12)
    ref = np.full((len(PROMPTS), 12), settings.pad_id, np.int32)
    new = out[:, enc["input_ids"].shape[1] :].numpy()
    ref[:, : new.shape[1]] = new
    np.testing.assert_array_equal(gen.tokens, ref)


def _teacher_forced(params, cfg, prompt_tokens, prompt_lengths, tokens, lengths):
    """Log-probs [R, N] of `tokens` under one forward pass over prompt + tokens."""
    p, n = prompt_tokens.shape[1], tokens.shape[1]
    pmask = np.arange(p)[None] >= (p - prompt_lengths)[:, None]
    mask = jnp.asarray(np.concatenate([pmask, np.arange(n)[None] < lengths[:, None]], 1))
    seq = jnp.asarray(np.concatenate([prompt_tokens, tokens], 1))
    logits, _ = model_lib.forward(params, cfg, seq, model_lib.positions_from_mask(mask), mask)
    logp = jax.nn.log_softmax(logits[:, p - 1 : -1], axis=-1)
    return np.asarray(jnp.take_along_axis(logp, seq[:, p:, None], axis=-1)[..., 0])


def test_xla_attention_prefill_gives_the_same_samples(qwen2):
    """With `attention="xla"` the prefill runs on jax.nn.dot_product_attention (decode keeps
    the cache path): the same tokens, log-probs that equal a teacher-forced forward."""
    cfg, params, tokenizer, _ = qwen2
    fused = cfg.replace(attention="xla")
    settings = SamplingSettings(max_new_tokens=10, n=2, eos_ids=(0,), top_k=50)
    ref = Generator(Sampler(cfg), tokenizer).generate(params, PROMPTS, jax.random.key(3), settings)
    out = Generator(Sampler(fused), tokenizer).generate(
        params, PROMPTS, jax.random.key(3), settings
    )
    np.testing.assert_array_equal(out.tokens, ref.tokens)
    mask = np.arange(10)[None] < out.lengths[:, None]
    np.testing.assert_allclose(out.logprobs[mask], ref.logprobs[mask], atol=1e-5)


def test_logprobs_match_teacher_forcing(qwen2):
    cfg, params, tokenizer, gen = qwen2
    settings = SamplingSettings(max_new_tokens=10, n=2, eos_ids=(0,), top_k=50)
    out = gen.generate(params, PROMPTS, jax.random.key(1), settings)
    mask = np.arange(10)[None] < out.lengths[:, None]
    ref = _teacher_forced(
        params,
        cfg,
        np.repeat(out.prompt_tokens, 2, 0),
        np.repeat(out.prompt_lengths, 2),
        out.tokens,
        out.lengths,
    )
    np.testing.assert_allclose(out.logprobs[mask], ref[mask], atol=1e-4)
    assert np.all(out.logprobs[~mask] == 0)


def test_pad_ids_and_contents_change_nothing(qwen2):
    cfg, params, tokenizer, gen = qwen2
    settings = SamplingSettings(max_new_tokens=8, n=2, top_p=0.9)
    tokens, lengths = _batch(tokenizer, PROMPTS + ["x = 1"], pad_id=1)
    rng = np.random.default_rng(0)
    noisy = np.where(tokens == 1, rng.integers(0, cfg.vocab_size, tokens.shape), tokens)
    outs = [
        gen.sampler(params, t, lengths, jax.random.key(2), settings)
        for t in (tokens, np.where(tokens == 1, 0, tokens), noisy)
    ]
    for other in outs[1:]:
        np.testing.assert_array_equal(other.tokens, outs[0].tokens)
        np.testing.assert_array_equal(other.logprobs, outs[0].logprobs)


@pytest.mark.parametrize(
    "mesh_shape, rules",
    [((2, 2, 2), None), ((1, 8, 1), shd.TRAIN_RULES), ((4, 1, 2), None)],
    ids=["data2-fsdp2-tensor2", "fsdp8-train-rules", "data4-tensor2"],
)
def test_sharded_matches_unsharded(qwen2, mesh_shape, rules):
    cfg, params, tokenizer, gen = qwen2
    texts = PROMPTS + ["x = 1", "for i in range(10):", "print(", "return None", "# comment"]
    tokens, lengths = _batch(tokenizer, texts, pad_id=1)
    settings = SamplingSettings(max_new_tokens=8, n=2, top_k=20, eos_ids=(0,))
    ref = gen.sampler(params, tokens, lengths, jax.random.key(3), settings)
    mesh = shd.make_mesh(*mesh_shape)
    sharded = Sampler(cfg, mesh, rules=rules)
    out = sharded(params, tokens, lengths, jax.random.key(3), settings)
    assert out.tokens.sharding.spec[0] == shd.BATCH_AXES
    np.testing.assert_array_equal(out.tokens, ref.tokens)
    np.testing.assert_array_equal(out.lengths, ref.lengths)
    np.testing.assert_allclose(out.logprobs, ref.logprobs, atol=1e-5)


def _expected_first_token(logits, temperature, top_k, top_p):
    """The truncated, renormalised softmax, computed independently with numpy (float64)."""
    z = np.asarray(logits, np.float64) / temperature
    order = np.argsort(-z, kind="stable")
    keep = np.zeros(z.shape, bool)
    k = top_k or z.size
    probs = np.exp(z[order[:k]] - z[order[0]])
    probs /= probs.sum()
    before = np.cumsum(probs) - probs
    keep[order[:k][before < top_p]] = True
    p = np.where(keep, np.exp(z - z.max()), 0.0)
    return p / p.sum()


def test_top_p_without_sort_keeps_the_sorted_set():
    """The sort-free top-p cut (bisection) keeps exactly the set of the sorted rule (numpy,
    float64): ties at the cut, -inf (top-k'd) tokens, scales from flat to peaked. Rows whose
    mass lands within 1e-5 of top_p are skipped: there float32 rounding may move the cut."""
    rng = np.random.default_rng(0)
    truncate = jax.jit(sampler_lib._truncate, static_argnums=(1, 2))
    checked = 0
    for v in (7, 50, 1000, 32000):
        x = rng.normal(size=(12, v)) * np.repeat([0.1, 1.0, 5.0], 4)[:, None]
        x[::2] = np.round(x[::2] * 2) / 2  # many ties
        x[::3, : v // 3] = -np.inf
        x = x.astype(np.float32)
        for top_p in (0.05, 0.5, 0.95):
            got = np.asarray(truncate(jnp.asarray(x), 0, top_p))
            for row, out in zip(x, got, strict=True):
                z = row.astype(np.float64)
                s = np.sort(z)[::-1]
                p = np.exp(s - s[0]) / np.exp(s - s[0]).sum()
                before = np.cumsum(p) - p
                if np.min(np.abs(before - top_p)) < 1e-5:
                    continue
                cut = s[(before < top_p).sum() - 1]
                np.testing.assert_array_equal(np.isfinite(out), z >= cut)
                np.testing.assert_array_equal(out[z >= cut], row[z >= cut])
                checked += 1
    assert checked > 100, checked


@pytest.mark.parametrize(
    "temperature, top_k, top_p", [(0.7, 5, 1.0), (1.5, 0, 0.6), (1.0, 20, 0.8), (2.0, 0, 1.0)]
)
def test_first_token_distribution(qwen2, temperature, top_k, top_p):
    """Each token count is Binomial(R, p): we allow 5 sigma (two-sided false alarm 6e-7 per
    token, so < 1e-4 over every token and setting here; the seed is fixed anyway), plus 1/R for
    rounding. A wrong temperature or cut moves some p by far more than 5 sigma (<= 0.028)."""
    cfg, params, tokenizer, gen = qwen2
    r = 8192
    tokens, lengths = _batch(tokenizer, ["def f(x):"], pad_id=1, p=16)
    settings = SamplingSettings(max_new_tokens=1, n=r, temperature=temperature, top_k=top_k,
                                top_p=top_p)  # fmt: skip
    out = gen.sampler(params, tokens, lengths, jax.random.key(4), settings)
    logits, _ = model_lib.forward(
        params, cfg, jnp.asarray(tokens), jnp.asarray(np.arange(16)[None] - (16 - lengths[0])),
        jnp.asarray(np.arange(16)[None] >= 16 - lengths[0]),
    )  # fmt: skip
    p = _expected_first_token(logits[0, -1], temperature, top_k, top_p)
    freq = np.bincount(np.asarray(out.tokens[:, 0]), minlength=cfg.vocab_size) / r
    assert np.all(freq[p == 0] == 0), "sampled a token outside the top-k / top-p set"
    sigma = np.sqrt(p * (1 - p) / r)
    assert np.all(np.abs(freq - p) <= 5 * sigma + 1 / r), np.max(np.abs(freq - p) / (sigma + 1e-9))


def test_n_samples_differ_and_share_the_prompt(qwen2):
    cfg, params, tokenizer, gen = qwen2
    out = gen.generate(params, PROMPTS[:2], jax.random.key(5), SamplingSettings(12, n=4))
    assert out.tokens.shape == (8, 12)
    for b in range(2):
        rows = {tuple(t) for t in out.tokens[4 * b : 4 * b + 4]}
        assert len(rows) == 4, "n samples of one prompt should differ"
    raw = gen.generate(params, PROMPTS[:2], jax.random.PRNGKey(5), SamplingSettings(12, n=4))
    np.testing.assert_array_equal(raw.tokens, out.tokens)  # a raw uint32 key is the same key


def _find_stop(tokenizer, ids):
    """A stop string spanning a token boundary and ending inside token k: (string, k)."""
    full = tokenizer.decode(ids)
    for k in range(2, len(ids)):
        a, b = len(tokenizer.decode(ids[:k])), len(tokenizer.decode(ids[: k + 1]))
        if b - a >= 2 and a >= 1:
            stop = full[a - 1 : b - 1]
            if "\ufffd" not in stop and full.find(stop) + len(stop) == b - 1:
                return stop, k
    raise AssertionError(f"no usable stop string in {full!r}")


def test_stop_strings_and_eos_end_rows_exactly(qwen2):
    cfg, params, tokenizer, gen = qwen2
    greedy = SamplingSettings(max_new_tokens=16, greedy=True, pad_id=1)
    free = gen.generate(params, PROMPTS, jax.random.key(0), greedy)
    for row in range(len(PROMPTS)):
        ids = [int(i) for i in free.tokens[row]]
        stop, k = _find_stop(tokenizer, ids)
        got = gen.generate(params, PROMPTS, jax.random.key(0), greedy.replace(stop_strings=(stop,)))
        assert got.lengths[row] == k + 1, (stop, k, got.lengths[row])
        assert list(got.tokens[row, : k + 1]) == ids[: k + 1]
        assert np.all(got.tokens[row, k + 1 :] == 1)
        text = tokenizer.decode(ids)
        assert got.texts[row] == text[: text.find(stop) + len(stop)]
        eos = ids[k]
        got = gen.generate(params, PROMPTS, jax.random.key(0), greedy.replace(eos_ids=(eos,)))
        first = ids.index(eos)
        assert got.lengths[row] == first + 1
        assert got.texts[row] == tokenizer.decode(ids[:first])


def test_stop_string_inside_the_prompt_does_not_stop(qwen2):
    cfg, params, tokenizer, gen = qwen2
    prompt = ["<answer>1</answer>"]
    settings = SamplingSettings(max_new_tokens=6, greedy=True)
    free = gen.generate(params, prompt, jax.random.key(0), settings)
    assert "</answer>" not in free.texts[0]
    got = gen.generate(
        params, prompt, jax.random.key(0), settings.replace(stop_strings=("</answer>",))
    )
    assert got.lengths[0] == 6 and got.texts == free.texts


def cache_copies(hlo: str, shape: str) -> list[str]:
    """The `copy` instructions of a compiled program's text whose result has this shape."""
    pattern = re.compile(r"= " + re.escape(shape) + r"(\{[^}]*\})? copy\(")
    return [line.strip() for line in hlo.splitlines() if pattern.search(line)]


def test_decode_updates_the_cache_in_place(qwen2):
    """The compiled decode loop writes each new key/value into the donated cache: no copy of a
    cache-shaped buffer anywhere (one per step would cost a full cache write). The detector
    itself is checked on a loop that must copy (it keeps the cache it was given)."""
    cfg, params, _, _ = qwen2
    sampler = Sampler(cfg, max_cache_length=48)
    tokens, lengths = jnp.ones((2, 32), jnp.int32), jnp.full((2,), 32, jnp.int32)
    settings = SamplingSettings(max_new_tokens=16, greedy=True)
    _, decode = sampler.compile(params, tokens, lengths, jax.random.key(0), settings)
    shape = f"f32[2,{cfg.num_kv_heads},48,{cfg.head_dim}]"
    assert cache_copies(decode.as_text(), shape) == []
    cache = jnp.zeros((2, cfg.num_kv_heads, 48, cfg.head_dim))
    new = jnp.ones((2, cfg.num_kv_heads, 1, cfg.head_dim))

    def keeps_old(c):
        body = lambda i, c: jax.lax.dynamic_update_slice(c, new, (0, 0, i, 0))  # noqa: E731
        return jax.lax.fori_loop(0, 4, body, c), c

    assert cache_copies(jax.jit(keeps_old).lower(cache).compile().as_text(), shape)


def test_clear_errors(qwen2):
    cfg, params, tokenizer, gen = qwen2
    tokens, lengths = _batch(tokenizer, PROMPTS, pad_id=1)
    with pytest.raises(ValueError, match="exceeds the cache length"):
        gen.sampler(params, tokens, lengths, jax.random.key(0),
                    SamplingSettings(cfg.max_position_embeddings))  # fmt: skip
    with pytest.raises(ValueError, match="does not divide over the mesh"):
        Sampler(cfg, shd.make_mesh(2, 2, 2))(
            params, tokens, lengths, jax.random.key(0), SamplingSettings(4)
        )
    with pytest.raises(ValueError, match="num_key_value_heads=2 does not divide"):
        Sampler(cfg, shd.make_mesh(1, 2, 4))
    with pytest.raises(ValueError, match="needs a stop table"):
        gen.sampler(params, tokens, lengths, jax.random.key(0),
                    SamplingSettings(4, stop_strings=("x",)))  # fmt: skip
    with pytest.raises(ValueError, match="temperature"):
        SamplingSettings(temperature=0.0)
