"""A float32 master copy of low-precision parameters, kept in the optimizer state.

bfloat16 has 8 bits of mantissa: a weight of 0.02 sits between neighbours 1.2e-4 apart, so an
AdamW step at the paper's learning rate (1e-6) rounds back to the same weight and the model does
not train (one such step on 4,096 weights drawn at scale 0.02 moves 1.9% of them). Mixed
precision's answer, as in Megatron, DeepSpeed and MaxText: the optimizer updates a float32 copy
and the bfloat16 weights the model computes with are recast from it after every step.

`with_master_weights(inner)` wraps an optax transformation:
  state   MasterState(master, inner): `master` a float32 tree like the params (sharded like them:
          its key paths end with the parameters' own, `sharding.optimizer_state_shardings`),
          `inner` the wrapped optimizer's state, its moments in the params' dtype;
  update  the gradient in float32, `inner` run on the master, the master updated; the returned
          updates are the change of the recast weights, and `apply(params, updates, state)`
          gives the new weights exactly as `master.astype(params.dtype)`.
A float32 master costs 4 bytes a parameter next to the weights' 2 and the moments' 2 + 2.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class MasterState(NamedTuple):
    master: Any  # float32 tree like the params: the weights the optimizer updates
    inner: Any  # the wrapped optimizer's state (its moments in the params' dtype)


def with_master_weights(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """`inner` applied to a float32 master copy of the parameters (see the module docstring)."""

    def init(params):
        master = jax.tree_util.tree_map(lambda p: p.astype(jnp.float32), params)
        return MasterState(master=master, inner=inner.init(params))

    def update(grads, state: MasterState, params=None):
        if params is None:
            raise ValueError("with_master_weights needs the params (the recast weights' dtypes)")
        grads32 = jax.tree_util.tree_map(lambda g: g.astype(jnp.float32), grads)
        updates, new_inner = inner.update(grads32, state.inner, state.master)
        # the moments keep the dtype they were created with (the update ran in float32)
        new_inner = jax.tree_util.tree_map(lambda n, o: n.astype(o.dtype), new_inner, state.inner)
        master = optax.apply_updates(state.master, updates)
        recast = jax.tree_util.tree_map(
            lambda m, p: m.astype(p.dtype).astype(jnp.float32) - p.astype(jnp.float32),
            master,
            params,
        )
        return recast, MasterState(master=master, inner=new_inner)

    return optax.GradientTransformation(init, update)


def apply(params: Any, updates: Any, opt_state: Any) -> Any:
    """The new parameters: recast from the master where `opt_state` keeps one, else
    `optax.apply_updates` (a low-precision sum that loses updates below half a weight's ulp)."""
    if isinstance(opt_state, MasterState):
        return jax.tree_util.tree_map(lambda m, p: m.astype(p.dtype), opt_state.master, params)
    return optax.apply_updates(params, updates)
