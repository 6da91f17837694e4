"""Packed updates: the packer's layout, and packed == padded for log-probs, loss, gradients, metrics."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.model import hf_io
from azr_jax.parallel import sharding as shd
from azr_jax.update.logprobs import token_logprobs
from azr_jax.update.packing import (
    bucket_rows,
    first_fit_decreasing,
    pack_episodes,
    packed_length,
)
from azr_jax.update.pg_loss import PGBatch, PGLossConfig
from azr_jax.update.train_step import (
    TrainHparams,
    init_train_state,
    jit_init_state,
    jit_train_step,
    train_step,
)

PAD, TEMP = 1, 0.9


def _episodes(n, vocab, seed=0, max_prompt=8, max_response=12):
    """n random episodes; one has an empty response (it still counts as an episode)."""
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(2, vocab, int(rng.integers(1, max_prompt + 1))) for _ in range(n)]
    responses = [rng.integers(2, vocab, int(rng.integers(1, max_response + 1))) for _ in range(n)]
    responses[n // 2] = responses[n // 2][:0]
    return dict(
        prompts=[p.astype(np.int32) for p in prompts],
        responses=[r.astype(np.int32) for r in responses],
        logprobs=[rng.normal(-2, 0.5, len(r)).astype(np.float32) for r in responses],
        advantages=rng.normal(size=n).astype(np.float32),
        group_ids=(np.arange(n) % 6).astype(np.int32),
        rewards=rng.uniform(-1, 1, n).astype(np.float32),
    )


def _padded(ep, rows=None) -> PGBatch:
    """The padded layout, written out independently: [left-padded prompt | right-padded response],
    one episode a row, extra rows empty (group -1)."""
    n = len(ep["prompts"])
    rows = rows or n
    p = max(len(x) for x in ep["prompts"])
    r = max(len(x) for x in ep["responses"])
    tokens = np.full((rows, p + r), PAD, np.int32)
    attn = np.zeros((rows, p + r), bool)
    loss = np.zeros((rows, p + r), bool)
    old = np.zeros((rows, p + r), np.float32)
    for i in range(n):
        lp, lr = len(ep["prompts"][i]), len(ep["responses"][i])
        tokens[i, p - lp : p] = ep["prompts"][i]
        tokens[i, p : p + lr] = ep["responses"][i]
        attn[i, p - lp : p + lr] = True
        loss[i, p : p + lr] = True
        old[i, p : p + lr] = ep["logprobs"][i]

    def per_row(x, fill):
        out = np.full((rows,), fill, x.dtype)
        out[:n] = x
        return out

    return PGBatch(
        tokens=tokens,
        attn_mask=attn,
        loss_mask=loss,
        advantages=per_row(ep["advantages"], 0),
        old_logprobs=old,
        group_ids=per_row(ep["group_ids"], -1),
        rewards=per_row(ep["rewards"], 0),
        response_start=p,
    )


def _pack(ep, **kw) -> PGBatch:
    return pack_episodes(
        ep["prompts"],
        ep["responses"],
        ep["logprobs"],
        ep["advantages"],
        ep["group_ids"],
        ep["rewards"],
        pad_id=PAD,
        **kw,
    )


def _with_current_logprobs(params, cfg, batch: PGBatch, noise_seed=0) -> PGBatch:
    """Old log-probs = the current policy's + noise, so the ratio clip fires."""

    def fn(p, b):
        return token_logprobs(
            p,
            cfg,
            b.tokens,
            b.attn_mask,
            temperature=TEMP,
            positions=b.positions,
            segment_ids=b.segment_ids,
            logprob_index=b.logprob_index,
        )[0]

    lp = np.asarray(jax.jit(fn)(params, batch))
    rng = np.random.default_rng(noise_seed)
    noisy = lp + rng.normal(scale=0.3, size=lp.shape).astype(np.float32)
    return batch.replace(old_logprobs=np.where(batch.loss_mask, noisy, 0.0).astype(np.float32))


def _padded_like(ep, packed: PGBatch, rows: int) -> PGBatch:
    """The padded batch of the same episodes, with the packed batch's old log-probs moved over."""
    padded = _padded(ep, rows=rows)
    old = np.zeros_like(padded.old_logprobs)
    for (r, k), i in _packed_owner(ep, packed).items():
        sel = (packed.segment_ids[r] == k) & packed.loss_mask[r]
        old[i, padded.loss_mask[i]] = packed.old_logprobs[r, sel]
    return padded.replace(old_logprobs=old)


