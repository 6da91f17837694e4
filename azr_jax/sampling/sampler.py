"""The sampler: prefill once per prompt, then decode in one `lax.while_loop` over a KV cache.

Shapes: B prompts, P prompt bucket length (prompts LEFT-padded to it), n samples per prompt,
R = B * n output rows (prompt-major: row b * n + j is sample j of prompt b), N = max_new_tokens,
S = P + N cache slots, V vocabulary, Q stop-automaton states.

Cache layout: slots [0, P) hold the left-padded prompt (pad slots masked out by `kv_mask`);
generated token i sits in slot P + i at position `prompt_length + i`. The prompt is prefilled
once for B rows, then its cache rows are repeated n times. Every row stops after an EOS id or
after the token that completes a stop string (see `stop_strings.py`); the loop ends when all
rows have stopped or N tokens are out. Rows with prompt length 0 are inactive (bucket padding).

`sample` is the pure function (jittable as a whole); `Sampler` jits `prefill` and `decode`
separately, once per shape key, with in/out shardings and the decode state donated.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.model import transformer as model_lib
from azr_jax.model.config import ModelConfig
from azr_jax.parallel import sharding as shd
from azr_jax.sampling.settings import SamplingSettings


class SampleOutput(NamedTuple):
    tokens: jax.Array  # [R, N] int32 generated ids; settings.pad_id after a row stops
    logprobs: jax.Array  # [R, N] float32 log-softmax(logits / temperature)[token]; 0 after stop
    lengths: jax.Array  # [R] int32 tokens generated per row (the EOS / stop token included)


class DecodeState(NamedTuple):
    step: jax.Array  # [] int32 tokens generated so far: the next one goes to column `step`
    tokens: jax.Array  # [R, N] int32
    logprobs: jax.Array  # [R, N] float32
    lengths: jax.Array  # [R] int32
    done: jax.Array  # [R] bool: the row has stopped (or is inactive)
    stop_state: jax.Array  # [R] int32 stop-string automaton state
    prompt_lengths: jax.Array  # [R] int32 real prompt tokens (token i has this + i as position)
    kv_mask: jax.Array  # [R, S] bool: real prompt slots and all generated slots
    keys: jax.Array  # [R] PRNG keys, one per row (`row_keys`), folded with each token's index
    cache: model_lib.Cache  # per layer {"k", "v"}: [R, K, S, H]


def state_axes(num_layers: int) -> DecodeState:
    """Logical axes of every DecodeState field (for `sharding.tree_shardings`)."""
    row, row2 = ("batch",), ("batch", None)
    layer = {"k": model_lib.CACHE_AXES, "v": model_lib.CACHE_AXES}
    return DecodeState((), row2, row2, row, row, row, row, row2, row, [layer] * num_layers)


# ----------------------------------------------------------------------------- one token
def _truncate(scaled: jax.Array, top_k: int, top_p: float) -> jax.Array:
    """Logits [R, V] with tokens outside the top-k / top-p set at -inf (ties at the cut stay)."""
    top_k = min(top_k, scaled.shape[-1])
    if top_k:
        top = jax.lax.top_k(scaled, top_k)[0]  # [R, k] descending
        scaled = jnp.where(scaled < top[:, -1:], -jnp.inf, scaled)
    if top_p < 1.0 and not top_k:  # no full-vocab sort (XLA:CPU: ~7 ms per row of 32k)
        scaled = jnp.where(scaled < _nucleus_cut(scaled, top_p), -jnp.inf, scaled)
    elif top_p < 1.0:
        probs = jax.nn.softmax(top, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly above each token
        keep = jnp.sum(before < top_p, axis=-1, keepdims=True)  # [R, 1] >= 1
        cut = jnp.take_along_axis(top, keep - 1, axis=-1)
        scaled = jnp.where(scaled < cut, -jnp.inf, scaled)
    return scaled


def _nucleus_cut(scaled: jax.Array, top_p: float) -> jax.Array:
    """The top-p cut [R, 1] of logits [R, V] without sorting: the smallest logit x whose mass
    strictly above, M(x) = sum of softmax over logits > x, is < top_p. Keeping logits >= it is
    the sorted rule (keep the descending prefix whose mass before each token is < top_p, ties at
    the cut stay), since M only falls as x rises. Found by bisection over the float32 order
    (32 halvings of uint32 keys, each one masked sum over V), up to float rounding of M."""
    probs = jax.nn.softmax(scaled, axis=-1)  # [R, V]
    bits = jax.lax.bitcast_convert_type(scaled, jnp.uint32)
    sign = jnp.uint32(0x80000000)
    keys = jnp.where(bits >= sign, ~bits, bits | sign)  # [R, V] uint32, monotone in the value

    def mass_above(c):  # [R] uint32 -> [R] float32
        return jnp.sum(jnp.where(keys > c[:, None], probs, 0.0), axis=-1)

    def halve(_, bounds):  # invariant: M(lo) >= top_p > M(hi)
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        below = mass_above(mid) < top_p
        return jnp.where(below, lo, mid), jnp.where(below, mid, hi)

    hi = jnp.max(keys, axis=-1)  # M(max) = 0
    lo = jnp.min(keys, axis=-1) - 1  # M = 1 (no key is 0: -inf's is 0x007FFFFF)
    _, hi = jax.lax.fori_loop(0, 32, halve, (lo, hi))  # hi - lo = 1: hi is the cut's key
    cut = jnp.where(hi >= sign, hi ^ sign, ~hi)
    return jax.lax.bitcast_convert_type(cut, jnp.float32)[:, None]


def _argmax(x: jax.Array) -> jax.Array:
    """argmax over the last axis as two plain reductions (first index of the max): XLA's CPU
    variadic (value, index) reduction is several times slower at [R, V]."""
    iota = jax.lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
    hit = x == jnp.max(x, axis=-1, keepdims=True)
    return jnp.min(jnp.where(hit, iota, x.shape[-1]), axis=-1)


def row_keys(rng: jax.Array, rows: int) -> jax.Array:
    """The per-row keys [rows] of a call: row r (sample j of prompt b, r = b * n + j) gets
    fold_in(rng, r). A request's tokens depend only on its key, never on its neighbours."""
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, jnp.arange(rows, dtype=jnp.int32))


