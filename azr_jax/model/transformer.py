"""The decoder-only causal LM (Qwen2/2.5, Qwen3, Llama 3.x, GPT-2) as a Flax NNX module.

Axis legend (einsum letters): B batch, T query length, S key/cache length, D hidden size,
N query heads, K key/value heads, G = N // K query heads per KV head, H head dim, F MLP width,
V vocabulary.

The KV cache is an explicit pytree: a list (one entry per layer) of `{"k": [B, K, S, H],
"v": [B, K, S, H]}` (heads before slots, so decode attention reads it without a transpose).
Rows of a batch may be padded: the caller passes per-row `positions` ([B, T]) and `kv_mask`
([B, S], True where a cache slot / key holds a real token). Query `t` of a call attends to key
slot `s` iff `s <= cache_index + t` and `kv_mask[b, s]`. `cache_index` is one scalar slot for the
whole batch, or (decode only) a [B] array: row b's new keys go to its own slots (the slot engine,
`sampling/engine.py`, whose rows are at different points of different requests).

Packed rows (the update, `azr_jax.update.packing`): the full-sequence path (no cache) also takes
`segment_ids` [B, T] int32 (0 = padding, k > 0 = the row's k-th episode). Query `t` then attends
to key `s` iff `s <= t`, `segment_ids[b, s] == segment_ids[b, t] > 0` and `kv_mask[b, s]`, and
every position always sees itself (a pad position's row is never fully masked, so it stays
finite). Positions restarting per episode are the caller's (`positions`). With
`segment_ids=None` nothing changes.

`forward(params, cfg, ...)` is the pure function used under jit; `params` is a plain nested dict
of arrays (see `abstract_params` / `param_axes`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from azr_jax.model import splash
from azr_jax.model.config import ModelConfig
from azr_jax.parallel.sharding import constrain

Cache = list[dict[str, jax.Array]]
_NEG = -1e30  # finite "minus infinity": a fully masked (pad) row stays finite


def _param(rngs: nnx.Rngs, shape: tuple[int, ...], axes: tuple, dtype: str, std: float = 0.02):
    return nnx.Param(std * jax.random.normal(rngs.params(), shape, dtype), axes=axes)


def _zeros(shape: tuple[int, ...], axes: tuple, dtype: str):
    return nnx.Param(jnp.zeros(shape, dtype), axes=axes)


def _ones(shape: tuple[int, ...], axes: tuple, dtype: str):
    return nnx.Param(jnp.ones(shape, dtype), axes=axes)


class Norm(nnx.Module):
    """RMSNorm (Llama/Qwen: statistics in float32) or LayerNorm (GPT-2)."""

    def __init__(self, dim: int, kind: str, eps: float, dtype: str, axis: str = "norm"):
        self.kind, self.eps = kind, eps
        self.scale = _ones((dim,), (axis,), dtype)
        self.bias = _zeros((dim,), (axis,), dtype) if kind == "layer" else None

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        if self.kind == "rms":
            y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
            return self.scale[...].astype(x.dtype) * y.astype(x.dtype)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        y = y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
        return y.astype(x.dtype)


class Dense(nnx.Module):
    """A linear map written as an einsum between named axes, with an optional bias."""

    def __init__(
        self,
        eq: str,
        shape: tuple,
        axes: tuple,
        bias_dims: int,
        use_bias: bool,
        cfg: ModelConfig,
        rngs: nnx.Rngs,
    ):
        self.eq = eq
        self.kernel = _param(rngs, shape, axes, cfg.param_dtype)
        self.bias = (
            _zeros(shape[-bias_dims:], axes[-bias_dims:], cfg.param_dtype) if use_bias else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jnp.einsum(self.eq, x, self.kernel[...].astype(x.dtype))
        if self.bias is not None:
            y = y + self.bias[...].astype(x.dtype)
        return y


def rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """Rotary embedding (HF's rotate-half convention). x: [B, T, *, H], positions: [B, T]."""
    freqs = positions[..., None].astype(jnp.float32) * inv_freq  # [B, T, H/2]
    emb = jnp.concatenate([freqs, freqs], axis=-1)[:, :, None, :]  # [B, T, 1, H]
    cos, sin = jnp.cos(emb).astype(x.dtype), jnp.sin(emb).astype(x.dtype)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        d, n, k, h = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.cfg = cfg
        b = cfg.attention_bias
        self.q = Dense("BTD,DNH->BTNH", (d, n, h), ("embed", "heads", "head_dim"), 2, b, cfg, rngs)
        self.k = Dense(
            "BSD,DKH->BSKH", (d, k, h), ("embed", "kv_heads", "head_dim"), 2, b, cfg, rngs
        )
        self.v = Dense(
            "BSD,DKH->BSKH", (d, k, h), ("embed", "kv_heads", "head_dim"), 2, b, cfg, rngs
        )
        self.o = Dense(
            "BTNH,NHD->BTD", (n, h, d), ("heads", "head_dim", "embed"), 1, cfg.o_bias, cfg, rngs
        )
        if cfg.switches["qk_norm"]:
            self.q_norm = Norm(h, "rms", cfg.norm_eps, cfg.param_dtype)
            self.k_norm = Norm(h, "rms", cfg.norm_eps, cfg.param_dtype)
        else:
            self.q_norm = self.k_norm = None

    def __call__(self, x, positions, kv_mask, cache, cache_index, segment_ids=None):
        cfg = self.cfg
        if segment_ids is not None and cache is not None:
            raise ValueError("segment_ids (packed rows) are for the full-sequence path: cache=None")
        q, k, v = self.q(x), self.k(x), self.v(x)  # [B, T, N, H], [B, T, K, H] x2
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if cfg.switches["positions"] == "rope":
            inv_freq = jnp.asarray(cfg.rope_inv_freq())
            q, k = rope(q, positions, inv_freq), rope(k, positions, inv_freq)
        q = constrain(q, ("batch", "length", "act_heads", None))
        t = x.shape[1]
        # A prefill (cache_index the Python int 0) attends to the fresh keys only: the cache's
        # later slots are all masked by causality, so [T, T] scores instead of [T, S], and the
        # fused kernels apply. The cache is written all the same.
        prefill = cache is not None and isinstance(cache_index, int) and cache_index == 0
        per_row = cache is not None and not prefill and jnp.ndim(cache_index) == 1
        if per_row:  # [B] int32: every row writes its T new keys at its own slot (slot engine)
            rows = jnp.arange(x.shape[0])[:, None]  # [B, 1]
            slots = cache_index[:, None] + jnp.arange(t)[None, :]  # [B, T]
            new_cache = {
                name: cache[name].at[rows, :, slots].set(x_.astype(cache[name].dtype), mode="drop")
                for name, x_ in (("k", k), ("v", v))  # [B, T, K, H] at [B, K, S, H][b, :, s]
            }
        elif cache is not None:
            zero = jnp.zeros((), jnp.int32)
            idx = (zero, zero, jnp.asarray(cache_index, jnp.int32), zero)
            new = {"k": k.transpose(0, 2, 1, 3), "v": v.transpose(0, 2, 1, 3)}  # [B, K, T, H]
            new_cache = {
                name: jax.lax.dynamic_update_slice(cache[name], x_.astype(cache[name].dtype), idx)
                for name, x_ in new.items()
            }
        if prefill or cache is None:
            self_mask = kv_mask[:, :t]  # [B, T]
            if cfg.attention == "splash":
                out = self._splash(q, k, v, self_mask, segment_ids)
                return out, new_cache if prefill else None
            if cfg.attention != "einsum":
                out = self._fused(q, k, v, self_mask, segment_ids)
                return out, new_cache if prefill else None
            k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, K, T, H] x2
            cache, kv_mask, cache_index = (new_cache if prefill else None), self_mask, 0
        else:
            cache = new_cache
            k, v = cache["k"].astype(x.dtype), cache["v"].astype(x.dtype)  # [B, K, S, H] x2
        k_slot = jnp.arange(k.shape[2])  # [S]
        if per_row:
            q_slot = cache_index[:, None] + jnp.arange(t)[None, :]  # [B, T]
            mask = (k_slot[None, None, :] <= q_slot[:, :, None]) & kv_mask[:, None, :]
        else:
            q_slot = cache_index + jnp.arange(t)  # [T]
            mask = (k_slot[None, :] <= q_slot[:, None])[None] & kv_mask[:, None, :]  # [B, T, S]
        if segment_ids is not None:  # no cache here: T == S
            mask = (mask & same_segment(segment_ids)) | jnp.eye(t, dtype=bool)[None]
        b, _, n, h = q.shape
        kh = k.shape[1]
        qg = q.reshape(b, t, kh, n // kh, h)  # [B, T, K, G, H]
        scores = jnp.einsum("BTKGH,BKSH->BKGTS", qg, k, preferred_element_type=jnp.float32)
        scores = scores * (h**-0.5)
        scores = jnp.where(mask[:, None, None, :, :], scores, _NEG)
        probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        out = jnp.einsum("BKGTS,BKSH->BKGTH", probs, v)  # the dot's own order: no slow path
        out = out.transpose(0, 3, 1, 2, 4).reshape(b, t, n * h)  # [B, T, N * H]
        return self._out(out), cache

    def _out(self, out: jax.Array) -> jax.Array:
        """[B, T, N * H] attention output -> [B, T, D]."""
        # One flat contracting axis: with two (N, H) jnp.einsum orders them (H, N), and XLA then
        # copies the transposed [H, N, D] weight on every decode step.
        w = self.o.kernel[...].astype(out.dtype).reshape(out.shape[-1], -1)  # [N * H, D]
        y = jnp.einsum("BTE,ED->BTD", out, w)
        if self.o.bias is not None:
            y = y + self.o.bias[...].astype(y.dtype)
        return y

    def _splash(
        self,
        q: jax.Array,
        k: jax.Array,
        v: jax.Array,
        kv_mask: jax.Array,
        segment_ids: jax.Array | None = None,
    ) -> jax.Array:
        """Causal self-attention on the Pallas splash kernel (`model/splash.py`): q [B, T, N, H],
        k and v [B, T, K, H], kv_mask [B, T]. Packed rows pass their segment ids [B, T] (0 =
        padding); otherwise left padding becomes segment 0 (pads attend only to pads), real
        tokens segment 1."""
        b, t, n, h = q.shape
        seg = kv_mask.astype(jnp.int32) if segment_ids is None else segment_ids
        interpret = self.cfg.splash_interpret
        if interpret is None:
            interpret = jax.default_backend() != "tpu"
        out = splash.splash_attention(q, k, v, seg, interpret=interpret)  # [B, T, N, H]
        return self._out(out.reshape(b, t, n * h))

    def _fused(
        self,
        q: jax.Array,
        k: jax.Array,
        v: jax.Array,
        kv_mask: jax.Array,
        segment_ids: jax.Array | None = None,
    ) -> jax.Array:
        """Causal self-attention without a cache through `jax.nn.dot_product_attention`.

        q [B, T, N, H], k and v [B, T, K, H] (GQA handled by the library), kv_mask [B, T] (real
        tokens). Rows may be left-padded: keys are masked by `kv_mask`, and every position may
        always see itself, so a pad row is never fully masked (a fully masked row is NaN in
        some kernels; its output is never used, but NaN would leak through 0 * NaN in the
        backward pass). Real rows are unaffected: their own key is real anyway. With
        `segment_ids` [B, T] (packed rows) keys are also restricted to the query's segment.
        """
        b, t, n, h = q.shape
        own = jnp.eye(t, dtype=bool)[None, None]  # [1, 1, T, S]
        mask = kv_mask[:, None, None, :].astype(bool)  # [B, 1, 1, S]
        if segment_ids is not None:
            mask = mask & same_segment(segment_ids)[:, None]  # [B, 1, T, S]
        mask = mask | own  # [B, 1, T, S]
        out = jax.nn.dot_product_attention(
            q, k, v, mask=mask, is_causal=True, implementation=self.cfg.attention
        )  # [B, T, N, H]
        return self._out(out.reshape(b, t, n * h))


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        d, f, b = cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias
        self.gated = cfg.switches["gated_mlp"]
        self.act = cfg.switches["act"]
        self.gate = (
            Dense("BTD,DF->BTF", (d, f), ("embed", "mlp"), 1, b, cfg, rngs) if self.gated else None
        )
        self.up = Dense("BTD,DF->BTF", (d, f), ("embed", "mlp"), 1, b, cfg, rngs)
        self.down = Dense("BTF,FD->BTD", (f, d), ("mlp", "embed"), 1, b, cfg, rngs)
        self.chunk = cfg.mlp_chunk

    def __call__(self, x: jax.Array) -> jax.Array:
        """[B, T, D] -> [B, T, D]. With `cfg.mlp_chunk` = c > 0 and T > c, the positions go
        through in chunks of c (`lax.map`, each chunk under `jax.checkpoint`): the [B, c, F]
        working set instead of [B, T, F], the same function (position-wise)."""
        c = self.chunk
        t = x.shape[1]
        if not c or t <= c:
            return self._apply(x)
        n = -(-t // c)
        xs = jnp.pad(x, ((0, 0), (0, n * c - t), (0, 0)))  # [B, n*c, D]
        xs = jnp.moveaxis(xs.reshape(x.shape[0], n, c, x.shape[2]), 1, 0)  # [n, B, c, D]
        ys = jax.lax.map(jax.checkpoint(self._apply), xs)  # [n, B, c, D]
        ys = jnp.moveaxis(ys, 0, 1).reshape(x.shape[0], n * c, x.shape[2])
        return ys[:, :t]

    def _apply(self, x: jax.Array) -> jax.Array:
        if self.gated:
            hidden = jax.nn.silu(self.gate(x)) * self.up(x)
        else:
            hidden = jax.nn.gelu(self.up(x), approximate=True)  # GPT-2's gelu_new
        hidden = constrain(hidden, ("batch", "length", "act_mlp"))
        return self.down(hidden)


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        kind = cfg.switches["norm"]
        self.attn_norm = Norm(cfg.hidden_size, kind, cfg.norm_eps, cfg.param_dtype)
        self.attn = Attention(cfg, rngs)
        self.mlp_norm = Norm(cfg.hidden_size, kind, cfg.norm_eps, cfg.param_dtype)
        self.mlp = MLP(cfg, rngs)

    def __call__(self, x, positions, kv_mask, cache, cache_index, segment_ids=None):
        h, cache = self.attn(self.attn_norm(x), positions, kv_mask, cache, cache_index, segment_ids)
        x = constrain(x + h, ("batch", "length", "act_embed"))
        x = x + self.mlp(self.mlp_norm(x))
        return constrain(x, ("batch", "length", "act_embed")), cache


class CausalLM(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        d = cfg.hidden_size
        self.embed = _param(rngs, (cfg.vocab_size, d), ("vocab", "embed"), cfg.param_dtype)
        if cfg.switches["positions"] == "learned":
            self.pos_embed = _param(
                rngs, (cfg.max_position_embeddings, d), ("positions", "embed"), cfg.param_dtype
            )
        else:
            self.pos_embed = None
        self.layers = nnx.List([Block(cfg, rngs) for _ in range(cfg.num_layers)])
        self.final_norm = Norm(d, cfg.switches["norm"], cfg.norm_eps, cfg.param_dtype)
        if cfg.tie_word_embeddings:
            self.lm_head = None
        else:
            self.lm_head = _param(rngs, (d, cfg.vocab_size), ("embed", "vocab"), cfg.param_dtype)

    def hidden(
        self,
        tokens,
        positions,
        kv_mask,
        cache=None,
        cache_index=None,
        remat=False,
        segment_ids=None,
        gather_per_layer=False,
    ):
        """Final normalised hidden states [B, T, D] and the updated cache.

        `gather_per_layer` (decode loops over fsdp-sharded weights): each layer's weights wait
        for the layer's input (an optimization barrier, no work), so the compiler gathers one
        layer at a time inside the loop instead of every layer's weights at once.

        `remat` (training, no cache) recomputes each block's activations in the backward pass
        instead of storing them: memory per layer drops to the block's input. `segment_ids`
        [B, T] (packed rows, no cache): see the module docstring.
        """
        dtype = jnp.dtype(self.cfg.dtype)
        # Vocab-parallel lookup: gather the table over `embed` first (as FSDP does for every
        # weight), else the partitioner replicates the [B, T, D] result to re-split it by batch.
        # (Looking up in the stored layout, D split, and moving the result by all-to-all came out
        # no better in the TPU compiler's full-depth figures: +0.1 GiB for Qwen2.5-7B, +1 GiB
        # for Qwen3-4B at 16k tokens a chip.) One token per row (a decode step): look up in the
        # stored layout (a [B, 1, D] result; no gathered table for the loop to hold throughout).
        table = self.embed[...]  # [V, D]
        if tokens.shape[1] > 1:
            table = constrain(table, ("vocab", None))
        x = jnp.take(table, tokens, axis=0).astype(dtype)  # [B, T, D]
        if self.pos_embed is not None:
            x = x + jnp.take(self.pos_embed[...], positions, axis=0).astype(dtype)
        x = constrain(x, ("batch", "length", "act_embed"))
        new_cache = [] if cache is not None else None
        if remat:
            if cache is not None:
                raise ValueError("remat is for training (no KV cache); pass cache=None")

            if self.cfg.remat_offload:
                for layer in self.layers:
                    x = _offloaded_remat(layer, x, positions, kv_mask, segment_ids)
                return self.final_norm(x), None

            def block(layer, x):
                return layer(x, positions, kv_mask, None, None, segment_ids)[0]

            remat_block = nnx.remat(block)
            for layer in self.layers:
                x = remat_block(layer, x)
            return self.final_norm(x), None
        for i, layer in enumerate(self.layers):
            if gather_per_layer:
                layer = _after(layer, x)
            x, layer_cache = layer(
                x,
                positions,
                kv_mask,
                None if cache is None else cache[i],
                cache_index,
                segment_ids,
            )
            if cache is not None:
                new_cache.append(layer_cache)
        return self.final_norm(x), new_cache

    def logits(self, h: jax.Array) -> jax.Array:
        """[B, T, D] hidden -> [B, T, V] float32 logits."""
        if self.lm_head is None:
            w = self.embed[...].astype(h.dtype)
            out = jnp.einsum("BTD,VD->BTV", h, w, preferred_element_type=jnp.float32)
        else:
            w = self.lm_head[...].astype(h.dtype)
            out = jnp.einsum("BTD,DV->BTV", h, w, preferred_element_type=jnp.float32)
        return constrain(out, ("batch", "length", "act_vocab"))

    def __call__(self, tokens, positions, kv_mask, cache=None, cache_index=None, segment_ids=None):
        h, cache = self.hidden(
            tokens, positions, kv_mask, cache, cache_index, segment_ids=segment_ids
        )
        return self.logits(h), cache


def _offloaded_remat(layer: nnx.Module, x, positions, kv_mask, segment_ids) -> jax.Array:
    """One block under remat whose only saved value, its input x [B, T, D], lives in pinned host
    memory between the forward and the backward pass (`ModelConfig.remat_offload`).

    A custom VJP with four orderings the TPU compiler keeps (each one found missing in its
    compiled programs, scripts/compile_tpu.py; tests/scripts/test_compile_tpu.py checks the
    result): (1) the forward waits for the copy to host before the block's output moves on, so
    the device copy dies with the block (with a `jax.checkpoint` offload policy the copy was
    finished only at the backward pass, the device copy alive till then); (2) the backward
    fetches x only once the block's output cotangent exists (`_fetch_after`; a plain
    device_put was fetched back right after the copy out, and an optimization barrier did not
    hold it); (3) the recomputation gathers its weights anew (a barrier on them), rather than
    sharing the forward's gathered fsdp weights, which then stayed alive for every layer;
    (4) the block's parameter gradients are complete before its input's cotangent moves on (a
    barrier on both): the k/v bias gradients (sums of the [B, T, K, H] cotangents) were left to
    the end of the backward pass, one [B, T, K, H] cotangent kept per layer until then.
    The numbers equal plain remat's (tests/model/test_transformer.py).
    """
    graphdef, state = nnx.split(layer)

    def apply(state, x, rest):
        return nnx.merge(graphdef, state)(x, rest[0], rest[1], None, None, rest[2])[0]

    @jax.custom_vjp
    def run(state, x, rest):
        return apply(state, x, rest)

    def fwd(state, x, rest):
        y = apply(state, x, rest)
        saved = jax.device_put(x, jax.memory.Space.Host)
        saved, y = jax.lax.optimization_barrier((saved, y))  # (1)
        return y, (state, saved, rest)

    def bwd(res, dy):
        state, saved, rest = res
        state, dy = jax.lax.optimization_barrier((state, dy))  # (3): no sharing with the forward
        x = _fetch_after(saved, dy)
        _, vjp = jax.vjp(lambda s, x: apply(s, x, rest), state, x)
        d_state, dx = jax.lax.optimization_barrier(vjp(dy))  # (4)
        return d_state, dx, jax.tree.map(lambda _: None, rest)

    run.defvjp(fwd, bwd)
    return run(state, x, (positions, kv_mask, segment_ids))


def _fetch_after(saved: jax.Array, dy: jax.Array) -> jax.Array:
    """`saved` (pinned host memory) copied back to the device once `dy` exists: inside a loop
    of one trip whose count depends on `dy`, so the compiler cannot move the copy earlier."""
    first = dy.reshape(-1)[0]
    trips = jnp.minimum(1, 1 + (first != first).astype(jnp.int32))  # 1 (NaN or not)

    def body(carry):
        i, host, _ = carry
        return i + 1, host, jax.device_put(host, jax.memory.Space.Device)

    # dy as the result's first value (overwritten): a device buffer that exists only from now
    init = (jnp.int32(0), saved, dy.astype(saved.dtype))
    return jax.lax.while_loop(lambda c: c[0] < trips, body, init)[2]


def _after(module: nnx.Module, x: jax.Array) -> nnx.Module:
    """`module` with its parameters made to depend on `x` (values unchanged)."""
    graphdef, state = nnx.split(module)
    state, _ = jax.lax.optimization_barrier((state, x))
    return nnx.merge(graphdef, state)


@functools.cache
def _graph(cfg: ModelConfig):
    abstract = nnx.eval_shape(lambda: CausalLM(cfg, nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    return graphdef, state


def abstract_params(cfg: ModelConfig) -> dict:
    """Nested dict of `jax.ShapeDtypeStruct`: the parameter tree, without allocating it."""
    return nnx.to_pure_dict(_graph(cfg)[1])


def param_axes(cfg: ModelConfig) -> dict:
    """Nested dict (same structure as the parameters) of logical-axis tuples."""
    state = _graph(cfg)[1]
    flat = {path: var.get_metadata()["axes"] for path, var in nnx.to_flat_state(state)}
    return _unflatten(flat)


def _unflatten(flat: dict) -> dict:
    out: dict = {}
    for path, value in flat.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def init_params(cfg: ModelConfig, seed: int = 0) -> dict:
    """Random parameters (normal, std 0.02): for tests and benchmarks; real runs load weights."""
    return nnx.to_pure_dict(nnx.state(CausalLM(cfg, nnx.Rngs(seed))))


def bind(params: dict, cfg: ModelConfig) -> CausalLM:
    """The module with `params` (a pure dict, possibly traced) filled in."""
    graphdef, state = _graph(cfg)
    state = jax.tree_util.tree_map(lambda x: x, state)  # a fresh copy of the abstract state
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


def forward(
    params: dict,
    cfg: ModelConfig,
    tokens: jax.Array,  # [B, T] int32
    positions: jax.Array,  # [B, T] int32
    kv_mask: jax.Array,  # [B, S] bool (S = T without a cache)
    cache: Cache | None = None,
    cache_index: jax.Array | int | None = None,  # int32 [] or [B]: cache slot of tokens[:, 0]
    segment_ids: jax.Array | None = None,  # [B, T] int32 packed rows (no cache): 0 = padding
) -> tuple[jax.Array, Cache | None]:
    """Logits [B, T, V] (float32) and the updated cache."""
    return bind(params, cfg)(tokens, positions, kv_mask, cache, cache_index, segment_ids)


def hidden_states(
    params,
    cfg,
    tokens,
    positions,
    kv_mask,
    cache=None,
    cache_index=None,
    *,
    remat=False,
    segment_ids=None,
    gather_per_layer=False,
):
    """Final normalised hidden states [B, T, D] (before the LM head) and the cache.

    `remat=True` (training only, no cache) wraps each block in `jax.checkpoint`.
    `segment_ids` [B, T] int32 (packed rows, no cache): attention stays within each segment.
    `gather_per_layer`: see `CausalLM.hidden` (decode loops over fsdp-sharded weights).
    """
    return bind(params, cfg).hidden(
        tokens, positions, kv_mask, cache, cache_index, remat, segment_ids, gather_per_layer
    )


def unembed(params: dict, cfg: ModelConfig, h: jax.Array) -> jax.Array:
    """LM head: [B, T, D] -> [B, T, V] float32 logits."""
    return bind(params, cfg).logits(h)


def init_cache(cfg: ModelConfig, batch: int, length: int, dtype: str | None = None) -> Cache:
    """An empty KV cache: per layer `{"k", "v"}` of shape [B, K, S, H]."""
    shape = (batch, cfg.num_kv_heads, length, cfg.head_dim)
    dt = jnp.dtype(dtype or cfg.dtype)
    return [{"k": jnp.zeros(shape, dt), "v": jnp.zeros(shape, dt)} for _ in range(cfg.num_layers)]


CACHE_AXES = ("batch", "act_kv_heads", "cache_length", None)


def same_segment(segment_ids: jax.Array) -> jax.Array:
    """[B, T] segment ids -> [B, T, S] bool: key s is in query t's segment and not padding (0)."""
    seg = segment_ids.astype(jnp.int32)
    return (seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] > 0)


def positions_from_mask(mask: jax.Array) -> jax.Array:
    """Per-row positions for a left- or right-padded [B, T] mask: 0, 1, ... over real tokens."""
    return jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=-1) - 1, 0)
