"""The slot engine: continuous batching over one KV cache, refilled as rows finish.

Shapes: L decode slots, S cache length (`max_cache_length`), N = settings.max_new_tokens, M rows
prefilled by one insert, P their prompt bucket, V vocabulary, Q stop-automaton states.

Each slot holds one request: one prompt and one sample (a request's n samples are n requests).
Its cache row is laid out as the static sampler lays out each of its rows (sampler.py): the
prompt left-padded to its bucket P in slots [0, P) (`offset` = P - prompt length is the first
real one), generated token i at slot P + i (`base` = P) and position prompt length + i. Slots
move independently, so every row writes its new key/value at its own slot (the transformer's
per-row `cache_index`) and attends to slots in [offset, its own] only: whatever a slot's earlier
requests left behind is masked, nothing needs clearing and nothing recompiles as requests come
and go. Tokens are drawn by `sampler.sample_token` from the request's own key folded with the
token's index, so a request gives the same tokens and log-probs in any slot, next to any
neighbours, as in the static sampler (tests/sampling/test_engine.py checks this bitwise).

Bitwise, that is, at equal shapes: XLA's CPU kernels are chosen by array size (a float32 row
reduction over fewer than ~4096 elements, or a small dot, runs in another loop order), so the
engine's programs have fixed shapes (every insert prefills M rows, padding included; every
step decodes all L slots) and a request's bits never depend on its neighbours or schedule; and
they equal the static sampler's when L, M and S equal its rows, prompts and cache length. At
other shapes the tokens agree but log-probs may differ in the last bits (~1e-6). Under an
fsdp-8 mesh with one prefill row per device the log-probs also differ in the last bits.

Three programs, each jitted once per (settings, shapes), the engine state donated:
  `insert`  prefills M waiting requests ([M, P] left-padded) and scatters their cache rows,
            next-token logits and bookkeeping into M free slots (slot index L: a padding row).
  `clone`   gives the other samples of a prompt just prefilled (a request of n samples is n
            requests with one prompt) a copy of its slot: cache row, logits, bookkeeping, each
            with its own key. One prefill serves all n samples (AZR's n difficulty rollouts,
            pass@k), with the bits n prefills would give (the same computation at the same
            shapes); a copy stays on its chips (`sharding.copy_rows`).
  `chunk`   runs up to k decode steps over all L slots (a `while_loop` that stops early when
            every slot is done): each samples from its logits, then feeds the token; finished
            and free slots compute but write nothing. It reads the cache's first W slots only,
            W (the window) the smallest of `windows` that holds every live row for the next k
            steps: a decode step reads L x W keys and values per layer, not L x S, so short
            rows in a long cache (AZR's: a few hundred tokens of S = 6,144 + 8,096) do not pay
            for the longest row the cache could hold. One program per window, compiled when
            first needed; at W = S the program is the unwindowed one.
The host scheduler (`Session`) loops: fill free slots from the queue (a full group of M at a
time while other slots decode, since an insert costs M rows anyway), run a chunk, hand back the
requests that finished. Callers may submit new requests between chunks (streaming), each with a
priority (lower first, oldest first within one): which slot a request gets, and when, never
changes its tokens, only how soon they come back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import heapq
import itertools
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.model import transformer as model_lib
from azr_jax.model.config import ModelConfig
from azr_jax.parallel import distributed
from azr_jax.parallel import sharding as shd
from azr_jax.sampling.sampler import (
    check_stop_table,
    decode_head,
    decode_logits,
    prompt_logits,
    sample_token,
)
from azr_jax.sampling.settings import SamplingSettings

# The smallest cache window a decode chunk reads (slots): below it a step's cost is the weights',
# not the cache's, and fewer windows mean fewer programs to compile.
MIN_WINDOW = 256


def window_sizes(length: int, smallest: int | None) -> tuple[int, ...]:
    """The cache windows a chunk may read: `smallest`, then two a doubling (x1.5, x2) below
    `length`, then `length` itself (so at most 1.5x the live extent is read; about 2 log2(S /
    smallest) programs in all, each compiled when first needed). None: `length` only."""
    sizes, w = [], smallest
    while w is not None and w < length:
        sizes += [w] + ([w * 3 // 2] if w * 3 // 2 < length else [])
        w *= 2
    return tuple(sizes) + (length,)


class EngineState(NamedTuple):
    tokens: jax.Array  # [L, N] int32 generated ids of each slot's request (pad after its end)
    logprobs: jax.Array  # [L, N] float32 their log-probs (0 after the end)
    lengths: jax.Array  # [L] int32 tokens generated so far (the next goes to column `lengths`)
    done: jax.Array  # [L] bool: the request has finished, or the slot is free
    stop_state: jax.Array  # [L] int32 stop-string automaton state
    keys: jax.Array  # [L] PRNG key of each slot's request
    prompt_lengths: jax.Array  # [L] int32 (token i has position prompt_length + i)
    base: jax.Array  # [L] int32 cache slot of generated token 0 (the request's prompt bucket)
    offset: jax.Array  # [L] int32 first real prompt slot (base - prompt_length)
    logits: jax.Array  # [L, V] float32 next-token logits of each slot (sampled by the next step)
    cache: model_lib.Cache  # per layer {"k", "v"}: [L, K, S, H]


def state_axes(num_layers: int) -> EngineState:
    """Logical axes of every EngineState field (for `sharding.tree_shardings`)."""
    row, row2 = ("batch",), ("batch", None)
    layer = {"k": model_lib.CACHE_AXES, "v": model_lib.CACHE_AXES}
    logits = ("batch", "act_vocab")
    return EngineState(row2, row2, row, row, row, row, row, row, row, logits, [layer] * num_layers)


def init_state(cfg: ModelConfig, slots: int, cache_length: int, settings: SamplingSettings):
    """All slots free."""
    n = settings.max_new_tokens
    zeros = jnp.zeros((slots,), jnp.int32)
    return EngineState(
        tokens=jnp.full((slots, n), settings.pad_id, jnp.int32),
        logprobs=jnp.zeros((slots, n), jnp.float32),
        lengths=zeros,
        done=jnp.ones((slots,), bool),
        stop_state=zeros,
        keys=jax.random.split(jax.random.key(0), slots),
        prompt_lengths=zeros,
        base=zeros,
        offset=zeros,
        logits=jnp.zeros((slots, cfg.vocab_size), jnp.float32),
        cache=model_lib.init_cache(cfg, slots, cache_length),
    )


def _stopped(token, stop_state, settings, stop_table):
    """(stopped [R] bool, new stop_state [R]) after emitting `token`."""
    stopped = jnp.zeros(token.shape, bool)
    if settings.eos_ids:
        stopped = jnp.isin(token, jnp.asarray(settings.eos_ids, jnp.int32))
    if stop_table is not None:
        stop_state = stop_table[stop_state, token]
        stopped = stopped | (stop_state == stop_table.shape[0] - 1)
    return stopped, stop_state


# ----------------------------------------------------------------------------- the programs
def insert(
    params: dict,
    cfg: ModelConfig,
    state: EngineState,
    prompt_tokens: jax.Array,  # [M, P] int32, left-padded
    prompt_lengths: jax.Array,  # [M] int32 (>= 1 for real rows)
    slots: jax.Array,  # [M] int32 target slot of each row; L (out of range): a padding row
    keys: jax.Array,  # [M] PRNG keys of the requests
    settings: SamplingSettings,
    gather_per_layer: bool = False,  # fsdp-sharded weights: as `sampler.prefill`'s
) -> EngineState:
    """Prefills M requests into their slots; their first token is sampled by the next step."""
    m, p = prompt_tokens.shape
    prompt_mask = jnp.arange(p)[None, :] >= (p - prompt_lengths)[:, None]  # [M, P]
    positions = model_lib.positions_from_mask(prompt_mask)  # [M, P]
    cache = model_lib.init_cache(cfg, m, p)
    h, cache = model_lib.hidden_states(
        params,
        cfg,
        prompt_tokens,
        positions,
        prompt_mask,
        cache,
        0,
        gather_per_layer=gather_per_layer,
    )  # a prefill: attention over the fresh [P, P] keys only
    logits = prompt_logits(params, cfg, h[:, -1], gather_per_layer)  # [M, V]
    logits = shd.constrain(logits, ("batch", "act_vocab"))
    zero = jnp.zeros((m,), jnp.int32)

    def put(x, rows):
        return x.at[slots].set(rows.astype(x.dtype), mode="drop")

    axes = model_lib.CACHE_AXES
    new_cache = [
        {  # each shard writes its rows into its slots (`Session._fill` assigns them so)
            name: shd.insert_cache_rows(big[name], shd.constrain(small[name], axes), slots, axes)
            for name in ("k", "v")
        }
        for big, small in zip(state.cache, cache, strict=True)
    ]
    n = settings.max_new_tokens
    return EngineState(
        tokens=put(state.tokens, jnp.full((m, n), settings.pad_id, jnp.int32)),
        logprobs=put(state.logprobs, jnp.zeros((m, n), jnp.float32)),
        lengths=put(state.lengths, zero),
        done=put(state.done, jnp.zeros((m,), bool)),
        stop_state=put(state.stop_state, zero),
        keys=state.keys.at[slots].set(keys, mode="drop"),
        prompt_lengths=put(state.prompt_lengths, prompt_lengths),
        base=put(state.base, zero + p),
        offset=put(state.offset, p - prompt_lengths),
        logits=shd.constrain(put(state.logits, logits), ("batch", "act_vocab")),
        cache=new_cache,
    )


def clone(
    state: EngineState,
    src: jax.Array,  # [C] int32 slot just prefilled with the prompt
    dst: jax.Array,  # [C] int32 free slot for another sample of it; L: a padding pair
    key_data: jax.Array,  # [C, 2] uint32 the new requests' keys
) -> EngineState:
    """Slots dst[c] start the request of slot src[c] over, with their own keys (the source has
    not decoded yet: its logits are still the prompt's)."""
    axes = state_axes(len(state.cache))
    copied = jax.tree.map(
        lambda x, logical: shd.copy_rows(x, src, dst, logical),
        state._replace(keys=None),
        axes._replace(keys=None),
    )
    keys = jax.random.wrap_key_data(key_data)
    return copied._replace(keys=state.keys.at[dst].set(keys, mode="drop"))


def decode_step(
    params: dict,
    cfg: ModelConfig,
    head: jax.Array,  # the LM head (`sampler.decode_head`)
    state: EngineState,
    settings: SamplingSettings,
    stop_table: jax.Array | None,
    vocab_parallel: bool = False,  # fsdp-sharded weights: the head's (`sampler.decode_head`)
) -> EngineState:
    """Every live slot samples its next token from its logits, then feeds it at its own slot.

    The same operations, on the same shapes, as one step of the static sampler (sample from
    [R, V] logits, then one forward of the new token), which is what makes them agree bitwise.
    """
    n = settings.max_new_tokens
    num_slots, cache_len = state.done.shape[0], state.cache[0]["k"].shape[2]
    live = ~state.done  # [L]
    index = state.lengths  # [L] index of the token sampled now
    token, logp = sample_token(state.keys, index, state.logits, settings)
    token = jnp.where(live, token, settings.pad_id)
    logp = jnp.where(live, logp, 0.0)
    rows = jnp.arange(num_slots)
    col = jnp.where(live, index, n)  # a done row's write is dropped
    stopped, stop_state = _stopped(token, state.stop_state, settings, stop_table)
    lengths = state.lengths + live.astype(jnp.int32)
    done = state.done | (live & stopped) | (lengths >= n)
    # Rows that go on feed their new token; the others write to slot S (dropped).
    write = jnp.where(done, cache_len, state.base + index)  # [L]
    positions = (state.prompt_lengths + index)[:, None]  # [L, 1]
    kv_mask = jnp.arange(cache_len)[None, :] >= state.offset[:, None]  # [L, S]
    h, cache = model_lib.hidden_states(
        params,
        cfg,
        token[:, None],
        positions,
        kv_mask,
        state.cache,
        write,
        gather_per_layer=vocab_parallel,  # fsdp-sharded weights: one layer's gathers at a time
    )  # [L, 1, D]
    logits = decode_logits(cfg, head, h[:, 0], vocab_parallel)  # [L, V]
    return state._replace(
        tokens=state.tokens.at[rows, col].set(token, mode="drop"),
        logprobs=state.logprobs.at[rows, col].set(logp, mode="drop"),
        lengths=lengths,
        done=done,
        stop_state=jnp.where(live, stop_state, state.stop_state),
        logits=shd.constrain(logits, ("batch", "act_vocab")),
        cache=[{k: shd.constrain(v, model_lib.CACHE_AXES) for k, v in c.items()} for c in cache],
    )


def chunk(
    params: dict,
    cfg: ModelConfig,
    state: EngineState,
    steps: int,
    settings: SamplingSettings,
    stop_table: jax.Array | None = None,
    gather_per_step: bool = False,
    window: int | None = None,
    free_to_stop: jax.Array | int | None = None,
) -> EngineState:
    """Up to `steps` decode steps; stops early once every slot is done, or once
    `free_to_stop` (an int32 scalar, a traced argument) slots are done or free: enough for the
    host to prefill a waiting group. `gather_per_step`: as `sampler.decode`'s (fsdp-sharded
    weights gathered a layer at a time inside the loop).
    `window` W < S: the steps see cache slots [0, W) only (every live row must end below
    W - steps; the host picks W so, `Session._window`); the window is copied out once before
    the loop and back once after it, the rest of the cache untouched."""
    full = state.cache[0]["k"].shape[2]
    if window is not None and window < full:
        inner = state._replace(
            cache=[{k: v[:, :, :window] for k, v in c.items()} for c in state.cache]
        )
        out = chunk(
            params, cfg, inner, steps, settings, stop_table, gather_per_step, None, free_to_stop
        )
        cache = [
            {k: shd.constrain(big[k].at[:, :, :window].set(c[k]), model_lib.CACHE_AXES) for k in c}
            for big, c in zip(state.cache, out.cache, strict=True)
        ]
        return out._replace(cache=cache)
    head = decode_head(params, cfg, vocab_parallel=gather_per_step)

    def cond(carry):
        i, s = carry
        go = (i < steps) & ~jnp.all(s.done)
        if free_to_stop is not None:
            go &= jnp.sum(s.done.astype(jnp.int32)) < free_to_stop
        return go

    def body(carry):
        i, s = carry
        return i + 1, decode_step(params, cfg, head, s, settings, stop_table, gather_per_step)

    return jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), state))[1]