def sample_token(
    keys: jax.Array,  # [R] PRNG keys, one per request
    index: jax.Array,  # [R] int32 index of the token being sampled within its request
    logits: jax.Array,  # [R, V] float32
    settings: SamplingSettings,
) -> tuple[jax.Array, jax.Array]:
    """One token per row: (token [R] int32, its log-prob [R]).

    The noise of row r is drawn from fold_in(keys[r], index[r]) alone, so the static sampler
    and the slot engine (engine.py), which both call this, give a request the same tokens
    whatever its slot, its neighbours or the step at which it was scheduled.
    """
    if settings.greedy:
        token = _argmax(logits)
        logp = jax.nn.log_softmax(logits, axis=-1)
    else:
        scaled = logits / settings.temperature
        logp = jax.nn.log_softmax(scaled, axis=-1)
        truncated = _truncate(scaled, settings.top_k, settings.top_p)
        v = truncated.shape[-1]
        noise = jax.vmap(lambda k, i: jax.random.gumbel(jax.random.fold_in(k, i), (v,)))(
            keys, index
        )  # [R, V]
        # Gumbel-max, as jax.random.categorical does, with the faster argmax.
        token = _argmax(truncated + noise)
    return token, jnp.take_along_axis(logp, token[:, None], axis=-1)[:, 0]


