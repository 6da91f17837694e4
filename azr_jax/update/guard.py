"""The non-finite guard: an update whose loss, gradient norm or new state is not finite is not applied.

`guarded(step)` wraps a pure step `(state, batch, rng) -> (new_state, metrics)` whose metrics hold
scalars "loss" and "grad_norm". Inside the same jit, it checks the loss, the gradient norm and
every floating-point leaf of the new state (parameters and optimizer moments), and selects the old
state where any of them is not finite: the decision costs one reduction on device and no host
sync, and with the state donated the select writes the kept values into the donated buffers.

It adds two metrics:
  "nonfinite": [] int32, a bit mask of what was not finite (0 = the update was applied):
      NONFINITE_LOSS (1), NONFINITE_GRAD_NORM (2), NONFINITE_PARAMS (4), NONFINITE_OPT_STATE (8);
  "applied": [] bool.
The host reads them with the step's other metrics (`describe(mask)` names the causes); counting
skips in a row and stopping the run is the trainer's job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

NONFINITE_LOSS = 1
NONFINITE_GRAD_NORM = 2
NONFINITE_PARAMS = 4
NONFINITE_OPT_STATE = 8
CAUSES = {
    NONFINITE_LOSS: "loss",
    NONFINITE_GRAD_NORM: "gradient norm",
    NONFINITE_PARAMS: "updated parameters",
    NONFINITE_OPT_STATE: "updated optimizer state",
}


def all_finite(tree: Any) -> jax.Array:
    """[] bool: every element of every floating-point leaf of `tree` is finite (True if none)."""
    oks = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
    ]
    return jnp.stack(oks).all() if oks else jnp.asarray(True)


def nonfinite_mask(loss: jax.Array, grad_norm: jax.Array, params: Any, opt_state: Any) -> jax.Array:
    """[] int32 bit mask of the non-finite parts of one update (0: all finite)."""
    bits = [
        (jnp.isfinite(loss), NONFINITE_LOSS),
        (jnp.isfinite(grad_norm), NONFINITE_GRAD_NORM),
        (all_finite(params), NONFINITE_PARAMS),
        (all_finite(opt_state), NONFINITE_OPT_STATE),
    ]
    return sum(jnp.where(ok, 0, bit).astype(jnp.int32) for ok, bit in bits)


def guarded(
    step: Callable[..., tuple[Any, dict[str, jax.Array]]],
) -> Callable[..., tuple[Any, dict[str, jax.Array]]]:
    """`step` that returns its input state unchanged when its update is not finite.

    The state must have fields `params` and `opt_state` (like `train_step.TrainState`); every
    leaf of it, `step` counter included, is kept from the input when the update is rejected.
    """

    def fn(state, *args, **kwargs):
        new_state, metrics = step(state, *args, **kwargs)
        mask = nonfinite_mask(
            metrics["loss"], metrics["grad_norm"], new_state.params, new_state.opt_state
        )
        ok = mask == 0
        kept = jax.tree_util.tree_map(lambda new, old: jnp.where(ok, new, old), new_state, state)
        return kept, {**metrics, "nonfinite": mask, "applied": ok}

    return fn


def describe(mask: int) -> str:
    """The causes in a mask, e.g. 'loss, gradient norm' ('' for 0)."""
    return ", ".join(name for bit, name in CAUSES.items() if int(mask) & bit)
