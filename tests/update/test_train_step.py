"""The update: loss and gradients against PyTorch, micro-batch accumulation, sharded == unsharded."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.model import hf_io
from azr_jax.parallel import sharding as shd
from azr_jax.update.logprobs import token_logprobs
from azr_jax.update.pg_loss import AGG_MODES, PGBatch, PGLossConfig
from azr_jax.update.train_step import (
    TrainHparams,
    group_metrics,
    init_train_state,
    jit_init_state,
    jit_train_step,
    loss_and_grads,
    lr_schedule,
    make_optimizer,
    train_step,
)
from tests.update.rollouts import rollout_rows

P, R, TEMP = 4, 8, 0.9


def _batch(params, cfg, rows_n=8, seed=0, ref=True) -> PGBatch:
    """Rows with old log-probs = current + noise (so the clip fires) and a reference."""
    rows = rollout_rows(rows_n, P, R, cfg.vocab_size, seed=seed)
    lp, _ = token_logprobs(params, cfg, rows["tokens"], rows["attn_mask"], temperature=TEMP)
    rng = np.random.default_rng(seed + 100)
    noise = lambda s: rng.normal(scale=s, size=lp.shape).astype(np.float32)  # noqa: E731
    return PGBatch(
        tokens=rows["tokens"],
        attn_mask=rows["attn_mask"],
        loss_mask=rows["loss_mask"],
        advantages=rows["advantages"],
        old_logprobs=np.asarray(lp) + noise(0.3),
        ref_logprobs=np.asarray(lp) + noise(0.2) if ref else None,
        group_ids=rows["group_ids"],
        rewards=rows["rewards"],
        response_start=P,
    )


def _torch_loss(model, batch: PGBatch, cfg: PGLossConfig):
    """The same objective written for a transformers model, from full [B, L, V] logits."""
    import torch

    t = lambda x: torch.tensor(np.asarray(x))  # noqa: E731
    tokens, attn = t(batch.tokens).long(), t(batch.attn_mask).long()
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=tokens, attention_mask=attn, position_ids=positions).logits
    logp_all = torch.log_softmax(logits[:, :-1].float() / cfg.temperature, -1)  # predicts 1..L-1
    logp = logp_all.gather(-1, tokens[:, 1:, None])[..., 0]
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    mask = t(batch.loss_mask)[:, 1:].float()
    old, ref = t(batch.old_logprobs)[:, 1:], t(batch.ref_logprobs)[:, 1:]
    adv = t(batch.advantages)[:, None]
    ratio = torch.exp(logp - old)
    pg = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps))
    d = ref - logp
    kl = torch.exp(d) - d - 1

    def agg(x):
        if cfg.agg_mode == "token-mean":
            return (x * mask).sum() / mask.sum()
        n = mask.sum(-1)
        keep = n > 0
        return ((x * mask).sum(-1)[keep] / n[keep]).mean()

    return agg(pg) - cfg.entropy_coef * agg(entropy) + cfg.kl_coef * agg(kl)


@pytest.mark.parametrize("agg_mode", AGG_MODES)
def test_loss_and_grads_match_torch(qwen2_dir, agg_mode):
    torch = pytest.importorskip("torch")
    import transformers

    cfg, params = hf_io.load_hf(qwen2_dir)
    loss_cfg = PGLossConfig(agg_mode=agg_mode, kl_coef=0.1, entropy_coef=0.01, temperature=TEMP)
    hp = TrainHparams(loss=loss_cfg, logprob_chunk=3)
    batch = _batch(params, cfg)
    grads, aux = jax.jit(lambda p, b: loss_and_grads(p, b, cfg=cfg, hparams=hp))(params, batch)
    assert float(aux["clip_frac"]) > 0

    model = transformers.AutoModelForCausalLM.from_pretrained(
        qwen2_dir, dtype=torch.float32, attn_implementation="eager"
    )
    loss = _torch_loss(model, batch, loss_cfg)
    loss.backward()
    np.testing.assert_allclose(aux["loss"], loss.item(), rtol=1e-5, atol=1e-6)

    torch_grads = {n: p.grad.numpy() for n, p in model.named_parameters()}
    checked = 0
    for entry in hf_io.hf_layout(cfg):
        ours = [_get(grads, path) for path in entry.paths]
        want = hf_io._to_params(
            entry.kind, torch_grads[entry.hf_name], [x.shape for x in ours]
        )  # the loader's own HF -> parameter-layout conversion
        for a, b in zip(ours, want, strict=True):
            scale = float(np.abs(b).max())
            np.testing.assert_allclose(a, b, atol=2e-4 * scale, err_msg=entry.hf_name)
            checked += 1
    assert checked == len(jax.tree.leaves(params))


def _get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def _assert_trees_close(a, b, rel=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        np.testing.assert_allclose(x, y, atol=rel * max(float(np.abs(y).max()), 1e-30))


def test_micro_batches_equal_full_batch(qwen2_dir):
    cfg, params = hf_io.load_hf(qwen2_dir)
    batch = _batch(params, cfg)
    loss_cfg = PGLossConfig(agg_mode="seq-mean-token-mean", kl_coef=0.1, temperature=TEMP)
    full = TrainHparams(loss=loss_cfg, lr=1e-6)
    micro = dataclasses.replace(full, micro_batches=4)
    state = init_train_state(params, full)
    step = {
        hp.micro_batches: jax.jit(lambda s, b, hp=hp: train_step(s, b, None, cfg=cfg, hparams=hp))
        for hp in (full, micro)
    }
    s1, m1 = step[1](state, batch)
    s4, m4 = step[4](state, batch)
    for k in m1:
        np.testing.assert_allclose(m4[k], m1[k], rtol=1e-5, atol=1e-7, err_msg=k)
    # Adam's first moment is 0.1 * the (clipped) gradient: the accumulated gradient, exactly.
    mu1, mu4 = s1.opt_state[1][0].mu, s4.opt_state[1][0].mu
    _assert_trees_close(mu4, mu1, rel=1e-5)
    _assert_trees_close(s4.params, s1.params, rel=1e-6)
    for a, b in zip(jax.tree.leaves(s4.params), jax.tree.leaves(s1.params), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert int(s4.step) == 1


def test_bfloat16_gradient_accumulator_is_close_not_equal(qwen2_dir):
    """`grad_accum_dtype="bfloat16"` sums the micro-batches' gradients in bfloat16: Adam's first
    moment (0.1 x the accumulated gradient) within bfloat16 rounding of the float32 sum's, and
    not bit-equal to it (the option takes effect)."""
    cfg, params = hf_io.load_hf(qwen2_dir)
    batch = _batch(params, cfg)
    f32 = TrainHparams(loss=PGLossConfig(temperature=TEMP), lr=1e-6, micro_batches=4)
    bf16 = dataclasses.replace(f32, grad_accum_dtype="bfloat16")
    state = init_train_state(params, f32)
    mus = []
    for hp in (f32, bf16):
        s, m = jax.jit(lambda s, b, hp=hp: train_step(s, b, None, cfg=cfg, hparams=hp))(
            state, batch
        )
        assert np.isfinite(float(m["loss"]))
        mus.append([np.asarray(x) for x in jax.tree.leaves(s.opt_state[1][0].mu)])
    scale = max(float(np.abs(a).max()) for a in mus[0])
    assert scale > 0
    worst = max(float(np.abs(a - b).max()) for a, b in zip(*mus, strict=True))
    assert 0 < worst <= 2e-2 * scale, (worst, scale)


@pytest.mark.parametrize("mesh_shape,micro", [((1, 8, 1), 1), ((2, 2, 2), 2)])
def test_sharded_step_matches_unsharded(qwen2_dir, mesh_shape, micro):
    cfg, params = hf_io.load_hf(qwen2_dir)
    batch = _batch(params, cfg, ref=False)
    hp = TrainHparams(loss=PGLossConfig(temperature=TEMP), lr=1e-6, micro_batches=micro)
    want_state, want = jax.jit(lambda s, b: train_step(s, b, None, cfg=cfg, hparams=hp))(
        init_train_state(params, hp), batch
    )

    mesh = shd.make_mesh(*mesh_shape)
    state = jit_init_state(cfg, hp, mesh)(jax.tree.map(jnp.array, params))
    new_state, got = jit_train_step(cfg, hp, mesh)(state, batch, jax.random.key(0))
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-7, err_msg=k)
    _assert_trees_close(new_state.opt_state[1][0].mu, want_state.opt_state[1][0].mu, rel=1e-5)
    got_p, want_p = jax.tree.leaves(new_state.params), jax.tree.leaves(want_state.params)
    for a, b in zip(got_p, want_p, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)

    # Parameters and both Adam moments sit on the TRAIN_RULES shardings; counters replicate.
    from azr_jax.model import transformer as model_lib

    want_sh = shd.tree_shardings(
        model_lib.abstract_params(cfg), model_lib.param_axes(cfg), mesh, shd.TRAIN_RULES
    )
    adam = new_state.opt_state[1][0]
    for tree in (new_state.params, adam.mu, adam.nu):
        for x, sh in zip(jax.tree.leaves(tree), jax.tree.leaves(want_sh), strict=True):
            assert x.sharding.is_equivalent_to(sh, x.ndim)
    assert adam.count.sharding.is_fully_replicated
    embed = new_state.params["embed"].sharding.spec
    assert embed == jax.sharding.PartitionSpec("tensor", "fsdp")


def test_lr_schedules():
    np.testing.assert_allclose(lr_schedule(2.0)(7), 2.0)
    warm = lr_schedule(2.0, "linear_warmup", warmup=4)
    np.testing.assert_allclose([warm(0), warm(2), warm(4), warm(100)], [0, 1, 2, 2])
    cos = lr_schedule(2.0, "cosine", warmup=2, total_steps=10)
    np.testing.assert_allclose([cos(2), cos(6), cos(10)], [2, 1, 0], atol=1e-6)
    with pytest.raises(ValueError, match="linear_warmup"):
        make_optimizer(1.0, warmup=3)
    with pytest.raises(ValueError, match="total_steps"):
        make_optimizer(1.0, "cosine", warmup=3, total_steps=3)
    with pytest.raises(ValueError, match="schedule"):
        make_optimizer(1.0, "step")


def test_group_metrics():
    rows = rollout_rows(12, 2, 5, 50, seed=4)
    rows["group_ids"][3] = -1  # a padding row: left out
    batch = PGBatch(
        **{k: rows[k] for k in ("tokens", "attn_mask", "loss_mask", "advantages")},
        group_ids=rows["group_ids"],
        rewards=rows["rewards"],
    )
    got = group_metrics(batch)
    length = rows["loss_mask"].sum(1)
    for g in range(6):
        sel = rows["group_ids"] == g
        assert got["group_count"][g] == sel.sum()
        np.testing.assert_allclose(got["group_reward"][g], rows["rewards"][sel].mean(), rtol=1e-6)
        np.testing.assert_allclose(
            got["group_advantage"][g], rows["advantages"][sel].mean(), rtol=1e-6
        )
        np.testing.assert_allclose(got["group_length"][g], length[sel].mean(), rtol=1e-6)