def _emit(
    state: DecodeState,
    logits: jax.Array,  # [R, V] float32: the next-token logits of every row
    settings: SamplingSettings,
    stop_table: jax.Array | None,  # [Q, V] int32
) -> DecodeState:
    """Samples column `state.step` and updates the stop bookkeeping."""
    index = jnp.broadcast_to(state.step, state.done.shape)  # [R]
    token, logp = sample_token(state.keys, index, logits, settings)
    live = ~state.done
    token = jnp.where(live, token, settings.pad_id)
    logp = jnp.where(live, logp, 0.0)
    zero = jnp.zeros((), jnp.int32)
    tokens = jax.lax.dynamic_update_slice(state.tokens, token[:, None], (zero, state.step))
    logprobs = jax.lax.dynamic_update_slice(state.logprobs, logp[:, None], (zero, state.step))
    stopped = jnp.zeros_like(live)
    if settings.eos_ids:
        stopped = jnp.isin(token, jnp.asarray(settings.eos_ids, jnp.int32))
    stop_state = state.stop_state
    if stop_table is not None:
        stop_state = stop_table[stop_state, token]
        stopped = stopped | (stop_state == stop_table.shape[0] - 1)
    return state._replace(
        step=state.step + 1,
        tokens=tokens,
        logprobs=logprobs,
        lengths=state.lengths + live.astype(jnp.int32),
        done=state.done | stopped,
        stop_state=stop_state,
    )


# ----------------------------------------------------------------------------- prefill / decode
def prefill(
    params: dict,
    cfg: ModelConfig,
    prompt_tokens: jax.Array,  # [B, P] int32, left-padded
    prompt_lengths: jax.Array,  # [B] int32 real tokens per row (0: an inactive row)
    rng: jax.Array,  # PRNG key
    settings: SamplingSettings,
    stop_table: jax.Array | None = None,  # [Q, V] int32
    gather_per_layer: bool = False,
) -> DecodeState:
    """Runs the prompts once, replicates each row n times and samples the first token.

    `gather_per_layer` (fsdp-sharded weights, `sharding.gathers_weights_per_step`): one layer's
    weights gathered at a time and the head split over the vocabulary (`prompt_logits`).
    """
    b, p = prompt_tokens.shape
    n, new = settings.n, settings.max_new_tokens
    prompt_mask = jnp.arange(p)[None, :] >= (p - prompt_lengths)[:, None]  # [B, P]
    positions = model_lib.positions_from_mask(prompt_mask)  # [B, P]
    kv_mask = jnp.concatenate([prompt_mask, jnp.ones((b, new), bool)], axis=1)  # [B, S]
    cache = model_lib.init_cache(cfg, b, p + new)
    h, cache = model_lib.hidden_states(
        params,
        cfg,
        prompt_tokens,
        positions,
        kv_mask,
        cache,
        0,  # static: a prefill
        gather_per_layer=gather_per_layer,
    )
    logits = prompt_logits(params, cfg, h[:, -1], gather_per_layer)  # [B, V]: left padding
    rep = functools.partial(jnp.repeat, repeats=n, axis=0, total_repeat_length=b * n)
    r = b * n
    state = DecodeState(
        step=jnp.zeros((), jnp.int32),
        tokens=jnp.full((r, new), settings.pad_id, jnp.int32),
        logprobs=jnp.zeros((r, new), jnp.float32),
        lengths=jnp.zeros((r,), jnp.int32),
        done=rep(prompt_lengths) == 0,
        stop_state=jnp.zeros((r,), jnp.int32),
        prompt_lengths=rep(prompt_lengths).astype(jnp.int32),
        kv_mask=rep(kv_mask),
        keys=row_keys(rng, r),
        cache=jax.tree_util.tree_map(rep, cache),
    )
    return _emit(state, rep(logits), settings, stop_table)


# A tied head at most this big is transposed to [D, V] once per decode call: XLA:CPU's batch-8
# dot is faster against [D, V] while the head sits in cache (tiny, 0.5 MB: 0.05 vs 0.09 ms), and
# faster against the [V, D] table as stored when it streams from memory (small, 65 MB: 11.2 vs
# 15.8 ms); scripts/profile_decode.py, BENCHMARKS.md (issue 14, decode step).
SMALL_HEAD_BYTES = 4 << 20