# ----------------------------------------------------------------------------- host side
@dataclasses.dataclass(frozen=True)
class Request:
    """One prompt, one sample. `tag` comes back with the result (the caller's bookkeeping)."""

    prompt_ids: np.ndarray  # [p] int32 real prompt tokens
    key: Any  # a PRNG key (typed, or raw uint32 data): the request's own randomness
    tag: Any = None


@dataclasses.dataclass(frozen=True)
class Completion:
    tag: Any
    prompt_ids: np.ndarray  # [p] int32
    tokens: np.ndarray  # [r] int32 generated ids (EOS / stop token included)
    logprobs: np.ndarray  # [r] float32


def _key_data(key) -> np.ndarray:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(key, np.uint32)


class Engine:
    """The compiled slot engine: `session(params, settings)` to stream, `run` for a list.

    Args:
      cfg: the model config.
      mesh: a (data, fsdp, tensor) mesh, or None for one device without shardings.
      slots: decode slots L (a multiple of the mesh's data x fsdp).
      chunk: decode steps k per device call between host scheduling.
      max_cache_length: S, the most cache slots a request may need (prompt bucket + N).
      prompt_buckets: allowed padded prompt lengths (default: from 16, two a doubling, x1.5
        and x2, as `window_sizes`: a prefill's cost grows faster than its length, and each
        bucket is one more insert program, compiled when first used).
      prefill_batch: the most requests prefilled by one insert (rounded to powers of two).
      rules: parameter sharding rules (default `sharding.sampling_rules`).
      min_window: the smallest cache window a chunk reads (`window_sizes`); None: always all S.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        mesh: jax.sharding.Mesh | None = None,
        slots: int = 8,
        chunk: int = 8,
        max_cache_length: int | None = None,
        prompt_buckets: tuple[int, ...] | None = None,
        prefill_batch: int | None = None,
        rules: Mapping[str, Any] | None = None,
        min_window: int | None = MIN_WINDOW,
    ):
        if slots < 1 or chunk < 1:
            raise ValueError(f"slots={slots}, chunk={chunk}: both must be >= 1")
        self.cfg, self.mesh, self.slots, self.chunk_steps = cfg, mesh, slots, chunk
        self.max_cache_length = max_cache_length or cfg.max_position_embeddings
        if prompt_buckets is None:  # 16, 24, 32, 48, ...: a prompt pads by at most a half
            prompt_buckets = window_sizes(self.max_cache_length, 16)
        self.prompt_buckets = tuple(sorted(prompt_buckets))
        self.windows = window_sizes(self.max_cache_length, min_window)
        self.prefill_batch = max(1, min(prefill_batch or slots, slots))
        param_bytes = cfg.num_params * np.dtype(jnp.dtype(cfg.param_dtype)).itemsize
        self.rules = rules if rules is not None else shd.sampling_rules(mesh, param_bytes)
        self.param_shardings = None
        self._reshard = None
        self._programs: dict[tuple, Any] = {}
        self.compile_seconds = 0.0
        if mesh is not None:
            shd.check_heads(mesh, cfg.num_heads, cfg.num_kv_heads)
            shd.check_batch(mesh, slots, "engine slots")
            shd.check_batch(mesh, self.prefill_batch, "engine prefill_batch")
            self.param_shardings = shd.tree_shardings(
                model_lib.abstract_params(cfg), model_lib.param_axes(cfg), mesh, self.rules
            )

    # -- compiled programs
    def place_params(self, params: dict) -> dict:
        if self.mesh is None:
            return params
        if self._reshard is None:
            self._reshard = jax.jit(lambda p: p, out_shardings=self.param_shardings)
        return self._reshard(params)

    def _state_shardings(self, settings):
        abstract = jax.eval_shape(
            lambda: init_state(self.cfg, self.slots, self.max_cache_length, settings)
        )
        return shd.tree_shardings(abstract, state_axes(self.cfg.num_layers), self.mesh, self.rules)

    def programs(self, settings: SamplingSettings, table_shape):
        """(init, insert, chunk, clone) jitted for these settings (jit caches the insert
        shapes); `chunk(window)` is the decode chunk over the cache's first `window` slots."""
        key = (settings, table_shape)
        if key in self._programs:
            return self._programs[key]
        cfg, mesh, steps, length = self.cfg, self.mesh, self.chunk_steps, self.max_cache_length

        def init():
            return init_state(cfg, self.slots, length, settings)

        per_step = shd.gathers_weights_per_step(mesh, self.rules)

        def ins(params, state, tokens, lengths, slots, key_data):
            keys = jax.random.wrap_key_data(key_data)  # [M, 2] uint32 -> [M] keys
            return insert(params, cfg, state, tokens, lengths, slots, keys, settings, per_step)

        def dec(window, params, state, table, free_to_stop):
            return chunk(params, cfg, state, steps, settings, table, per_step, window, free_to_stop)

        chunks: dict[int, Any] = {}

        def chunk_for(window: int):
            if window not in chunks:
                fn = functools.partial(dec, window)
                if mesh is None:
                    chunks[window] = jax.jit(fn, donate_argnums=1)
                else:
                    chunks[window] = jax.jit(
                        fn,
                        in_shardings=(self.param_shardings, st, tab, rep),
                        out_shardings=st,
                        donate_argnums=1,
                    )
            return chunks[window]

        st = tab = rep = None
        if mesh is None:
            out = (
                jax.jit(init),
                jax.jit(ins, donate_argnums=1),
                chunk_for,
                jax.jit(clone, donate_argnums=0),
            )
        else:
            st = self._state_shardings(settings)
            rep = shd.replicated(mesh)
            tab = None if table_shape is None else rep
            rows, rows2 = shd.batch_sharding(mesh, 1), shd.batch_sharding(mesh, 2)
            out = (
                jax.jit(init, out_shardings=st),
                jax.jit(  # the prefill rows over data x fsdp, as the static sampler's prompts
                    ins,
                    in_shardings=(self.param_shardings, st, rows2, rows, rep, rows2),
                    out_shardings=st,
                    donate_argnums=1,
                ),
                chunk_for,
                jax.jit(
                    clone, in_shardings=(st, rep, rep, rep), out_shardings=st, donate_argnums=0
                ),
            )
        self._programs[key] = out
        return out

    def check(self, prompt_len: int, settings: SamplingSettings) -> int:
        """The prompt bucket of a prompt; a clear error when the request cannot be served."""
        if prompt_len < 1:
            raise ValueError("engine request with an empty prompt")
        fits = [b for b in self.prompt_buckets if b >= prompt_len]
        if not fits:
            raise ValueError(
                f"a prompt has {prompt_len} tokens, more than the largest prompt bucket "
                f"{self.prompt_buckets[-1]}; shorten it or add a larger bucket"
            )
        need = fits[0] + settings.max_new_tokens
        if need > self.max_cache_length:
            raise ValueError(
                f"prompt bucket {fits[0]} + max_new_tokens {settings.max_new_tokens} = {need} "
                f"exceeds the engine's cache length {self.max_cache_length}; shorten the "
                "prompts, lower max_new_tokens or raise max_cache_length"
            )
        return fits[0]

    def session(self, params, settings: SamplingSettings, stop_table=None) -> Session:
        """A queue over the slots (`settings.n` is ignored: a request is one sample)."""
        settings = settings.replace(n=1)
        check_stop_table(settings, stop_table, self.cfg.vocab_size)
        return Session(self, self.place_params(params), settings, stop_table)

    def run(self, params, requests: Iterable[Request], settings, stop_table=None):
        """All requests to completion: their Completions, in the order given."""
        requests = list(requests)
        session = self.session(params, settings, stop_table)
        for i, r in enumerate(requests):
            session.submit(Request(r.prompt_ids, r.key, i))
        out: list[Completion | None] = [None] * len(requests)
        while session.busy():
            for c in session.step():
                out[c.tag] = dataclasses.replace(c, tag=requests[c.tag].tag)
        return out

    # Host arrays into a program: as numpy on one process (jit places them by its in_shardings,
    # far cheaper than an eager device_put each); from host memory on every process otherwise,
    # so that each can place its part on the global mesh.
    def _place(self, x):
        if self.mesh is None or jax.process_count() == 1:
            return np.asarray(x)
        return jax.device_put(np.asarray(x), shd.replicated(self.mesh))

    def _resident(self, x):
        """A replicated device copy of host array `x`, for arrays passed to every chunk."""
        if self.mesh is None:
            return jax.device_put(x)
        return jax.device_put(x, shd.replicated(self.mesh))

    def _place_rows(self, x):
        if self.mesh is None or jax.process_count() == 1:
            return np.asarray(x)
        return jax.device_put(np.asarray(x), shd.batch_sharding(self.mesh, np.ndim(x)))


