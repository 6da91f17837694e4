"""Sampling settings read from a model directory, with overrides."""

import pytest

from azr_jax.sampling.settings import settings_from_model_dir


def test_settings_from_model_dir(qwen2_dir):
    s = settings_from_model_dir(qwen2_dir)
    assert s.eos_ids == (0,) and s.pad_id == 1 and not s.greedy
    s = settings_from_model_dir(qwen2_dir, greedy=True, stop_strings=["</answer>"])
    assert s.greedy and s.stop_strings == ("</answer>",)
    with pytest.raises(ValueError, match="unknown sampling setting"):
        settings_from_model_dir(qwen2_dir, temprature=0.5)
