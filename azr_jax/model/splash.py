"""Causal self-attention on JAX's Pallas TPU splash-attention kernel (`model.attention=splash`).

Flash-style: the [T, S] scores are computed block by block in VMEM and never reach HBM; softmax
statistics (running max, log-sum-exp) are float32 whatever the input dtype. Grouped-query
attention is the kernel's own (query head h reads KV head h // (N // K)): the KV heads are never
repeated in memory. Segment ids carry both left padding and packing: a token attends causally to
the keys of its own segment only (0 = padding, which attends only to padding, so no row of the
mask is ever empty and the backward pass stays finite).

On a TPU the kernel compiles to Mosaic; elsewhere `interpret=True` runs the same kernel as plain
JAX ops (slow: tests and parity checks only). Under a mesh (`jax.set_mesh`) the kernel runs per
device through `sharding.shard_map_logical` (rows over data x fsdp, heads over tensor): a Pallas
call cannot be partitioned by XLA itself.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu import splash_attention as sa

from azr_jax.parallel.sharding import shard_map_logical

LANES = 128  # TPU lane width: block sizes are multiples of it


def block_size(t: int) -> int:
    """Query / key block for a T-token sequence: 512 (the kernel's sweet spot on TPU) for long
    sequences, one lane width (128) for short ones; T is padded up to a multiple of it."""
    return 512 if t >= 2048 else LANES


def _kernel(num_heads: int, length: int, block: int, interpret: bool):
    """The kernel for one sequence [N, T, H] (q) x [K, T, H] (k, v). Built inside each trace
    (its mask tables become constants of that trace; the mask analysis itself is cached)."""
    mask = sa.MultiHeadMask([sa.CausalMask((length, length)) for _ in range(num_heads)])
    blocks = sa.BlockSizes(
        block_q=block,
        block_kv=block,
        block_kv_compute=block,
        block_q_dkv=block,
        block_kv_dkv=block,
        block_kv_dkv_compute=block,
        block_q_dq=block,
        block_kv_dq=block,
    )
    return sa.make_splash_mha(
        mask, block_sizes=blocks, head_shards=1, q_seq_shards=1, interpret=interpret
    )


def _local(q, k, v, segment_ids, *, interpret: bool):
    """One device's share: q [b, T, n, H], k and v [b, T, k, H], segment_ids [b, T]."""
    b, t, n, h = q.shape
    block = block_size(t)
    pad = -t % block
    if pad:  # trailing pad tokens: causally invisible to every real query, sliced off after
        widths = ((0, 0), (0, pad), (0, 0), (0, 0))
        q, k, v = (jnp.pad(x, widths) for x in (q, k, v))
        segment_ids = jnp.pad(segment_ids, ((0, 0), (0, pad)))
    length = t + pad
    kernel = _kernel(n, length, block, interpret)
    q = (q * (h**-0.5)).transpose(0, 2, 1, 3)  # [b, n, T, H]; the kernel does not scale
    k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [b, k, T, H] x2

    def one(q, k, v, seg):
        return kernel(q, k, v, segment_ids=sa.SegmentIds(q=seg, kv=seg))

    out = jax.vmap(one)(q, k, v, segment_ids.astype(jnp.int32))  # [b, n, T, H]
    return out.transpose(0, 2, 1, 3)[:, :t]  # [b, T, n, H]


def splash_attention(
    q: jax.Array,  # [B, T, N, H]
    k: jax.Array,  # [B, T, K, H]
    v: jax.Array,  # [B, T, K, H]
    segment_ids: jax.Array,  # [B, T] int32: 0 padding, > 0 the segment (episode) of each token
    *,
    interpret: bool,
) -> jax.Array:
    """Causal attention within segments: out [B, T, N, H] in q's dtype.

    Query t of row b attends to key s iff s <= t and segment_ids[b, s] == segment_ids[b, t].
    """
    b, t, n, h = q.shape
    if k.shape != v.shape or k.shape[:2] != (b, t) or k.shape[3] != h or n % k.shape[2]:
        raise ValueError(
            f"splash_attention: q {q.shape}, k {k.shape}, v {v.shape}: need k == v == [B, T, K, "
            "H] with K dividing N (grouped-query)"
        )
    if segment_ids.shape != (b, t):
        raise ValueError(f"splash_attention: segment_ids {segment_ids.shape} must be [B, T]={b, t}")
    fn = functools.partial(_local, interpret=interpret)
    heads, kv_heads = (
        ("batch", "length", "act_heads", None),
        ("batch", "length", "act_kv_heads", None),
    )
    return shard_map_logical(
        fn, (heads, kv_heads, kv_heads, ("batch", "length")), heads, q, k, v, segment_ids
    )
