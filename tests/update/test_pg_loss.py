"""The TRR++ objective against an independent numpy computation, and its aggregation weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.update.pg_loss import (
    AGG_MODES,
    PGBatch,
    PGLossConfig,
    pg_objective,
    token_weights,
    validate_batch,
)
from tests.update.rollouts import rollout_rows

B, P, R = 6, 3, 7


def _numpy_loss(logp, ent, old, ref, adv, mask, cfg):
    """Written from the formulas, per sequence, in float64."""
    per_seq_pg, per_seq_ent, per_seq_kl, all_pg, all_ent, all_kl = [], [], [], [], [], []
    clipped = []
    for b in range(logp.shape[0]):
        m = mask[b].astype(bool)
        if not m.any():
            continue
        ratio = np.exp(logp[b, m] - old[b, m])
        a = adv[b]
        pg = np.maximum(-a * ratio, -a * np.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps))
        clipped.append(-a * np.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) > -a * ratio)
        d = ref[b, m] - logp[b, m]
        kl = np.exp(d) - d - 1
        for lst_seq, lst_all, x in (
            (per_seq_pg, all_pg, pg),
            (per_seq_ent, all_ent, ent[b, m]),
            (per_seq_kl, all_kl, kl),
        ):
            lst_seq.append(x.mean())
            lst_all.append(x)
    if cfg.agg_mode == "token-mean":
        pg, en, kl = (np.concatenate(x).mean() for x in (all_pg, all_ent, all_kl))
    else:
        pg, en, kl = (np.mean(x) for x in (per_seq_pg, per_seq_ent, per_seq_kl))
    loss = pg - cfg.entropy_coef * en + cfg.kl_coef * kl
    return loss, pg, np.concatenate(clipped).mean(), np.concatenate(all_kl).mean()


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    rows = rollout_rows(B, P, R, 100, seed=seed)
    shape = rows["tokens"].shape
    logp = rng.uniform(-4, -0.1, shape)
    ent = rng.uniform(0.5, 3, shape)
    old = logp + rng.normal(scale=0.4, size=shape)  # many ratios outside [0.8, 1.2]
    ref = logp + rng.normal(scale=0.3, size=shape)
    return rows, logp, ent, old, ref


@pytest.mark.parametrize("agg_mode", AGG_MODES)
def test_matches_numpy(agg_mode):
    rows, logp, ent, old, ref = _inputs()
    cfg = PGLossConfig(agg_mode=agg_mode, kl_coef=0.05, entropy_coef=0.01)
    batch = PGBatch(
        tokens=rows["tokens"],
        attn_mask=rows["attn_mask"],
        loss_mask=rows["loss_mask"],
        advantages=rows["advantages"],
        old_logprobs=jnp.asarray(old, jnp.float32),
        ref_logprobs=jnp.asarray(ref, jnp.float32),
    )
    w = token_weights(batch.loss_mask, agg_mode)
    mw = token_weights(batch.loss_mask, "token-mean")
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    loss, aux = pg_objective(f32(logp), f32(ent), batch, w, mw, cfg)
    want_loss, want_pg, want_clip, want_kl = _numpy_loss(
        logp, ent, old, ref, rows["advantages"], rows["loss_mask"], cfg
    )
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(aux["pg_loss"], want_pg, rtol=1e-5)
    np.testing.assert_allclose(aux["clip_frac"], want_clip, rtol=1e-5)
    np.testing.assert_allclose(aux["kl"], want_kl, rtol=1e-5)
    assert float(aux["clip_frac"]) > 0.1
    m = rows["loss_mask"].astype(bool)
    np.testing.assert_allclose(aux["logprob_diff_max"], np.abs(logp - old)[m].max(), rtol=1e-5)


def test_gradient_without_old_logprobs_is_reinforce():
    """No old log-probs: ratio 1, d loss / d logp = -A * w (and the clip never fires)."""
    rows, logp, ent, _, _ = _inputs(1)
    cfg = PGLossConfig(entropy_coef=0.0)
    batch = PGBatch(
        tokens=rows["tokens"],
        attn_mask=rows["attn_mask"],
        loss_mask=rows["loss_mask"],
        advantages=rows["advantages"],
    )
    w = token_weights(batch.loss_mask, cfg.agg_mode)

    def f(lp):
        return pg_objective(lp, jnp.asarray(ent, jnp.float32), batch, w, w, cfg)

    g, aux = jax.grad(f, has_aux=True)(jnp.asarray(logp, jnp.float32))
    np.testing.assert_allclose(g, -rows["advantages"][:, None] * np.asarray(w), atol=1e-7)
    assert float(aux["clip_frac"]) == 0 and float(aux["logprob_diff_max"]) == 0
    assert "kl" not in aux


def test_token_weights():
    mask = np.array([[0, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(token_weights(mask, "token-mean"), mask / 4)
    seq = np.array([[0, 1 / 3, 1 / 3, 1 / 3], [0, 0, 1, 0], [0, 0, 0, 0]]) / 2  # 2 real rows
    np.testing.assert_allclose(token_weights(mask, "seq-mean-token-mean"), seq, rtol=1e-6)
    np.testing.assert_array_equal(token_weights(np.zeros((2, 3)), "token-mean"), 0)
    with pytest.raises(ValueError, match="agg_mode"):
        PGLossConfig(agg_mode="seq-mean-token-sum")


def test_token_weights_per_episode_in_packed_rows():
    """Packed rows: "sequences" are episodes (segments), counted across rows, by hand."""
    mask = np.array([[0, 1, 1, 0, 1, 0], [0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]])
    seg = np.array([[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 1, 2], [0, 0, 0, 0, 0, 0]])
    # Episodes with response tokens: (row 0, 1) 2 tokens, (0, 2) 1, (1, 1) 3; (1, 2) has none.
    seq = np.array([[0, 1 / 2, 1 / 2, 0, 1, 0], [0, 0, 1 / 3, 1 / 3, 1 / 3, 0], [0] * 6]) / 3
    got = token_weights(mask, "seq-mean-token-mean", segment_ids=seg)
    np.testing.assert_allclose(got, seq, rtol=1e-6)
    np.testing.assert_allclose(token_weights(mask, "token-mean", segment_ids=seg), mask / 6)


def test_bad_batches_fail_loudly():
    rows = rollout_rows(4, P, R, 100)
    fields = {k: rows[k] for k in ("tokens", "attn_mask", "loss_mask", "advantages")}
    validate_batch(PGBatch(**fields, response_start=P))
    with pytest.raises(ValueError, match="response_start"):
        validate_batch(PGBatch(**fields, response_start=P + 1))
    with pytest.raises(ValueError, match="advantages"):
        validate_batch(PGBatch(**{**fields, "advantages": rows["advantages"][:2]}))
    batch = PGBatch(**fields)
    w = token_weights(batch.loss_mask, "token-mean")
    lp = jnp.zeros(rows["tokens"].shape)
    with pytest.raises(ValueError, match="ref_logprobs"):
        pg_objective(lp, lp, batch, w, w, PGLossConfig(kl_coef=0.1))
