"""The host side of generation: buckets, left-padded encoding, detokenizing (no device work)."""

import types

import numpy as np
import pytest

from azr_jax.model import hf_io
from azr_jax.parallel import sharding as shd
from azr_jax.sampling.generate import Generator, length_buckets
from azr_jax.sampling.settings import SamplingSettings


def _generator(qwen2_dir, mesh=None, buckets=None) -> Generator:
    # Only the attributes the host side reads; nothing is sampled here.
    sampler = types.SimpleNamespace(max_cache_length=256, mesh=mesh, cfg=None)
    return Generator(sampler, hf_io.load_tokenizer(qwen2_dir), prompt_buckets=buckets)


def test_length_buckets():
    assert length_buckets(100) == (16, 32, 64, 128)
    assert length_buckets(16) == (16,)
    assert length_buckets(17, smallest=8) == (8, 16, 32)


def test_batch_bucket_rounds_to_powers_of_two_and_the_mesh(qwen2_dir):
    g = _generator(qwen2_dir)
    assert [g.batch_bucket(n) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, 16]
    g = _generator(qwen2_dir, mesh=shd.make_mesh(data=2, fsdp=2, tensor=2))  # 4 batch shards
    assert [g.batch_bucket(n) for n in (1, 3, 4, 5)] == [4, 4, 4, 8]


def test_encode_left_pads_into_buckets(qwen2_dir):
    g = _generator(qwen2_dir, buckets=(8, 32))
    tok = g.tokenizer
    texts = ["def f(x):", "return [x, x + 1] * 2", "a"]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    tokens, lengths = g.encode(texts, pad_id=1)
    p = 8 if max(map(len, ids)) <= 8 else 32
    assert tokens.shape == (4, p)  # 3 prompts -> a batch bucket of 4, the extra row empty
    assert lengths.tolist() == [len(x) for x in ids] + [0]
    for row, x in enumerate(ids):
        assert tokens[row, p - len(x) :].tolist() == x
        assert (tokens[row, : p - len(x)] == 1).all()
    assert (tokens[3] == 1).all()


def test_encode_errors_name_the_fix(qwen2_dir):
    g = _generator(qwen2_dir, buckets=(4,))
    with pytest.raises(ValueError, match="more than the largest prompt bucket 4; shorten it"):
        g.encode(["def f(x):\n    return x * 2 + 1"], pad_id=1)
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        g.encode(["a", ""], pad_id=1)


def test_detokenize_drops_eos_and_cuts_after_the_stop_string(qwen2_dir):
    g = _generator(qwen2_dir)
    tok = g.tokenizer
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    settings = SamplingSettings(eos_ids=(eos,), stop_strings=("</answer>",))
    ids = tok("<answer>42</answer> and more", add_special_tokens=False)["input_ids"]
    assert g.detokenize(np.array(ids), settings) == "<answer>42</answer>"
    ids = tok("plain", add_special_tokens=False)["input_ids"] + [eos]
    assert g.detokenize(np.array(ids), settings) == "plain"