class Session:
    """One queue over the engine's slots, for one set of params and settings.

    `submit` requests at any time; each `step` fills free slots from the queue (lowest
    priority value first, oldest first among equals; a request right behind one with the same
    prompt takes a copy of its slot rather than a prefill row), runs one decode chunk and
    returns the requests that finished in it. Counters: `tokens` generated, `chunks` run,
    `copies` made, `device_s` spent in device calls (waiting on their results).
    """

    def __init__(self, engine: Engine, params, settings: SamplingSettings, stop_table):
        self.engine, self.params, self.settings = engine, params, settings
        table = None if stop_table is None else np.asarray(stop_table, np.int32)
        self.table = None if table is None else engine._resident(table)  # sent once, not a chunk
        shape = None if stop_table is None else tuple(stop_table.shape)
        init, self._insert, self._chunk, self._clone = engine.programs(settings, shape)
        with _mesh_context(engine.mesh):
            self.state = init()
        # heap of (priority, arrival, bucket, request): the next request to prefill at [0]
        self.queue: list[tuple[int, int, int, Request]] = []
        self._arrival = itertools.count()
        self.owner: list[Request | None] = [None] * engine.slots
        # host copies of each slot's prompt bucket and generated length (after the last chunk):
        # how far into the cache the next chunk can write, hence its window
        self.base = np.zeros((engine.slots,), np.int64)
        self.length = np.zeros((engine.slots,), np.int64)
        self.windows: dict[int, int] = {}  # chunks run per window
        self.tokens = self.chunks = self.copies = 0  # copies: samples started by `clone`
        self.device_s = 0.0

    def submit(self, request: Request | Iterable[Request], priority: int = 0) -> None:
        """Queues requests; those with a lower `priority` are prefilled first (FIFO within one)."""
        for r in [request] if isinstance(request, Request) else request:
            ids = np.asarray(r.prompt_ids, np.int32)
            bucket = self.engine.check(len(ids), self.settings)
            entry = (priority, next(self._arrival), bucket, dataclasses.replace(r, prompt_ids=ids))
            heapq.heappush(self.queue, entry)

    def busy(self) -> bool:
        return bool(self.queue) or any(o is not None for o in self.owner)

    def step(self) -> list[Completion]:
        e = self.engine
        t0 = time.perf_counter()
        with _mesh_context(e.mesh):
            self._fill()
            window = self._window()
            # Stop the chunk early once a waiting group could be prefilled, and at least a quarter
            # of the slots are free: each chunk costs a dispatch and its window's copies, so one
            # per finished row would cost more than the idle slot-steps it saves (never, if none
            # waits).
            need = (
                max(min(e.prefill_batch, len(self.queue)), e.slots // 4)
                if self.queue
                else e.slots + 1
            )
            free = np.int32(max(need, sum(o is None for o in self.owner) + 1))
            self.state = self._chunk(window)(self.params, self.state, self.table, e._place(free))
            done, lengths = distributed.fetch((self.state.done, self.state.lengths))
            self.length[:] = lengths
            self.chunks += 1
            self.windows[window] = self.windows.get(window, 0) + 1
            finished = [s for s, o in enumerate(self.owner) if o is not None and done[s]]
            out = []
            if finished:
                tokens, logprobs = distributed.fetch((self.state.tokens, self.state.logprobs))
                for s in finished:
                    r, n = self.owner[s], int(lengths[s])
                    out.append(
                        Completion(
                            r.tag, r.prompt_ids, tokens[s, :n].copy(), logprobs[s, :n].copy()
                        )
                    )
                    self.tokens += n
                    self.owner[s] = None
        self.device_s += time.perf_counter() - t0
        return out

    def _window(self) -> int:
        """The smallest window that holds every owned slot's writes in the next chunk (a slot
        writes generated token i at its bucket + i)."""
        e = self.engine
        owned = [s for s, o in enumerate(self.owner) if o is not None]
        extent = max((int(self.base[s] + self.length[s]) for s in owned), default=0)
        extent += e.chunk_steps
        return next((w for w in e.windows if w >= extent), e.windows[-1])

    def _fill(self) -> None:
        """Prefills waiting requests into free slots, in groups of one prompt bucket."""
        e = self.engine
        shards = shd.batch_shards(e.mesh)
        free = [s for s, o in enumerate(self.owner) if o is None]
        pairs = assign_rows(free, e.slots, e.prefill_batch, shards)
        busy = len(free) < len(self.owner)
        # A prefill costs M rows whatever the number of real ones: while other slots decode,
        # wait until a full group of slots is free (or the queue holds fewer requests).
        if busy and len(pairs) < min(e.prefill_batch, len(self.queue)):
            return
        per_slot = e.slots // shards
        while pairs and self.queue:
            bucket = self.queue[0][2]
            group = []  # one request per prefill row
            copies = []  # (source slot, free slot, request): another sample of a grouped prompt
            taken = {slot for _, slot in pairs}
            spare = [s for s in free if s not in taken]
            while self.queue and self.queue[0][2] == bucket:
                r = self.queue[0][3]
                if group and _same_prompt(r, group[-1]):
                    source = pairs[len(group) - 1][1]
                    # a free slot on the source's chips, not needed by this insert
                    shard = [s for s in spare if s // per_slot == source // per_slot]
                    if shard:
                        heapq.heappop(self.queue)
                        spare.remove(shard[0])
                        copies.append((source, shard[0], r))
                        continue
                if len(group) == len(pairs):
                    break
                group.append(heapq.heappop(self.queue)[3])
            m = e.prefill_batch  # always M rows: one shape, so one kernel choice (see above)
            tokens = np.zeros((m, bucket), np.int32)
            lengths = np.zeros((m,), np.int32)
            slots = np.full((m,), e.slots, np.int32)  # out of range: dropped
            keys = np.zeros((m, 2), np.uint32)
            for (row, slot), r in zip(pairs, group, strict=False):
                tokens[row, bucket - len(r.prompt_ids) :] = r.prompt_ids
                lengths[row] = len(r.prompt_ids)
                slots[row] = slot
                keys[row] = _key_data(r.key)
            lengths[lengths == 0] = 1  # padding rows: any valid prompt, never stored
            self.state = self._insert(
                self.params,
                self.state,
                e._place_rows(tokens),
                e._place_rows(lengths),
                e._place(slots),
                e._place_rows(keys),
            )
            for (_, slot), r in zip(pairs, group, strict=False):
                self.owner[slot] = r
                self.base[slot], self.length[slot] = bucket, 0
            if copies:
                self._copy(copies, bucket)
            free = [s for s in free if self.owner[s] is None]
            pairs = assign_rows(free, e.slots, e.prefill_batch, shards)

    def _copy(self, copies: list[tuple[int, int, Request]], bucket: int) -> None:
        """Starts each (source, slot, request) as a copy of its source slot, just prefilled."""
        e = self.engine
        src = np.zeros((e.slots,), np.int32)
        dst = np.full((e.slots,), e.slots, np.int32)  # out of range: dropped
        keys = np.zeros((e.slots, 2), np.uint32)
        for c, (source, slot, r) in enumerate(copies):
            src[c], dst[c], keys[c] = source, slot, _key_data(r.key)
            self.owner[slot] = r
            self.base[slot], self.length[slot] = bucket, 0
        self.copies += len(copies)
        self.state = self._clone(self.state, e._place(src), e._place(dst), e._place(keys))


def _same_prompt(a: Request, b: Request) -> bool:
    return a.prompt_ids is b.prompt_ids or (
        a.prompt_ids.shape == b.prompt_ids.shape and np.array_equal(a.prompt_ids, b.prompt_ids)
    )


def assign_rows(free: list[int], slots: int, rows: int, shards: int) -> list[tuple[int, int]]:
    """(row, slot) pairs of one insert: free slots in order, each given a row of its own shard.

    Rows and slots split into `shards` equal blocks (data x fsdp), so row r and slot s live on
    the same chips when r // (rows / shards) == s // (slots / shards); the insert writes each
    row into its slot on those chips (`sharding.insert_cache_rows`), moving no rows between
    chips. At most rows / shards slots of a shard fill per insert: a free slot whose shard has
    no row left waits for the next one. Without a mesh (1 shard): row i gets free[i].
    """
    per_row, per_slot = rows // shards, slots // shards
    used = [0] * shards
    out = []
    for s in free:
        b = s // per_slot
        if used[b] < per_row:
            out.append((b * per_row + used[b], s))
            used[b] += 1
    return out


def _mesh_context(mesh):
    return contextlib.nullcontext() if mesh is None else jax.set_mesh(mesh)
