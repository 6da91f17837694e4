"""pass@k: the unbiased estimator of Chen et al. (2021) from n samples per problem.

For one problem with n samples of which c are correct,
pass@k = 1 - C(n - c, k) / C(n, k): the chance that k samples drawn without replacement from
the n hold at least one correct one. Computed as a running product (no huge binomials). The
benchmark's pass@k is the mean over problems. pass@1 from one greedy sample per problem is the
fraction correct (the paper's figure).
"""

from __future__ import annotations

from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one problem with `c` correct out of `n` samples.

    Raises:
      ValueError: unless 0 <= c <= n and 1 <= k <= n.
    """
    if not 0 <= c <= n:
        raise ValueError(f"correct samples c={c} must be in [0, n={n}]")
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be in [1, n={n}]: draw more samples (eval.num_samples)")
    if n - c < k:
        return 1.0
    miss = 1.0  # C(n - c, k) / C(n, k) = prod_{i = n - c + 1}^{n} (1 - k / i)
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float:
    """Mean pass@k over problems, each given as (n samples, c correct)."""
    if not counts:
        raise ValueError("no problems")
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