def _packed_owner(ep, batch: PGBatch) -> dict[tuple[int, int], int]:
    """(row, segment) -> episode index, found by matching each segment's tokens."""
    owner = {}
    for r in range(batch.tokens.shape[0]):
        for k in range(1, int(batch.segment_ids[r].max(initial=0)) + 1):
            toks = batch.tokens[r][batch.segment_ids[r] == k]
            hits = [
                i
                for i in range(len(ep["prompts"]))
                if i not in owner.values()
                and np.array_equal(toks, np.concatenate([ep["prompts"][i], ep["responses"][i]]))
            ]
            owner[(r, k)] = hits[0]
    return owner


def test_first_fit_decreasing_by_hand():
    # 5 -> row 0; 4 -> row 1; 3 fills row 0; 3 -> row 1; 2 -> row 2; 1 fills row 1.
    assert first_fit_decreasing([5, 4, 3, 3, 2, 1], 8) == [[0, 2], [1, 3, 5], [4]]
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(1, 30, 50)]
    rows = first_fit_decreasing(lengths, 32)
    assert sorted(i for row in rows for i in row) == list(range(50))
    assert all(sum(lengths[i] for i in row) <= 32 for row in rows)
    # FFD uses at most 11/9 OPT + 1 rows; OPT >= the total / 32.
    assert len(rows) <= 11 / 9 * np.ceil(sum(lengths) / 32) + 1
    with pytest.raises(ValueError, match="episode 1 has 9 tokens.*row length 8"):
        first_fit_decreasing([3, 9], 8)
    # A second budget per row: 5 and 3 no longer share row 0 (4 + 3 scored > 5).
    assert first_fit_decreasing([5, 4, 3, 3, 2, 1], 8, [4, 1, 3, 0, 2, 1], 5) == [
        [0, 3],
        [1, 2, 5],
        [4],
    ]
    with pytest.raises(ValueError, match="max_scored"):
        first_fit_decreasing([5, 4], 8, [4, 1], 3)


def test_scored_width_follows_the_longest_response():
    """N (positions unembedded per row) is held to the longest response's bucket when that
    costs no extra row: here two 3-token responses may not share a row of 4 scored slots."""
    one = np.array([7], np.int32)
    ep = dict(
        prompts=[one, one, one, one],
        responses=[np.full(r, 5, np.int32) for r in (4, 3, 3, 1)],
        logprobs=[np.zeros(r, np.float32) for r in (4, 3, 3, 1)],
        advantages=np.zeros(4, np.float32),
        group_ids=np.zeros(4, np.int32),
        rewards=np.zeros(4, np.float32),
    )
    # Lengths 5, 4, 4, 2 into rows of 10: plain FFD gives [[0, 1], [2, 3]] with 7 scored in
    # row 0 (N = 8); the 4-scored packing [[0], [1, 3], [2]] needs 3 rows (bucket 3 > 2): kept.
    b = _pack(ep, row_length=10)
    assert b.tokens.shape[0] == 2 and b.logprob_index.shape[1] == 8
    # With rows in multiples of 4 the tighter packing is free: N drops to 4.
    b = _pack(ep, row_length=10, row_multiple=4)
    assert b.tokens.shape[0] == 4 and b.logprob_index.shape[1] == 4
    assert sorted(int(n) for n in b.loss_mask.sum(1)) == [0, 3, 4, 4]


def test_bucket_rows():
    assert [bucket_rows(r, 1) for r in range(1, 14)] == [1, 2, 3, 4, 6, 6, 8, 8, 12, 12, 12, 12, 16]
    assert [bucket_rows(r, 4) for r in (1, 4, 5, 9, 13, 17, 25)] == [4, 4, 8, 12, 16, 24, 32]
    for r in range(1, 200):
        b = bucket_rows(r, 3)
        assert b >= r and b % 3 == 0 and (b <= 3 or b <= 1.5 * r + 3)


