"""The locally built checkpoints: deterministic, loadable by transformers, O(1) logits."""

import hashlib

import numpy as np
import pytest
import torch
import transformers as tf

from azr_jax.model.tiny_checkpoint import PROMPT_TOKENS, SPECIAL, make_tiny_checkpoint
from tests.conftest import tiny_checkpoint


def _digest(model_dir) -> str:
    h = hashlib.sha256()
    for path in sorted(model_dir.glob("*.safetensors")):
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path):
    cached = tiny_checkpoint("qwen2")  # built by the shared fixture with seed 0
    again = make_tiny_checkpoint("qwen2", tmp_path / "a", seed=0)
    other = make_tiny_checkpoint("qwen2", tmp_path / "b", seed=1)
    assert _digest(again) == _digest(cached)
    assert _digest(other) != _digest(cached)
    assert (again / "tokenizer.json").read_bytes() == (cached / "tokenizer.json").read_bytes()


def test_transformers_loads_it_with_o1_logits_and_whole_prompt_tags(family_dir):
    model = tf.AutoModelForCausalLM.from_pretrained(family_dir, dtype=torch.float32).eval()
    tok = tf.AutoTokenizer.from_pretrained(family_dir)
    ids = tok("def f(x):\n    return x", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits.numpy()
    assert np.isfinite(logits).all() and 0.3 < logits.std() < 5.0  # parity checks mean something
    for tag in PROMPT_TOKENS + list(SPECIAL.values()):
        assert len(tok(tag, add_special_tokens=False).input_ids) == 1, tag
    assert model.config.vocab_size >= len(tok)


def test_unknown_preset_is_named(tmp_path):
    with pytest.raises(ValueError, match="preset 'huge' is not one of"):
        make_tiny_checkpoint("qwen2", tmp_path, preset="huge")
