"""All sharding in one place: the device mesh, the logical-axis rules, and shardings from shapes.

Model code names only logical axes (`"embed"`, `"heads"`, ...). This module maps them onto the
three mesh axes:
  data   - pure data parallelism (batch split, parameters replicated),
  fsdp   - batch split and parameters/optimizer state sharded along their `embed` axis,
  tensor - Megatron-style tensor parallelism (heads, MLP width and vocabulary split).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# Logical axis -> mesh axis (or axes, or None = replicated). The one table of the project.
TRAIN_RULES: dict[str, Any] = {
    # parameters
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",
    "kv_heads": "tensor",
    "mlp": "tensor",
    "head_dim": None,
    "norm": None,
    "positions": None,
    # activations
    "batch": BATCH_AXES,
    "length": None,
    "act_embed": None,
    "act_heads": "tensor",
    "act_kv_heads": "tensor",
    "act_mlp": "tensor",
    "act_vocab": "tensor",
    "cache_length": None,
    # the update's LM head (update/logprobs.py): vocabulary over every chip of a data replica,
    # the chunk's rows gathered over fsdp (kept split over data)
    "loss_vocab": ("fsdp", "tensor"),
    "loss_batch": "data",
}
# Sampling keeps whole weights on each tensor shard (no fsdp gathers per decode step), as Tunix
# does when the weights fit; the batch still splits over data x fsdp.
SAMPLE_RULES: dict[str, Any] = {**TRAIN_RULES, "embed": None}


# The TPU compiler's options for programs that gather fsdp-sharded weights in a long forward and
# backward pass (the train step). Its "windowed einsum" (collective matmul) runs a weight's fsdp
# all-gather, or a weight gradient's reduce-scatter, as a loop of partial matmuls into an output
# buffer that the scheduler allocates when the micro-batch loop's body starts: every layer's
# q/k/v projection outputs ([rows, T, N, H] and 2 x [rows, T, K, H], 0.22 GiB a layer for
# qwen2.5-coder-14b at 16,384 tokens a chip) and weight-gradient shards were live from the first
# layer's forward on, 0.31 GiB a layer in all (scripts/compile_tpu.py). Plain (asynchronous)
# all-gathers and reduce-scatters instead: the same products, each buffer live only in its layer.
TPU_COMPILER_OPTIONS: dict[str, Any] = {
    "xla_tpu_enable_windowed_einsum_for_all_gather": False,
    "xla_tpu_enable_windowed_einsum_for_reduce_scatter": False,
}


def make_mesh(
    data: int = -1, fsdp: int = 1, tensor: int = 1, devices: Sequence[Any] | None = None
) -> Mesh:
    """A (data, fsdp, tensor) mesh over `devices` (default: all, on every host).

    One size may be -1: it takes the devices that remain.
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = {"data": data, "fsdp": fsdp, "tensor": tensor}
    free = [k for k, v in sizes.items() if v == -1]
    if len(free) > 1:
        raise ValueError(f"mesh: only one axis may be -1, got {sizes}")
    for k, v in sizes.items():
        if v != -1 and v < 1:
            raise ValueError(f"mesh.{k}={v}: sizes must be >= 1 (or -1 for 'the rest')")
    fixed = math.prod(v for v in sizes.values() if v != -1)
    if free:
        if len(devices) % fixed:
            raise ValueError(
                f"mesh {sizes}: {len(devices)} devices do not divide by the fixed axes ({fixed}); "
                "change mesh.data/fsdp/tensor"
            )
        sizes[free[0]] = len(devices) // fixed
    if math.prod(sizes.values()) != len(devices):
        raise ValueError(
            f"mesh {sizes} needs {math.prod(sizes.values())} devices but {len(devices)} are "
            "available; set one axis to -1 or change the sizes"
        )
    shape = tuple(sizes[a] for a in MESH_AXES)
    try:
        grid = jax.experimental.mesh_utils.create_device_mesh(shape, devices=devices)
    except Exception:  # noqa: BLE001 - CPU / odd topologies: plain order is fine
        grid = np.asarray(devices, dtype=object).reshape(shape)
    return Mesh(grid, MESH_AXES)


def compiler_options(mesh: Mesh) -> dict[str, Any]:
    """`jax.jit`'s compiler_options for a program over `mesh`: `TPU_COMPILER_OPTIONS` on TPU
    devices (real or a compile-only topology's), none elsewhere (other compilers reject them)."""
    return dict(TPU_COMPILER_OPTIONS) if mesh.devices.flat[0].platform == "tpu" else {}


def spec(logical: Sequence[str | None], rules: Mapping[str, Any] = TRAIN_RULES) -> PartitionSpec:
    """PartitionSpec for a tuple of logical axis names."""
    out = []
    for name in logical:
        if name is None:
            out.append(None)
            continue
        if name not in rules:
            raise KeyError(f"logical axis {name!r} has no rule in azr_jax.parallel.sharding")
        out.append(rules[name])
    return PartitionSpec(*out)


