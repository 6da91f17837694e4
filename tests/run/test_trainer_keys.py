"""The rollout keys of run/trainer.py: one jitted call a request, the eager chain's bits."""

import jax
import numpy as np
import pytest

from azr_jax.run import trainer


@pytest.mark.parametrize(
    "seed, step, phase, index", [(0, 0, 0, 0), (7, 12, 2, 31), (2**31 - 1, 10**6, 3, 999)]
)
def test_request_keys_equal_the_eager_fold_ins(seed, step, phase, index):
    """fold_in(fold_in(fold_in(key(seed), step), phase), index), computed op by op."""
    eager = jax.random.key(seed)
    for x in (step, phase):
        eager = jax.random.fold_in(eager, x)
    got = trainer._phase_key(seed, step, phase)
    np.testing.assert_array_equal(jax.random.key_data(got), jax.random.key_data(eager))
    eager = jax.random.fold_in(eager, index)
    got = trainer._request_key(seed, step, phase, index)
    np.testing.assert_array_equal(jax.random.key_data(got), jax.random.key_data(eager))
