"""ModelConfig.from_hf: what each family reads, rope scaling against transformers, clear errors."""

import numpy as np
import pytest
import transformers as tf
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from azr_jax.model.config import ModelConfig


def _llama(**kw):
    base = dict(
        hidden_size=256,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=512,
        num_hidden_layers=2,
        vocab_size=300,
        max_position_embeddings=131072,
    )
    return tf.LlamaConfig(**{**base, **kw})


@pytest.mark.parametrize(
    "scaling",
    [
        {"rope_type": "linear", "factor": 4.0},
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    ],
    ids=lambda s: s["rope_type"],
)
def test_rope_scaling_matches_transformers(scaling):
    hf = _llama(rope_scaling=dict(scaling), rope_theta=500000.0)
    ours = ModelConfig.from_hf(hf).rope_inv_freq()
    ref, attention_scaling = ROPE_INIT_FUNCTIONS[scaling["rope_type"]](hf, "cpu")
    assert attention_scaling == 1.0
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-6)


def test_default_rope_and_fields():
    cfg = ModelConfig.from_hf(_llama(rope_theta=1e6), dtype="bfloat16", attention="xla")
    h = cfg.head_dim
    np.testing.assert_allclose(
        cfg.rope_inv_freq(), 1.0 / 1e6 ** (np.arange(0, h, 2) / h), rtol=1e-6
    )
    assert (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim) == (4, 2, 64)
    assert (cfg.dtype, cfg.param_dtype, cfg.attention) == ("bfloat16", "float32", "xla")


@pytest.mark.parametrize(
    "hf, kw, pattern",
    [
        (tf.BertConfig(), {}, r"model_type 'bert' is not supported.*gpt2, llama, qwen2, qwen3"),
        (_llama(), {"dtype": "float8"}, r"dtype 'float8' is not one of"),
        (_llama(), {"attention": "flash"}, r"attention 'flash' is not one of.*einsum"),
        (
            tf.Qwen2Config(use_sliding_window=True),
            {},
            r"use_sliding_window=true is not supported; set it to false",
        ),
        (_llama(rope_scaling={"rope_type": "yarn", "factor": 2.0}), {}, r"rope type 'yarn'"),
        (_llama(num_key_value_heads=3), {}, r"not a multiple of num_key_value_heads=3"),
    ],
    ids=["model_type", "dtype", "attention", "sliding_window", "rope_type", "gqa"],
)
def test_unsupported_configs_name_the_problem(hf, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        ModelConfig.from_hf(hf, **kw)
