"""Tests for azr_jax.selfplay.rewards against the reward table of AZR_SPEC section 3, case by case."""

import numpy as np
import pytest

from azr_jax.selfplay import rewards


@pytest.mark.parametrize(
    ("well_formed", "correct", "expected"),
    [(True, True, 1.0), (True, False, -0.5), (False, False, -1.0)],
)
def test_solver_reward_table(well_formed, correct, expected):
    assert rewards.solver_reward(well_formed, correct) == expected


def test_solver_reward_rejects_correct_but_malformed():
    with pytest.raises(ValueError, match="malformed"):
        rewards.solver_reward(False, True)


def test_solver_rewards_vectorised_matches_scalar():
    wf = np.array([True, True, False, True])
    ok = np.array([True, False, False, True])
    out = rewards.solver_rewards(wf, ok)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [1.0, -0.5, -1.0, 1.0])
    with pytest.raises(ValueError, match="malformed"):
        rewards.solver_rewards(np.array([False]), np.array([True]))
    with pytest.raises(ValueError, match="shape"):
        rewards.solver_rewards(np.array([True]), np.array([True, False]))


@pytest.mark.parametrize(
    ("solved", "expected"),
    [
        ([True] * 8, 0.0),  # r = 1: too easy.
        ([False] * 8, 0.0),  # r = 0: too hard.
        ([True] + [False] * 7, 1 - 1 / 8),
        ([True] * 4 + [False] * 4, 0.5),
        ([True] * 7 + [False], 1 - 7 / 8),
        ([True, False], 0.5),
    ],
)
def test_learnability_reward(solved, expected):
    assert rewards.learnability_reward(solved) == pytest.approx(expected)


def test_learnability_extreme_value_option():
    assert rewards.learnability_reward([True] * 8, extreme_value=-0.5) == -0.5
    assert rewards.learnability_reward([False] * 8, extreme_value=-0.5) == -0.5
    # The option does not touch the interior.
    assert rewards.learnability_reward([True, False, False, False], extreme_value=-0.5) == 0.75
    with pytest.raises(ValueError, match="at least one"):
        rewards.learnability_reward([])


def test_proposer_reward_cases():
    assert rewards.proposer_reward(False, False, None) == -1.0  # Format error.
    assert rewards.proposer_reward(False, True, [True, False]) == -1.0  # Malformed wins.
    assert rewards.proposer_reward(True, False, None) == -1.0  # Invalid in the executor.
    assert rewards.proposer_reward(True, True, [True, False, False, False]) == 0.75
    assert rewards.proposer_reward(True, True, [True] * 8) == 0.0
    assert rewards.proposer_reward(True, True, [False] * 8, extreme_value=-0.5) == -0.5
    with pytest.raises(ValueError, match="solver outcomes"):
        rewards.proposer_reward(True, True, None)
