"""The warm start's training: deterministic, cached by recipe, a checkpoint transformers agrees
with, and a loss that is next-token cross-entropy on the response only."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.executor.program import DEFAULT_BANNED
from azr_jax.model import hf_io
from azr_jax.model import transformer as model_lib
from azr_jax.model.parity import compare
from azr_jax.warmstart import train
from tests.conftest import SMALL_WARMSTART, small_warmstart

SHORT = train.Recipe(**{**SMALL_WARMSTART, "steps": 6, "banned_modules": DEFAULT_BANNED})


def test_shortened_recipe_is_deterministic_and_cached(tmp_path):
    a = train.build_warmstart(SHORT, tmp_path / "a", progress=False)
    # The second build in another process with another hash seed: what two `make train`s do.
    code = (
        "import sys; from tests.warmstart.test_train import SHORT; from azr_jax.warmstart import"
        " train; print(train.build_warmstart(SHORT, sys.argv[1], progress=False))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "JAX_PLATFORMS": "cpu"}
    root = pathlib.Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "b")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    b = pathlib.Path(out.stdout.strip().splitlines()[-1])
    assert a.name == b.name == SHORT.digest()
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    info = json.loads((a / train.DONE_FILE).read_text())
    assert info["recipe"]["steps"] == 6 and info["cpu_seconds"] > 0
    stamp = (a / train.DONE_FILE).stat().st_mtime_ns
    assert train.build_warmstart(SHORT, tmp_path / "a", progress=False) == a  # a cache hit
    assert (a / train.DONE_FILE).stat().st_mtime_ns == stamp
    assert dataclasses.replace(SHORT, steps=7).digest() != SHORT.digest()


def test_memorised_warmstart_loads_in_transformers_with_the_same_logits():
    d = small_warmstart()
    result = compare(d)
    # Logits only: a memorised model ends its answers with EOS, which transformers' generate
    # (min_new_tokens) forbids and our greedy loop does not, so greedy tokens part at the EOS.
    assert result["max_abs_logit_diff"] <= 1e-4
    info = json.loads((d / train.DONE_FILE).read_text())
    # it learnt its corpus: the response loss fell far below its start (ln V at init)
    assert info["final_loss"]["propose"] < 0.2 * info["first_loss"]["propose"]
    assert info["final_loss"]["solve"] < 0.2 * info["first_loss"]["solve"]


P, R = 6, 4  # the loss tests' prompt and response widths


def _batch_and_reference(seed: int):
    """The shortened warm start, two rows of random tokens (left padding in row 0's prompt,
    right padding in row 1's response) and the float64 log-probs of a plain forward."""
    cfg, params = hf_io.load_hf(small_warmstart())
    tokens = np.random.default_rng(seed).integers(3, 200, size=(2, P + R)).astype(np.int32)
    attn = np.ones((2, P + R), bool)
    attn[0, :2] = False  # left padding: the first real token (2) has no prediction
    attn[1, P + 2 :] = False  # right padding in the response
    pos = np.maximum(np.cumsum(attn, -1) - 1, 0)
    logits, _ = model_lib.forward(params, cfg, tokens, pos, attn)
    logp = np.asarray(jax.nn.log_softmax(np.asarray(logits, np.float64), -1))
    return cfg, params, tokens, attn, logp


def test_response_loss_is_cross_entropy_on_the_response_only():
    cfg, params, tokens, attn, logp = _batch_and_reference(0)
    got = float(train.response_loss(params, cfg, jnp.asarray(tokens), jnp.asarray(attn), P))
    nll = [-logp[b, t - 1, tokens[b, t]] for b in range(2) for t in range(P, P + R) if attn[b, t]]
    assert got == pytest.approx(np.mean(nll), rel=1e-4)


def test_prompt_loss_scores_every_real_prompt_token_after_the_first():
    cfg, params, tokens, attn, logp = _batch_and_reference(1)
    resp, prompt = train.token_losses(params, cfg, jnp.asarray(tokens), jnp.asarray(attn), P, 1)

    def nll(ts):
        return np.mean([-logp[b, t - 1, tokens[b, t]] for b, t in ts])

    real = [(b, t) for b in range(2) for t in range(1, P + R) if attn[b, t] and attn[b, t - 1]]
    assert float(prompt) == pytest.approx(nll([(b, t) for b, t in real if t < P]), rel=1e-4)
    assert float(resp) == pytest.approx(nll([(b, t) for b, t in real if t >= P]), rel=1e-4)
    # response only: the same response mean, and no prompt term
    resp_only, zero = train.token_losses(params, cfg, tokens, attn, P, 0)
    assert float(resp_only) == pytest.approx(float(resp), rel=1e-5) and float(zero) == 0.0
    # every 2nd prompt state (0, 2, 4 predict tokens 1, 3, 5): the mean over those only
    _, strided = train.token_losses(params, cfg, tokens, attn, P, 2)
    assert float(strided) == pytest.approx(
        nll([(b, t) for b, t in real if t in (1, 3, 5)]), rel=1e-4
    )


def test_stream_rows_are_the_documents_back_to_back_with_eos():
    class Tok:  # one id per character: the expected stream is easy to write by hand
        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[ord(c) for c in t] for t in texts]}

    g = train.stream_group(["ab", "cde", "f", "ghij"], Tok(), 0, 4)
    flat = [97, 98, 0, 99, 100, 101, 0, 102, 0, 103, 104, 105, 106, 0]  # 14 tokens -> 3 rows
    np.testing.assert_array_equal(g.tokens, np.array(flat[:12]).reshape(3, 4))
    assert g.attn.all() and g.prompt_len == 1
    short = train.stream_group(["ab"], Tok(), 0, 8)  # shorter than a row: one row of it all
    np.testing.assert_array_equal(short.tokens, [[97, 98, 0]])
