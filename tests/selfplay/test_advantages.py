"""Tests for azr_jax.selfplay.advantages: TRR++ group normalisation against hand computations."""

import numpy as np
import pytest

from azr_jax.selfplay.advantages import group_reward_stats, trr_advantages

S23 = np.sqrt(2 / 3)


def _mixed_batch():
    """Six groups interleaved; expected advantages computed by hand (population std)."""
    rows = [
        # (group, reward, expected advantage)
        (0, 1.0, 1 / S23),  # g0: [1, 0, -1], mean 0, std sqrt(2/3).
        (3, 1.0, 1.25 / 0.75),  # g3: [1, -.5, -.5, -1], mean -.25, std .75.
        (1, 1.0, 0.0),  # g1: [1, 1], zero spread.
        (5, -1.0, -(4 / 3) / np.sqrt(8 / 9)),  # g5: [-1, 1, 1], mean 1/3, std sqrt(8/9).
        (0, 0.0, 0.0),
        (2, 0.5, 0.0),  # g2: one member.
        (4, 0.0, -1.0),  # g4: [0, 1], mean .5, std .5.
        (3, -0.5, -0.25 / 0.75),
        (5, 1.0, (2 / 3) / np.sqrt(8 / 9)),
        (1, 1.0, 0.0),
        (3, -0.5, -0.25 / 0.75),
        (0, -1.0, -1 / S23),
        (4, 1.0, 1.0),
        (3, -1.0, -0.75 / 0.75),
        (5, 1.0, (2 / 3) / np.sqrt(8 / 9)),
    ]
    groups, rewards, expected = (np.array(col) for col in zip(*rows, strict=True))
    return rewards, groups.astype(int), expected


def test_per_sample_mixed_batch_matches_hand_computation():
    rewards, groups, expected = _mixed_batch()
    adv = trr_advantages(rewards, groups)
    assert adv.dtype == np.float32 and adv.shape == rewards.shape
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-5)


def test_groups_are_normalised_separately():
    rewards, groups, _ = _mixed_batch()
    adv = trr_advantages(rewards, groups)
    for gid in (0, 3, 4, 5):
        members = adv[groups == gid]
        assert abs(members.mean()) < 1e-5
        assert members.std() == pytest.approx(1.0, abs=1e-4)
    # Shifting one group's rewards leaves every advantage unchanged.
    shifted = rewards + np.where(groups == 3, 10.0, 0.0)
    np.testing.assert_allclose(trr_advantages(shifted, groups), adv, atol=1e-5)


def test_single_member_and_zero_spread_give_zero_not_nan():
    adv = trr_advantages(np.array([0.7, -1.0, -1.0, -1.0]), np.array([2, 4, 4, 4]))
    np.testing.assert_array_equal(adv, [0.0, 0.0, 0.0, 0.0])
    adv = trr_advantages(np.array([1.0, 0.3]), np.array([0, 5]), eps=0.0)
    assert np.all(np.isfinite(adv)) and np.all(adv == 0.0)
    assert trr_advantages(np.array([]), np.array([], dtype=int)).shape == (0,)
    # Equal rewards whose float mean is not exactly the reward still give exact zeros,
    # even with eps=0 (rounding noise must not be blown up to +-1 or NaN).
    adv = trr_advantages(np.full(3, 0.1), np.zeros(3, dtype=int), eps=0.0)
    np.testing.assert_array_equal(adv, [0.0, 0.0, 0.0])


def test_token_weighted_matches_hand_computation():
    # Group 1: rewards [1, 0], lengths [3, 1]: mean .75, var (3*.0625 + .5625)/4 = .1875.
    std = np.sqrt(0.1875)
    adv = trr_advantages(
        np.array([1.0, 0.0]), np.array([1, 1]), lengths=np.array([3, 1]), token_weighted=True
    )
    np.testing.assert_allclose(adv, [0.25 / std, -0.75 / std], rtol=1e-5)
    # Per sample ignores the lengths.
    np.testing.assert_allclose(
        trr_advantages(np.array([1.0, 0.0]), np.array([1, 1]), lengths=np.array([3, 1])),
        [1.0, -1.0],
        rtol=1e-5,
    )


def test_token_weighted_with_equal_lengths_equals_per_sample():
    rewards, groups, _ = _mixed_batch()
    lengths = np.full(rewards.shape, 37)
    np.testing.assert_allclose(
        trr_advantages(rewards, groups, lengths=lengths, token_weighted=True),
        trr_advantages(rewards, groups),
        atol=1e-6,
    )
    zero = trr_advantages(
        np.array([1.0, 0.0]), np.array([0, 0]), lengths=np.array([0, 0]), token_weighted=True
    )
    np.testing.assert_array_equal(zero, [0.0, 0.0])


def test_bad_inputs_fail_loudly():
    with pytest.raises(ValueError, match="group_ids"):
        trr_advantages(np.array([1.0]), np.array([6]))
    with pytest.raises(ValueError, match="group_ids"):
        trr_advantages(np.array([1.0]), np.array([-1]))
    with pytest.raises(ValueError, match="equal length"):
        trr_advantages(np.array([1.0, 2.0]), np.array([0]))
    with pytest.raises(ValueError, match="lengths"):
        trr_advantages(np.array([1.0]), np.array([0]), token_weighted=True)
    with pytest.raises(ValueError, match="NaN"):
        trr_advantages(np.array([np.nan]), np.array([0]))


def test_group_reward_stats():
    stats = group_reward_stats(np.array([1.0, 0.0, -0.5]), np.array([0, 0, 3]))
    assert set(stats) == {0, 3}
    assert stats[0] == {"count": 2.0, "mean": 0.5, "std": 0.5}
    assert stats[3]["std"] == 0.0