def _axis_size(mesh: Mesh, axes: Any) -> int:
    if axes is None:
        return 1
    if isinstance(axes, str):
        axes = (axes,)
    return math.prod(mesh.shape[a] for a in axes)


def named_sharding(
    mesh: Mesh,
    logical: Sequence[str | None],
    shape: Sequence[int],
    rules: Mapping[str, Any] = TRAIN_RULES,
    what: str = "array",
) -> NamedSharding:
    """NamedSharding for an array of `shape`; a dimension that does not divide is an error."""
    pspec = spec(logical, rules)
    for dim, (size, axes, name) in enumerate(zip(shape, pspec, logical, strict=True)):
        n = _axis_size(mesh, axes)
        if size % n:
            raise ValueError(
                f"{what}: dimension {dim} ({name}, size {size}) does not divide over mesh axes "
                f"{axes} of size {n}; change the mesh (e.g. a smaller tensor/fsdp size)"
            )
    return NamedSharding(mesh, pspec)


def tree_shardings(
    abstract: Any, axes: Any, mesh: Mesh, rules: Mapping[str, Any] = TRAIN_RULES
) -> Any:
    """Shardings for a pytree of ShapeDtypeStructs, given a matching pytree of logical-axis tuples."""
    flat_axes = dict(jax.tree_util.tree_flatten_with_path(axes, is_leaf=_is_axes)[0])
    flat, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    out = []
    for path, leaf in flat:
        logical = flat_axes[path]
        out.append(named_sharding(mesh, logical, leaf.shape, rules, jax.tree_util.keystr(path)))
    return jax.tree_util.tree_unflatten(treedef, out)


def _is_axes(x: Any) -> bool:
    return isinstance(x, tuple) and all(a is None or isinstance(a, str) for a in x)


def constrain(x: jax.Array, logical: Sequence[str | None]) -> jax.Array:
    """`with_sharding_constraint` by logical names; a no-op when no mesh is set (`jax.set_mesh`)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, spec(logical))


def batch_shards(mesh: Mesh | None) -> int:
    """How many blocks a batch-major array splits into (data x fsdp; 1 without a mesh)."""
    return 1 if mesh is None else _axis_size(mesh, BATCH_AXES)


def insert_cache_rows(
    cache: jax.Array,  # [L, K, S, H] one layer's K or V over every slot
    rows: jax.Array,  # [M, K, P, H] P <= S: the same layer's K or V of M prefilled prompts
    slots: jax.Array,  # [M] int32 target slot of each row; >= L: a padding row (dropped)
    logical: Sequence[str | None],  # the logical axes of both (model.CACHE_AXES)
) -> jax.Array:
    """`cache[slots[r], :, :P] = rows[r]`. Under a mesh the rows and the slots both split over
    data x fsdp, and each shard writes its own rows into its own slots: row r (in block
    r // (M / n)) must target a slot of the same block (the engine's scheduler assigns them
    so; any other target is dropped). A scatter of rows with replicated indices would gather
    every row onto every chip first: [M, K, P, H] per layer (qwen2.5-coder-14b on a v5e-32,
    8192-token prompts: 1 GiB a layer; that insert asked >= 18 GiB in all)."""
    p = rows.shape[2]

    def write(c, r, s):
        return c.at[s, :, :p].set(r.astype(c.dtype), mode="drop")

    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return write(cache, rows, slots)
    n = batch_shards(mesh)
    m, length = rows.shape[0], cache.shape[0]
    local = slots - (jnp.arange(m) // (m // n)) * (length // n)  # the slot within its block
    local = jnp.where((local >= 0) & (local < length // n), local, length // n)
    pspec = spec(logical)
    return jax.shard_map(
        write, in_specs=(pspec, pspec, PartitionSpec(BATCH_AXES)), out_specs=pspec
    )(cache, rows, local)


def copy_rows(
    x: jax.Array,  # [L, ...] one slot-major array (the engine state's fields, a cache layer)
    src: jax.Array,  # [C] int32 slot to copy from
    dst: jax.Array,  # [C] int32 slot to copy into; >= L: a padding pair (dropped)
    logical: Sequence[str | None],  # the logical axes of x
) -> jax.Array:
    """`x[dst[c]] = x[src[c]]` along the slot axis. Under a mesh the slots split over data x fsdp
    and each shard copies only pairs whose source and target both lie in its block (the engine's
    scheduler makes no other; any other is dropped): no row moves between chips."""

    def local(x, src, dst, block):
        per = x.shape[0]
        lo = block * per
        mine = (src >= lo) & (src < lo + per) & (dst >= lo) & (dst < lo + per)
        rows = x[jnp.where(mine, src - lo, 0)]
        return x.at[jnp.where(mine, dst - lo, per)].set(rows, mode="drop")

    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return local(x, src, dst, 0)
    pspec = spec(logical)

    def per_shard(x, src, dst):
        return local(x, src, dst, jax.lax.axis_index(BATCH_AXES))

    return jax.shard_map(
        per_shard, in_specs=(pspec, PartitionSpec(), PartitionSpec()), out_specs=pspec
    )(x, src, dst)


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """Sharding of a batch-major array: rows over data x fsdp, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def check_batch(mesh: Mesh, batch: int, what: str = "batch") -> None:
    """A clear error when `batch` rows do not divide over data x fsdp."""
    n = _axis_size(mesh, BATCH_AXES)
    if batch % n:
        raise ValueError(
            f"{what} of {batch} rows does not divide over the mesh's data x fsdp = {n} devices; "
            f"use a multiple of {n} or change mesh.data / mesh.fsdp"
        )


