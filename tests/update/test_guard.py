"""The non-finite guard: a NaN reward or an inf log-prob leaves params and optimizer state as they were."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.model import hf_io
from azr_jax.parallel import sharding as shd
from azr_jax.update import guard
from azr_jax.update.pg_loss import PGBatch, PGLossConfig
from azr_jax.update.train_step import (
    TrainHparams,
    jit_init_state,
    jit_train_step,
    state_shardings,
)
from tests.update.rollouts import rollout_rows

P, R = 4, 8


def _batch(cfg, **override) -> PGBatch:
    rows = rollout_rows(8, P, R, cfg.vocab_size, seed=3)
    fields = dict(
        tokens=rows["tokens"],
        attn_mask=rows["attn_mask"],
        loss_mask=rows["loss_mask"],
        advantages=rows["advantages"],
        old_logprobs=np.full(rows["tokens"].shape, -2.0, np.float32),
        group_ids=rows["group_ids"],
        rewards=rows["rewards"],
        response_start=P,
    )
    fields.update(override)
    return PGBatch(**fields)


def _host(tree):
    """A numpy copy (the jitted step donates its input state)."""
    return jax.tree.map(lambda x: np.array(x), tree)


def _assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def setup(qwen2_dir):
    cfg, params = hf_io.load_hf(qwen2_dir)
    hp = TrainHparams(loss=PGLossConfig(), lr=1e-3)
    mesh = shd.make_mesh(1, 8, 1)
    step = jit_train_step(cfg, hp, mesh, guard=True)
    state = jit_init_state(cfg, hp, mesh)(jax.tree.map(jnp.array, params))
    # One good update first, so that the Adam moments and counters are non-trivial.
    state, m = step(state, _batch(cfg), jax.random.key(0))
    assert bool(m["applied"]) and int(m["nonfinite"]) == 0
    shardings = state_shardings(cfg, hp, mesh)
    host = _host(state)
    return cfg, step, lambda: jax.device_put(host, shardings)  # a fresh copy per test


def _nan_reward(cfg):
    rows = rollout_rows(8, P, R, cfg.vocab_size, seed=3)
    adv = rows["advantages"].copy()
    adv[0] = np.nan  # a NaN reward gives a NaN advantage for its row (TRR++ normalisation)
    rewards = rows["rewards"].copy()
    rewards[0] = np.nan
    return dict(advantages=adv, rewards=rewards)


def _inf_logprob(cfg):
    rows = rollout_rows(8, P, R, cfg.vocab_size, seed=3)
    old = np.full(rows["tokens"].shape, -2.0, np.float32)
    b = int(np.argmax(rows["loss_mask"].sum(1) > 0))
    t = P + int(np.argmax(rows["loss_mask"][b, P:]))
    old[b, t] = -np.inf  # the sampler reported log p = -inf for a token it sampled
    adv = rows["advantages"].copy()
    adv[b] = -1.0  # ratio inf x negative advantage: the unclipped branch is -inf
    return dict(old_logprobs=old, advantages=adv)


@pytest.mark.parametrize("inject", [_nan_reward, _inf_logprob], ids=["nan_reward", "inf_logprob"])
def test_nonfinite_update_is_not_applied(setup, inject):
    cfg, step, fresh = setup
    state = fresh()
    before = _host(state)
    new, m = step(state, _batch(cfg, **inject(cfg)), jax.random.key(1))
    assert not bool(m["applied"])
    mask = int(m["nonfinite"])
    assert mask & guard.NONFINITE_LOSS, guard.describe(mask)
    assert not np.isfinite(float(m["loss"]))
    _assert_same(new.params, before.params)
    _assert_same(new.opt_state, before.opt_state)
    assert int(new.step) == int(before.step)

    # The state still trains: a good batch afterwards is applied and changes the parameters.
    after, m2 = step(new, _batch(cfg), jax.random.key(2))
    assert bool(m2["applied"]) and int(after.step) == int(before.step) + 1
    moved = [
        not np.array_equal(np.asarray(x), y)
        for x, y in zip(jax.tree.leaves(after.params), jax.tree.leaves(before.params), strict=True)
    ]
    assert any(moved)


def test_nonfinite_mask_names_each_cause():
    params = {"w": jnp.ones(3), "b": jnp.array([1.0, jnp.inf])}
    opt = {"mu": jnp.zeros(2), "count": jnp.zeros((), jnp.int32)}
    mask = int(guard.nonfinite_mask(jnp.float32(1.0), jnp.float32(jnp.nan), params, opt))
    assert mask == guard.NONFINITE_GRAD_NORM | guard.NONFINITE_PARAMS
    assert guard.describe(mask) == "gradient norm, updated parameters"
    assert int(guard.nonfinite_mask(1.0, 1.0, {"w": jnp.ones(2)}, opt)) == 0
    opt_bad = {"nu": jnp.array([jnp.nan])}
    assert int(guard.nonfinite_mask(1.0, 1.0, {}, opt_bad)) == guard.NONFINITE_OPT_STATE