def _head_as_table(cfg: ModelConfig) -> bool:
    """Whether the decode head is the [V, D] embedding table (else a [D, V] matrix)."""
    size = cfg.vocab_size * cfg.hidden_size * np.dtype(jnp.dtype(cfg.param_dtype)).itemsize
    return cfg.tie_word_embeddings and size > SMALL_HEAD_BYTES


def decode_head(params: dict, cfg: ModelConfig, vocab_parallel: bool = False) -> jax.Array:
    """The LM head of a decode loop, taken once per call: [V, D] (`_head_as_table`) or [D, V].

    `vocab_parallel` (fsdp-sharded weights): the head split over the vocabulary across fsdp x
    tensor (one all-to-all from its fsdp layout) instead of gathered whole on every chip; each
    step then gathers the rows' hidden states [R, D] and hands the [R, V] logits back by rows.
    """
    vocab = "loss_vocab" if vocab_parallel else "act_vocab"
    if _head_as_table(cfg):
        return shd.constrain(params["embed"], (vocab, None))
    if cfg.tie_word_embeddings:
        return shd.constrain(params["embed"].T, (None, vocab))
    if vocab_parallel:
        return shd.constrain(params["lm_head"], (None, vocab))
    return params["lm_head"]


def decode_logits(
    cfg: ModelConfig, head: jax.Array, h: jax.Array, vocab_parallel: bool = False
) -> jax.Array:
    """Next-token logits [R, V] float32 of decode hidden states h [R, D] (head: `decode_head`,
    with the same `vocab_parallel`)."""
    eq = "BD,VD->BV" if _head_as_table(cfg) else "BD,DV->BV"
    if vocab_parallel:  # every chip: all rows against its slice of the vocabulary
        h = shd.constrain(h, ("loss_batch", None))
    out = jnp.einsum(eq, h, head.astype(h.dtype), preferred_element_type=jnp.float32)
    if vocab_parallel:
        out = shd.constrain(out, ("loss_batch", "loss_vocab"))
    return shd.constrain(out, ("batch", "act_vocab"))


def prompt_logits(
    params: dict, cfg: ModelConfig, h: jax.Array, vocab_parallel: bool = False
) -> jax.Array:
    """Next-token logits [R, V] float32 after a prefill, from the last hidden states h [R, D].

    `vocab_parallel` (fsdp-sharded weights): as a decode step's (`decode_head`), so no chip
    gathers the whole head (1.5 GiB for a 14B model); else the model's own unembedding."""
    if vocab_parallel:
        return decode_logits(cfg, decode_head(params, cfg, True), h, True)
    return model_lib.unembed(params, cfg, h[:, None])[:, 0]


def decode(
    params: dict,
    cfg: ModelConfig,
    state: DecodeState,
    settings: SamplingSettings,
    stop_table: jax.Array | None = None,  # [Q, V] int32
    gather_per_step: bool = False,
) -> DecodeState:
    """Feeds the last token and samples the next until every row is done or N are out.

    `gather_per_step` (fsdp-sharded weights, `sharding.gathers_weights_per_step`): each step
    gathers one layer's weights at a time (`CausalLM.hidden`'s `gather_per_layer`), not the
    whole model at once, and the head stays split over the vocabulary (`decode_head`).
    """
    p = state.kv_mask.shape[1] - settings.max_new_tokens
    head = decode_head(params, cfg, vocab_parallel=gather_per_step)

    def cond(s: DecodeState) -> jax.Array:
        return (s.step < settings.max_new_tokens) & ~jnp.all(s.done)

    def body(s: DecodeState) -> DecodeState:
        last = jax.lax.dynamic_index_in_dim(s.tokens, s.step - 1, axis=1)  # [R, 1]
        positions = (s.prompt_lengths + s.step - 1)[:, None]  # [R, 1]
        h, cache = model_lib.hidden_states(
            params,
            cfg,
            last,
            positions,
            s.kv_mask,
            s.cache,
            p + s.step - 1,
            gather_per_layer=gather_per_step,
        )
        logits = decode_logits(cfg, head, h[:, 0], gather_per_step)  # [R, V]
        cache = [{k: shd.constrain(v, model_lib.CACHE_AXES) for k, v in c.items()} for c in cache]
        return _emit(s._replace(cache=cache), logits, settings, stop_table)

    return jax.lax.while_loop(cond, body, state)