def check_heads(mesh: Mesh, num_heads: int, num_kv_heads: int) -> None:
    """A clear error when attention heads do not divide over the tensor axis."""
    t = mesh.shape["tensor"]
    for name, n in (("num_attention_heads", num_heads), ("num_key_value_heads", num_kv_heads)):
        if n % t:
            raise ValueError(
                f"{name}={n} does not divide over mesh.tensor={t}; use a tensor size that divides it"
            )


def addressable_rows(sharding: jax.sharding.Sharding, shape: Sequence[int]) -> np.ndarray:
    """Sorted indices of the rows (axis 0) of an array of `shape` that this process's devices hold.

    With a mesh that spans hosts, each process holds only its share; `jax.make_array_from_process_
    local_data` expects exactly these rows, in this order.
    """
    held: set[int] = set()
    for index in sharding.addressable_devices_indices_map(tuple(shape)).values():
        held.update(range(shape[0])[index[0]])
    return np.asarray(sorted(held), dtype=np.int64)


def optimizer_state_shardings(
    init_fn: Callable[[Any], Any], abstract_params: Any, param_shardings: Any, mesh: Mesh
) -> Any:
    """Shardings of `init_fn(params)` (an optimizer's init), derived from the parameters'.

    A state leaf whose key path ends with a parameter's key path (Adam's `mu.<path>`,
    `nu.<path>`) takes that parameter's sharding; scalar leaves (step counters) are replicated.
    """
    flat_params = jax.tree_util.tree_flatten_with_path(abstract_params)[0]
    by_path = {
        tuple(path): (leaf.shape, sh)
        for (path, leaf), sh in zip(
            flat_params, jax.tree_util.tree_leaves(param_shardings), strict=True
        )
    }

    def pick(path, leaf):
        start = len(path)  # the parameter path: the trailing run of dict keys
        while start > 0 and isinstance(path[start - 1], jax.tree_util.DictKey):
            start -= 1
        name = jax.tree_util.keystr(path)
        if tuple(path[start:]) in by_path:
            shape, sh = by_path[tuple(path[start:])]
            if shape != leaf.shape:
                raise ValueError(
                    f"optimizer state {name} has shape {leaf.shape} but its parameter {shape}"
                )
            return sh
        if leaf.ndim:
            raise ValueError(
                f"optimizer state {name} {leaf.shape} matches no parameter; teach "
                "azr_jax.parallel.sharding.optimizer_state_shardings about this optimizer's state"
            )
        return replicated(mesh)

    return jax.tree_util.tree_map_with_path(pick, jax.eval_shape(init_fn, abstract_params))


def sampling_rules(mesh: Mesh | None, param_bytes: int, fraction: float = 0.5) -> dict[str, Any]:
    """Parameter rules for sampling: `SAMPLE_RULES` (weights whole on each tensor shard, no fsdp
    gathers per decode step) when a tensor shard of the weights fits in `fraction` of a device's
    memory, else `TRAIN_RULES`. Devices that do not report memory (CPU) get `SAMPLE_RULES`."""
    if mesh is None:
        return SAMPLE_RULES
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    stats = (local[0].memory_stats() if local else None) or {}
    limit = stats.get("bytes_limit")
    if limit and param_bytes / mesh.shape["tensor"] > fraction * limit:
        return TRAIN_RULES
    return SAMPLE_RULES


def gathers_weights_per_step(mesh: Mesh | None, rules: Mapping[str, Any]) -> bool:
    """Whether a decode loop under `rules` reads fsdp-sharded weights (gathering them per step):
    true when the rules split `embed` over a mesh axis of size > 1 (`TRAIN_RULES` when whole
    weights do not fit, `sampling_rules`)."""
    if mesh is None or rules.get("embed") is None:
        return False
    axes = rules["embed"] if isinstance(rules["embed"], tuple) else (rules["embed"],)
    return math.prod(mesh.shape[a] for a in axes) > 1


def shard_map_logical(
    fn: Callable[..., jax.Array],
    in_logical: Sequence[Sequence[str | None]],
    out_logical: Sequence[str | None],
    *args: jax.Array,
) -> jax.Array:
    """`fn(*args)` run per device under the context mesh (`jax.set_mesh`), each argument split
    by its logical axes (`in_logical`, one tuple per argument) and the result by `out_logical`;
    a plain call when no mesh is set. For kernels XLA cannot partition (Pallas calls): `fn` sees
    one device's block and must not communicate."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return fn(*args)
    return jax.shard_map(
        fn,
        in_specs=tuple(spec(axes) for axes in in_logical),
        out_specs=spec(out_logical),
        check_vma=False,
    )(*args)
