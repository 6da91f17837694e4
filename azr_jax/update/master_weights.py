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

`with_compensated_sum(inner)` is the same effect for half that (2 bytes a parameter), for the
slices where a float32 master does not fit (qwen2.5-coder-7b on a v5e-8, per the TPU compiler):
Kahan summation, the weights' rounding error kept in the weights' own dtype,
  state   CompensatedState(compensation, inner): `compensation` what the bfloat16 weights lack of
          their exact value (|c| <= half a weight's spacing);
  update  the optimizer sees the weights w + c; the new exact value w + c + u is rounded to the
          weights' dtype and what rounding lost becomes the new c.
w + c carries ~16 significant bits: each step's update lands to ~2^-9 of half a spacing (for a
weight of 0.02, 1.2e-7 next to lr 1e-6), with no drift. `MODES` names the choices.
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


class CompensatedState(NamedTuple):
    compensation: Any  # tree like the params, their dtype: what rounding took from each weight
    inner: Any  # the wrapped optimizer's state (its moments in the params' dtype)


def with_compensated_sum(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """`inner` with Kahan-compensated weight updates (see the module docstring)."""

    def init(params):
        comp = jax.tree_util.tree_map(jnp.zeros_like, params)
        return CompensatedState(compensation=comp, inner=inner.init(params))

    def update(grads, state: CompensatedState, params=None):
        if params is None:
            raise ValueError("with_compensated_sum needs the params")
        f32 = jnp.float32
        grads32 = jax.tree_util.tree_map(lambda g: g.astype(f32), grads)
        exact = jax.tree_util.tree_map(
            lambda p, c: p.astype(f32) + c.astype(f32), params, state.compensation
        )
        updates, new_inner = inner.update(grads32, state.inner, exact)
        new_inner = jax.tree_util.tree_map(lambda n, o: n.astype(o.dtype), new_inner, state.inner)
        target = optax.apply_updates(exact, updates)  # float32
        rounded = jax.tree_util.tree_map(lambda t, p: t.astype(p.dtype), target, params)
        comp = jax.tree_util.tree_map(
            lambda t, r: (t - r.astype(f32)).astype(r.dtype), target, rounded
        )
        # the change of the stored weights: exact in float32 (two nearby bfloat16 numbers)
        step = jax.tree_util.tree_map(lambda r, p: r.astype(f32) - p.astype(f32), rounded, params)
        return step, CompensatedState(compensation=comp, inner=new_inner)

    return optax.GradientTransformation(init, update)


# rl.master_weights -> the wrapper (None: plain AdamW on the stored weights)
MODES = {"float32": with_master_weights, "compensated": with_compensated_sum, "none": None}


def apply(params: Any, updates: Any, opt_state: Any) -> Any:
    """The new parameters: recast from the master where `opt_state` keeps one, the rounded
    compensated sum with a compensation, else
    `optax.apply_updates` (a low-precision sum that loses updates below half a weight's ulp)."""
    if isinstance(opt_state, MasterState):
        return jax.tree_util.tree_map(lambda m, p: m.astype(p.dtype), opt_state.master, params)
    if isinstance(opt_state, CompensatedState):  # the float32 sum is exact: the rounded target
        return jax.tree_util.tree_map(
            lambda p, u: (p.astype(jnp.float32) + u).astype(p.dtype), params, updates
        )
    return optax.apply_updates(params, updates)