def sample(
    params: dict,
    cfg: ModelConfig,
    prompt_tokens: jax.Array,  # [B, P] int32, left-padded
    prompt_lengths: jax.Array,  # [B] int32
    rng: jax.Array,
    settings: SamplingSettings,
    stop_table: jax.Array | None = None,  # [Q, V] int32 (needed iff settings.stop_strings)
) -> SampleOutput:
    """The pure sampler: generated tokens, their log-probs and lengths ([R, N], [R, N], [R])."""
    state = decode(
        params,
        cfg,
        prefill(params, cfg, prompt_tokens, prompt_lengths, rng, settings, stop_table),
        settings,
        stop_table,
    )
    return SampleOutput(state.tokens, state.logprobs, state.lengths)


# ----------------------------------------------------------------------------- compiled, sharded


def check_stop_table(
    settings: SamplingSettings, stop_table: jax.Array | np.ndarray | None, vocab_size: int
) -> None:
    """A clear error for stop strings without their table ([Q, V] int32) or a table of the
    wrong vocabulary; shared by the static sampler and the slot engine."""
    if settings.stop_strings and stop_table is None:
        raise ValueError(
            "settings.stop_strings needs a stop table: pass "
            "stop_strings.stop_table(tokenizer, settings.stop_strings, cfg.vocab_size) "
            "(generate.Generator does this)"
        )
    if stop_table is not None and stop_table.shape[1] != vocab_size:
        raise ValueError(
            f"stop_table has {stop_table.shape[1]} columns; the model's vocab is {vocab_size}"
        )


