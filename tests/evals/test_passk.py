"""pass@k against hand computations and the combinatorial definition."""

import itertools
from math import comb

import pytest

from azr_jax.evals.passk import mean_pass_at_k, pass_at_k


def test_hand_computed():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    # k=1 is the fraction correct
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(4, 0, 4) == 0.0
    assert pass_at_k(4, 1, 4) == 1.0  # every draw of 4 from 4 holds the correct one
    assert pass_at_k(6, 5, 2) == 1.0  # n - c < k


@pytest.mark.parametrize("n,c,k", [(8, 3, 4), (16, 1, 5), (20, 7, 10), (3, 2, 1)])
def test_matches_the_definition(n, c, k):
    """The fraction of k-subsets of the n samples holding a correct one, enumerated (small n)
    or by binomials."""
    if n <= 10:
        samples = [True] * c + [False] * (n - c)
        subsets = list(itertools.combinations(range(n), k))
        want = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    else:
        want = 1 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(want, rel=1e-12)


def test_mean_and_errors():
    assert mean_pass_at_k([(5, 2), (5, 0)], 2) == pytest.approx(0.35)
    with pytest.raises(ValueError, match="k=3 must be in"):
        pass_at_k(2, 1, 3)
    with pytest.raises(ValueError, match="c=3"):
        pass_at_k(2, 3, 1)