def test_packed_layout_by_hand():
    ep = dict(
        prompts=[np.array([10, 11], np.int32), np.array([20, 21, 22], np.int32)],
        responses=[np.array([12, 13, 14], np.int32), np.array([23], np.int32)],
        logprobs=[np.array([-1, -2, -3], np.float32), np.array([-4], np.float32)],
        advantages=np.array([0.5, -1.0], np.float32),
        group_ids=np.array([2, 4], np.int32),
        rewards=np.array([1.0, 0.0], np.float32),
    )
    b = _pack(ep, row_length=10)
    # Longest first: episode 0 (5 tokens), then episode 1 (4), sharing row 0.
    assert b.tokens.shape == (1, 10)
    np.testing.assert_array_equal(b.tokens[0], [10, 11, 12, 13, 14, 20, 21, 22, 23, PAD])
    np.testing.assert_array_equal(b.segment_ids[0], [1, 1, 1, 1, 1, 2, 2, 2, 2, 0])
    np.testing.assert_array_equal(b.positions[0], [0, 1, 2, 3, 4, 0, 1, 2, 3, 0])
    np.testing.assert_array_equal(b.loss_mask[0], [0, 0, 1, 1, 1, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(b.attn_mask[0], [1] * 9 + [0])
    np.testing.assert_array_equal(b.old_logprobs[0], [0, 0, -1, -2, -3, 0, 0, 0, -4, 0])
    np.testing.assert_array_equal(b.logprob_index, [[2, 3, 4, 8]])
    np.testing.assert_array_equal(b.advantages, [[0.5, -1.0]])
    np.testing.assert_array_equal(b.group_ids, [[2, 4]])
    np.testing.assert_array_equal(b.rewards, [[1.0, 0.0]])
    # Rows in pairs: a second row costs nothing, so each episode gets its own and N drops
    # from 4 to 3 (the longest response); an empty row is all padding, group -1.
    b = _pack(ep, row_length=10, row_multiple=4)
    assert b.tokens.shape == (4, 10) and b.logprob_index.shape == (4, 3)
    np.testing.assert_array_equal(b.logprob_index[:2], [[2, 3, 4], [3, 10, 10]])
    np.testing.assert_array_equal(b.group_ids, [[2], [4], [-1], [-1]])
    assert not b.attn_mask[2:].any() and (b.tokens[2:] == PAD).all()
    assert b.packed and b.response_start == 1


def test_bad_input_is_named():
    ep = _episodes(3, 50)
    with pytest.raises(ValueError, match="more than the packed row length 4"):
        _pack(ep, row_length=4)
    bad = dict(ep, logprobs=ep["logprobs"][:2])
    with pytest.raises(ValueError, match="log-prob arrays"):
        _pack(bad, row_length=64)
    bad = dict(ep, prompts=[ep["prompts"][0][:0], *ep["prompts"][1:]])
    with pytest.raises(ValueError, match="episode 0 has an empty prompt"):
        _pack(bad, row_length=64)
    bad = dict(ep, advantages=ep["advantages"][:2])
    with pytest.raises(ValueError, match="advantages has shape"):
        _pack(bad, row_length=64)


def test_packed_length():
    # padded layout: 16 + 32 = 48 tokens; capped at 40; never below the longest episode (30).
    assert packed_length([3, 9], [20, 5], cap=64) == 48
    assert packed_length([3, 9], [20, 5], cap=40) == 40
    assert packed_length([3, 9], [27, 5], cap=20) == 30


@pytest.mark.parametrize("attention", ["einsum", "xla"])
def test_packed_logprobs_equal_padded(qwen2_dir, attention):
    cfg, params = hf_io.load_hf(qwen2_dir)
    cfg = cfg.replace(attention=attention)
    ep = _episodes(9, cfg.vocab_size, seed=1)
    packed, padded = _pack(ep, row_length=24), _padded(ep)
    assert packed.tokens.shape[0] < padded.tokens.shape[0]
    assert packed.segment_ids.max() >= 2  # rows really are shared
    kw = dict(temperature=TEMP, chunk=5)
    lp_pad, ent_pad = jax.jit(lambda p, b: token_logprobs(p, cfg, b.tokens, b.attn_mask, **kw))(
        params, padded
    )

    def packed_fn(p, b):
        return token_logprobs(
            p,
            cfg,
            b.tokens,
            b.attn_mask,
            positions=b.positions,
            segment_ids=b.segment_ids,
            logprob_index=b.logprob_index,
            remat=attention == "xla",  # the segment ids reach the rematerialised blocks too
            **kw,
        )

    lp, ent = (np.asarray(x) for x in jax.jit(packed_fn)(params, packed))
    assert np.all(lp[~packed.loss_mask] == 0) and np.all(ent[~packed.loss_mask] == 0)
    for (r, k), i in _packed_owner(ep, packed).items():
        sel = (packed.segment_ids[r] == k) & packed.loss_mask[r]
        want = padded.loss_mask[i]
        np.testing.assert_allclose(lp[r, sel], np.asarray(lp_pad)[i, want], atol=2e-6, rtol=1e-6)
        np.testing.assert_allclose(ent[r, sel], np.asarray(ent_pad)[i, want], atol=2e-6, rtol=1e-6)


def _assert_trees_close(a, b, rel):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        np.testing.assert_allclose(x, y, atol=rel * max(float(np.abs(y).max()), 1e-30))


def _padded_step(params, cfg, batch: PGBatch, agg_mode: str):
    hp = TrainHparams(
        loss=PGLossConfig(agg_mode=agg_mode, entropy_coef=0.01, temperature=TEMP),
        lr=1e-6,
        logprob_chunk=4,
    )
    step = jax.jit(lambda s, b: train_step(s, b, None, cfg=cfg, hparams=hp))
    return hp, step(init_train_state(params, hp), batch)


def _assert_steps_equal(got, want, atol_params):
    (got_state, got_m), (want_state, want_m) = got, want
    assert float(want_m["clip_frac"]) > 0
    assert set(got_m) == set(want_m)
    for k in want_m:
        np.testing.assert_allclose(got_m[k], want_m[k], rtol=2e-6, atol=1e-7, err_msg=k)
    # Adam's first moment is 0.1 * the (clipped) gradient.
    _assert_trees_close(got_state.opt_state[1][0].mu, want_state.opt_state[1][0].mu, rel=1e-5)
    got_p, want_p = jax.tree.leaves(got_state.params), jax.tree.leaves(want_state.params)
    for a, b in zip(got_p, want_p, strict=True):
        np.testing.assert_allclose(a, b, atol=atol_params)


def test_packed_step_equals_padded(qwen2_dir):
    """token-mean: loss, gradient, new parameters and every metric (group metrics included) of
    the packed batch, split into 2 micro-batches, equal the padded batch's."""
    cfg, params = hf_io.load_hf(qwen2_dir)
    ep = _episodes(10, cfg.vocab_size, seed=2)
    packed = _with_current_logprobs(params, cfg, _pack(ep, row_length=24, row_multiple=2))
    padded = _padded_like(ep, packed, rows=12)  # two empty rows, as a mesh-filling batch has
    hp, want = _padded_step(params, cfg, padded, "token-mean")
    hp2 = dataclasses.replace(hp, micro_batches=2)
    step = jax.jit(lambda s, b: train_step(s, b, None, cfg=cfg, hparams=hp2))
    got = step(init_train_state(params, hp), packed)
    assert float(got[1]["group_count"].sum()) == 10  # the empty-response episode counts
    _assert_steps_equal(got, want, atol_params=1e-7)


def test_sharded_packed_step_equals_padded(qwen2_dir):
    """seq-mean-token-mean: packed rows on a (data 2, fsdp 2, tensor 2) mesh with 2 micro-batches
    (the packer pads to rows that divide over it) equal the unsharded padded step."""
    cfg, params = hf_io.load_hf(qwen2_dir)
    ep = _episodes(12, cfg.vocab_size, seed=3)
    packed = _with_current_logprobs(params, cfg, _pack(ep, row_length=24, row_multiple=2 * 4))
    assert packed.tokens.shape[0] % 8 == 0 and not packed.attn_mask[-1].any()
    hp, want = _padded_step(params, cfg, _padded_like(ep, packed, rows=12), "seq-mean-token-mean")
    hp2 = dataclasses.replace(hp, micro_batches=2)
    mesh = shd.make_mesh(2, 2, 2)
    state = jit_init_state(cfg, hp2, mesh)(jax.tree.map(jnp.array, params))
    got = jit_train_step(cfg, hp2, mesh)(state, packed, jax.random.key(0))
    _assert_steps_equal(got, want, atol_params=1e-6)


def test_validate_batch_names_packed_fields():
    from azr_jax.update.pg_loss import validate_batch

    ep = _episodes(4, 50)
    b = _pack(ep, row_length=24)
    validate_batch(b)
    with pytest.raises(ValueError, match="together"):
        validate_batch(b.replace(positions=None))
    with pytest.raises(ValueError, match=r"advantages has shape.*\(B, S\)"):
        validate_batch(b.replace(advantages=b.advantages[:, 0]))
