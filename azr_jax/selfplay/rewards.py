"""Scalar rewards for solver and proposer responses (AZR_SPEC section 3).

Pure functions of verdicts that other phases produce: `parsing` says whether a response is
well-formed, the executor says whether an answer is correct and whether a proposal is valid.
An answer that parses structurally but that the executor cannot read as a literal (e.g. a
deduction answer `[1, 2`) is malformed: pass `well_formed=False` for it.

Solver:   1 correct, -0.5 well-formed but wrong, -1 malformed.
Proposer: -1 malformed or invalid; otherwise the learnability of the task from n solver
          attempts: with solve rate r, 1 - r when 0 < r < 1, and `extreme_value` when r is 0
          or 1 (paper: 0; the authors' code: -0.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SOLVER_CORRECT = 1.0
SOLVER_WRONG = -0.5  # Well-formed but wrong (paper Eq. 6).
MALFORMED = -1.0  # Malformed response, solver or proposer.
INVALID_PROPOSAL = -1.0  # Well-formed proposal that fails validation in the executor.


def solver_reward(well_formed: bool, correct: bool) -> float:
    """Reward of one solver response (also usable for proposer rollouts scored as solves)."""
    if not well_formed:
        if correct:
            raise ValueError("a malformed answer cannot be correct: check the caller's verdicts")
        return MALFORMED
    return SOLVER_CORRECT if correct else SOLVER_WRONG


def solver_rewards(well_formed: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """`solver_reward` over arrays of verdicts. [N] bool, [N] bool -> [N] float32."""
    well_formed = np.asarray(well_formed, dtype=bool)
    correct = np.asarray(correct, dtype=bool)
    if well_formed.shape != correct.shape:
        raise ValueError(f"shape mismatch: {well_formed.shape} vs {correct.shape}")
    if np.any(correct & ~well_formed):
        raise ValueError("a malformed answer cannot be correct: check the caller's verdicts")
    out = np.where(correct, SOLVER_CORRECT, SOLVER_WRONG)
    return np.where(well_formed, out, MALFORMED).astype(np.float32)


def learnability_reward(solved: Sequence[bool], extreme_value: float = 0.0) -> float:
    """Proposer reward of a valid task from n solver attempts (paper Eq. 4).

    Args:
      solved: [n] whether each difficulty rollout solved the task (AZR: n=8).
      extreme_value: reward when the task is always or never solved (paper 0, authors -0.5).
    """
    if len(solved) == 0:
        raise ValueError("learnability needs at least one solver attempt, got none")
    rate = float(np.mean(np.asarray(solved, dtype=bool)))
    if rate == 0.0 or rate == 1.0:
        return float(extreme_value)
    return 1.0 - rate


def proposer_reward(
    well_formed: bool,
    valid: bool,
    solved: Sequence[bool] | None,
    extreme_value: float = 0.0,
) -> float:
    """Reward of one proposer response.

    Args:
      well_formed: the response parsed (`parsing.parse_proposer_response`).
      valid: the executor accepted the proposal (ignored when malformed).
      solved: the difficulty rollouts' outcomes; needed only for a valid proposal.
      extreme_value: see `learnability_reward`.
    """
    if not well_formed:
        return MALFORMED
    if not valid:
        return INVALID_PROPOSAL
    if solved is None:
        raise ValueError("a valid proposal needs its solver outcomes to be rewarded")
    return learnability_reward(solved, extreme_value)