class Sampler:
    """`sample` jitted once per (settings, B, P, Q) with shardings and a donated decode state.

    Args:
      cfg: the model config.
      mesh: a (data, fsdp, tensor) mesh, or None for one device without shardings.
      rules: parameter sharding rules for sampling (default `sharding.sampling_rules`).
      max_cache_length: the most slots (prompt bucket + new tokens) a request may need.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        mesh: jax.sharding.Mesh | None = None,
        rules: Mapping[str, Any] | None = None,
        max_cache_length: int | None = None,
    ):
        self.cfg, self.mesh = cfg, mesh
        self.max_cache_length = max_cache_length or cfg.max_position_embeddings
        param_bytes = cfg.num_params * np.dtype(jnp.dtype(cfg.param_dtype)).itemsize
        self.rules = rules if rules is not None else shd.sampling_rules(mesh, param_bytes)
        self.compile_seconds = 0.0  # total time spent compiling, for benchmarks
        self._compiled: dict[tuple, tuple[Any, Any]] = {}
        self.param_shardings = None
        self._reshard = None
        if mesh is not None:
            shd.check_heads(mesh, cfg.num_heads, cfg.num_kv_heads)
            self.param_shardings = shd.tree_shardings(
                model_lib.abstract_params(cfg), model_lib.param_axes(cfg), mesh, self.rules
            )

    def place_params(self, params: dict) -> dict:
        """Params on the sampling shardings (a no-op when they already are)."""
        if self.mesh is None:
            return params
        if self._reshard is None:  # a jitted identity reshards global arrays on every host
            self._reshard = jax.jit(lambda p: p, out_shardings=self.param_shardings)
        return self._reshard(params)

    def check(self, batch: int, prompt_len: int, settings: SamplingSettings) -> None:
        """Clear errors, before any device work, for requests the sampler cannot serve."""
        need = prompt_len + settings.max_new_tokens
        if need > self.max_cache_length:
            raise ValueError(
                f"prompt length {prompt_len} + max_new_tokens {settings.max_new_tokens} = {need} "
                f"exceeds the cache length {self.max_cache_length} (model max positions "
                f"{self.cfg.max_position_embeddings}); shorten the prompts or lower max_new_tokens"
            )
        if self.mesh is not None:
            shd.check_batch(self.mesh, batch, "prompt batch")

    def compile(self, params, tokens, lengths, rng, settings, stop_table=None):
        """The (prefill, decode) executables for these argument shapes, compiled once per key.

        `decode` donates its state argument. Benchmarks call these to time each phase.
        """
        key = (settings, tokens.shape, None if stop_table is None else stop_table.shape)
        if key in self._compiled:
            return self._compiled[key]
        cfg, mesh = self.cfg, self.mesh

        per_step = shd.gathers_weights_per_step(mesh, self.rules)

        def pre(params, tokens, lengths, rng, table):
            return prefill(params, cfg, tokens, lengths, rng, settings, table, per_step)

        def dec(params, state, table):
            return decode(params, cfg, state, settings, table, gather_per_step=per_step)

        abstract = jax.eval_shape(pre, params, tokens, lengths, rng, stop_table)
        if mesh is None:
            pre_jit = jax.jit(pre)
            dec_jit = jax.jit(dec, donate_argnums=1)
        else:
            state_sh = shd.tree_shardings(abstract, state_axes(cfg.num_layers), mesh, self.rules)
            rep = shd.replicated(mesh)
            table_sh = None if stop_table is None else rep
            pre_jit = jax.jit(
                pre,
                in_shardings=(
                    self.param_shardings,
                    shd.batch_sharding(mesh, 2),
                    shd.batch_sharding(mesh, 1),
                    rep,
                    table_sh,
                ),
                out_shardings=state_sh,
            )
            dec_jit = jax.jit(
                dec,
                in_shardings=(self.param_shardings, state_sh, table_sh),
                out_shardings=state_sh,
                donate_argnums=1,
            )
        start = time.perf_counter()
        with _mesh_context(mesh):
            pre_exe = pre_jit.lower(params, tokens, lengths, rng, stop_table).compile()
            dec_exe = dec_jit.lower(params, abstract, stop_table).compile()
        self.compile_seconds += time.perf_counter() - start
        self._compiled[key] = (pre_exe, dec_exe)
        return pre_exe, dec_exe

    def __call__(
        self,
        params: dict,
        prompt_tokens: jax.Array | np.ndarray,  # [B, P] int32, left-padded
        prompt_lengths: jax.Array | np.ndarray,  # [B] int32
        rng: jax.Array,
        settings: SamplingSettings,
        stop_table: jax.Array | np.ndarray | None = None,  # [Q, V] int32
    ) -> SampleOutput:
        """Samples (see `sample`); the first call per shape key compiles."""
        b, p = prompt_tokens.shape
        self.check(b, p, settings)
        check_stop_table(settings, stop_table, self.cfg.vocab_size)
        params = self.place_params(params)
        tokens, lengths = self._place_batch(prompt_tokens, 2), self._place_batch(prompt_lengths, 1)
        if stop_table is not None:
            stop_table = self._place(jnp.asarray(stop_table, jnp.int32))
        if not jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
            rng = jax.random.wrap_key_data(rng)  # a raw uint32 key from jax.random.PRNGKey
        rng = self._place(rng)
        pre_exe, dec_exe = self.compile(params, tokens, lengths, rng, settings, stop_table)
        state = dec_exe(params, pre_exe(params, tokens, lengths, rng, stop_table), stop_table)
        return SampleOutput(state.tokens, state.logprobs, state.lengths)

    def _place(self, x):
        if self.mesh is None:
            return jnp.asarray(x)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = self._place(np.asarray(jax.random.key_data(x)))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        # From host memory, so that every process (multi-host) can place it on the global mesh.
        return jax.device_put(np.asarray(x), shd.replicated(self.mesh))

    def _place_batch(self, x, ndim: int) -> jax.Array:
        x = jnp.asarray(x, jnp.int32) if self.mesh is None else np.asarray(x, np.int32)
        if self.mesh is None:
            return x
        return jax.device_put(x, shd.batch_sharding(self.mesh, ndim))


def _mesh_context(mesh):
    return contextlib.nullcontext() if mesh is None else jax.set_mesh(mesh)
