"""The slot engine against the static sampler (bitwise), over refills, orders, meshes and stops.

The reference is the static sampler (sampler.py), itself checked against transformers' greedy
`generate`, teacher forcing and the exact first-token distribution in test_sampler.py. Both
draw a request's noise from its own key folded with the token index; the engine must then give
every request exactly the static sampler's tokens and log-probs, whatever slot it lands in,
whoever its neighbours are and whenever it is scheduled.

XLA's CPU kernels are picked by array size (a float32 row reduction over fewer than ~4096
elements, or a dot that small, is emitted with another loop order), so a row's last bits depend
on the shapes it is computed in. The engine is therefore compared at the static sampler's
shapes: slots = its rows, prefill batch = its prompts, cache length = its prompt bucket + N;
requests still arrive shuffled, finish at different steps (many EOS ids) and refill slots.
"""

import functools
import re

import jax
import numpy as np
import pytest

from azr_jax.model import hf_io
from azr_jax.parallel import sharding as shd
from azr_jax.sampling import stop_strings as stops
from azr_jax.sampling.engine import Engine, Request, assign_rows, chunk, window_sizes
from azr_jax.sampling.generate import Generator
from azr_jax.sampling.sampler import Sampler, row_keys
from azr_jax.sampling.settings import SamplingSettings
from tests.conftest import tiny_checkpoint
from tests.sampling.test_sampler import cache_copies

B, P, N, NS = 4, 16, 12, 2  # prompts per static call, prompt bucket, new tokens, samples each
SETTINGS = SamplingSettings(max_new_tokens=N, n=NS, top_k=50, eos_ids=tuple(range(100, 400)))


def _load(family):
    d = tiny_checkpoint(family)
    cfg, params = hf_io.load_hf(d)
    return cfg, params, hf_io.load_tokenizer(d)


def _static_reference(cfg, params, mesh, settings, calls=2, seed=0, stop_table=None):
    """Requests of `calls` static-sampler calls, each with its expected (tokens, logprobs)."""
    rng = np.random.default_rng(seed)
    sampler = Sampler(cfg, mesh)
    reqs, expected = [], []
    for call in range(calls):
        lens = rng.integers(3, P, B)
        tokens = np.zeros((B, P), np.int32)
        for b in range(B):
            tokens[b, P - lens[b] :] = rng.integers(5, cfg.vocab_size, lens[b])
        key = jax.random.key(100 + call)
        ref = sampler(params, tokens, lens, key, settings, stop_table)
        keys = row_keys(key, B * settings.n)
        for r in range(B * settings.n):
            n = int(ref.lengths[r])
            expected.append((np.asarray(ref.tokens[r, :n]), np.asarray(ref.logprobs[r, :n])))
            prompt = tokens[r // settings.n, P - lens[r // settings.n] :]
            reqs.append(Request(prompt, keys[r], len(reqs)))
    return reqs, expected


def _engine_run(cfg, params, mesh, reqs, settings, chunk=3, seed=1, stop_table=None):
    order = np.random.default_rng(seed).permutation(len(reqs))
    engine = Engine(
        cfg, mesh, slots=B * settings.n, chunk=chunk, max_cache_length=P + N, prefill_batch=B
    )
    return engine.run(params, [reqs[i] for i in order], settings, stop_table)


def _assert_same(out, expected):
    lengths = [len(t) for t, _ in expected]
    assert len(set(lengths)) > 3, f"rows should end at different steps: {lengths}"
    for c in out:
        tokens, logprobs = expected[c.tag]
        np.testing.assert_array_equal(c.tokens, tokens, err_msg=f"request {c.tag}")
        np.testing.assert_array_equal(c.logprobs, logprobs, err_msg=f"request {c.tag}")


@pytest.mark.parametrize("family", ["qwen2", "qwen3", "llama", "gpt2"])
def test_engine_matches_static_sampler_bitwise(family):
    cfg, params, _ = _load(family)
    reqs, expected = _static_reference(cfg, params, None, SETTINGS)
    _assert_same(_engine_run(cfg, params, None, reqs, SETTINGS), expected)


@pytest.mark.parametrize(
    "family, mesh_shape", [("qwen2", (2, 2, 2)), ("llama", (4, 1, 2))], ids=["d2f2t2", "d4t2"]
)
def test_engine_matches_static_sampler_bitwise_on_meshes(family, mesh_shape):
    cfg, params, _ = _load(family)
    mesh = shd.make_mesh(*mesh_shape)
    reqs, expected = _static_reference(cfg, params, mesh, SETTINGS)
    out = _engine_run(cfg, params, mesh, reqs, SETTINGS)
    _assert_same(out, expected)


@pytest.mark.parametrize("family", ["qwen2", "llama"])  # tied and untied LM heads
def test_engine_on_fsdp_sharded_weights_matches_unsharded(family):
    """TRAIN_RULES (weights split over fsdp, as when a whole copy does not fit): the decode chunk
    gathers a layer at a time and keeps the head split over the vocabulary; the tokens equal
    the unsharded static sampler's, the log-probs within float32 reduction order."""
    cfg, params, _ = _load(family)
    reqs, expected = _static_reference(cfg, params, None, SETTINGS)
    mesh = shd.make_mesh(1, 4, 2)
    assert shd.gathers_weights_per_step(mesh, shd.TRAIN_RULES)
    assert not shd.gathers_weights_per_step(mesh, shd.SAMPLE_RULES)
    order = np.random.default_rng(1).permutation(len(reqs))
    engine = Engine(
        cfg,
        mesh,
        slots=B * SETTINGS.n,
        chunk=3,
        max_cache_length=P + N,
        prefill_batch=B,
        rules=shd.TRAIN_RULES,
    )
    out = engine.run(params, [reqs[i] for i in order], SETTINGS)
    assert len(out) == len(reqs)
    for c in out:
        tokens, logprobs = expected[c.tag]
        np.testing.assert_array_equal(c.tokens, tokens, err_msg=f"request {c.tag}")
        np.testing.assert_allclose(c.logprobs, logprobs, atol=1e-5, err_msg=f"request {c.tag}")


@pytest.mark.parametrize("rules, per_layer", [(shd.TRAIN_RULES, True), (shd.SAMPLE_RULES, False)])
def test_fsdp_sharded_insert_and_chunk_gather_one_layer_at_a_time(rules, per_layer):
    """On fsdp-sharded weights the insert (a prefill of the longest prompts) ties each layer's
    weights to that layer's input, as the decode chunk does, so a compiler cannot gather many
    layers at once (qwen2.5-coder-14b on a v5e-16: the insert asked >= 16 GiB of 15.75 before):
    one optimization barrier per layer in both programs; none with a whole-weight copy."""
    cfg, params, _ = _load("qwen2")
    mesh = shd.make_mesh(1, 4, 2)
    m = 4
    engine = Engine(
        cfg, mesh, slots=8, chunk=2, max_cache_length=P + N, prefill_batch=m, rules=rules
    )
    init, ins, dec, _ = engine.programs(SETTINGS, None)
    state = jax.eval_shape(init)
    keys = np.zeros((m, 2), np.uint32)  # the requests' raw key data
    rows = (np.zeros((m, P), np.int32), np.ones((m,), np.int32), np.arange(m, dtype=np.int32))
    texts = {
        "insert": ins.lower(params, state, *rows, keys).as_text(),
        "chunk": dec(engine.windows[-1]).lower(params, state, None, np.int32(9)).as_text(),
    }
    for name, text in texts.items():
        barriers = text.count("stablehlo.optimization_barrier")
        assert barriers == (cfg.num_layers if per_layer else 0), (name, barriers)


def test_assign_rows_keeps_each_request_on_its_slots_shard():
    # 8 slots and 4 prompt rows over 4 shards: slots 0-1 / row 0 on shard 0, 2-3 / row 1, ...
    free = [0, 1, 2, 5, 6, 7]
    assert assign_rows(free, 8, 4, 4) == [(0, 0), (1, 2), (2, 5), (3, 6)]  # 1 and 7: next time
    assert assign_rows(free, 8, 4, 1) == [(0, 0), (1, 1), (2, 2), (3, 5)]  # no mesh: in order
    assert assign_rows([3, 4], 8, 8, 2) == [(0, 3), (4, 4)]  # 4 rows a shard, 2 free slots


def test_sharded_insert_moves_no_prompt_rows_between_chips():
    """Under data x fsdp the insert writes each shard's prefilled K/V rows into that shard's
    slots: the compiled program gathers no [M, K, P, H] block of rows (a scatter with
    replicated slot indices gathers every row onto every chip, 1 GiB a layer for a 14B model
    at 8192-token prompts on 32 chips)."""
    cfg, params, _ = _load("qwen2")
    mesh = shd.make_mesh(2, 2, 2)
    m = 4
    engine = Engine(cfg, mesh, slots=8, chunk=2, max_cache_length=P + N, prefill_batch=m)
    _, ins, _, _ = engine.programs(SETTINGS, None)
    state = jax.eval_shape(engine.programs(SETTINGS, None)[0])
    keys = np.zeros((m, 2), np.uint32)  # the requests' raw key data
    rows = (np.zeros((m, P), np.int32), np.ones((m,), np.int32), np.arange(m, dtype=np.int32))
    with jax.set_mesh(mesh):
        hlo = ins.lower(params, state, *rows, keys).compile().as_text()
    kv = cfg.num_kv_heads // 2  # over tensor=2
    gathered = re.findall(rf"= f32\[{m},{kv},{P},{cfg.head_dim}\][^ ]* all-gather", hlo)
    assert not gathered, gathered[:2]
    assert "all-gather" in hlo or "all-reduce" in hlo  # a partitioned program all the same


def test_sharded_clone_moves_no_cache_rows_between_chips():
    """Under data x fsdp the clone copies each slot's cache row within its own shard: the
    compiled program gathers or reduces no cache block (a copy with replicated slot indices
    would gather every row of the cache onto every chip)."""
    cfg, params, _ = _load("qwen2")
    mesh = shd.make_mesh(2, 2, 2)
    engine = Engine(cfg, mesh, slots=8, chunk=2, max_cache_length=P + N, prefill_batch=4)
    init, _, _, clone = engine.programs(SETTINGS, None)
    state = jax.eval_shape(init)
    pairs = (np.arange(8, dtype=np.int32), np.full((8,), 8, np.int32), np.zeros((8, 2), np.uint32))
    with jax.set_mesh(mesh):
        hlo = clone.lower(state, *pairs).compile().as_text()
    kv = cfg.num_kv_heads // 2  # over tensor=2
    block = re.compile(rf"f32\[\d+,{kv},{P + N},{cfg.head_dim}\]")
    collective = re.compile(r"= .*\b(all-gather|all-reduce|all-to-all|collective-permute)\(")
    moved = [line for line in hlo.splitlines() if collective.search(line) and block.search(line)]
    assert not moved, moved[:2]


def test_results_do_not_depend_on_schedule():
    """One engine, other orders and neighbours (some requests left out): the same bits."""
    cfg, params, _ = _load("qwen2")
    reqs, _ = _static_reference(cfg, params, None, SETTINGS, calls=2)
    engine = Engine(cfg, slots=4, chunk=2, max_cache_length=P + N, prefill_batch=2)
    a = engine.run(params, reqs, SETTINGS)
    b = engine.run(params, reqs[:6:-1] + reqs[1:3], SETTINGS)
    by_tag = {c.tag: c for c in a}
    assert len(b) == len(reqs) - 5
    for c in b:
        np.testing.assert_array_equal(c.tokens, by_tag[c.tag].tokens)
        np.testing.assert_array_equal(c.logprobs, by_tag[c.tag].logprobs)


def test_priorities_decide_the_order_of_prefills_not_the_bits():
    """Lower priority first, oldest first among equals; every request's bits as without them."""
    cfg, params, _ = _load("qwen2")
    reqs, _ = _static_reference(cfg, params, None, SETTINGS, calls=1)
    engine = Engine(cfg, slots=2, chunk=2, max_cache_length=P + N, prefill_batch=2)
    plain = {c.tag: c for c in engine.run(params, reqs, SETTINGS)}
    session = engine.session(params, SETTINGS)
    priority = {r.tag: [2, 0, 1][r.tag % 3] for r in reqs}
    for r in reqs:  # submitted one at a time, in tag order
        session.submit(r, priority[r.tag])
    started = []  # requests in the order they got a slot
    while session.busy():
        session._fill()
        started += [o.tag for o in session.owner if o is not None and o.tag not in started]
        for c in session.step():
            np.testing.assert_array_equal(c.tokens, plain[c.tag].tokens)
            np.testing.assert_array_equal(c.logprobs, plain[c.tag].logprobs)
    expected = sorted((r.tag for r in reqs), key=lambda t: (priority[t], t))
    assert started == expected, (started, expected)


def test_window_sizes():
    assert window_sizes(1096, 256) == (256, 384, 512, 768, 1024, 1096)
    assert window_sizes(28, 256) == (28,)  # a short cache: one program, all of it
    assert window_sizes(64, 16) == (16, 24, 32, 48, 64)
    assert window_sizes(1096, None) == (1096,)


@pytest.mark.parametrize("family", ["qwen2", "gpt2"])  # rope and learned positions
def test_windowed_chunks_match_the_whole_cache(family):
    """Chunks that read only the cache's first W slots (the live rows' extent) give the tokens
    of chunks that read all S slots, and log-probs within float32 rounding (a softmax over
    fewer masked keys may sum in another order); the windows grow as rows do."""
    cfg, params, _ = _load(family)
    reqs, _ = _static_reference(cfg, params, None, SETTINGS, calls=2)
    out = {}
    for name, smallest in (("whole", None), ("windowed", 16)):
        engine = Engine(
            cfg, slots=4, chunk=3, max_cache_length=4 * (P + N), prefill_batch=2,
            min_window=smallest,
        )  # fmt: skip
        session = engine.session(params, SETTINGS)
        session.submit(reqs)
        got = {}
        while session.busy():
            got.update((c.tag, c) for c in session.step())
        out[name] = (got, dict(session.windows))
    whole, windowed = out["whole"][0], out["windowed"][0]
    assert out["whole"][1] == {4 * (P + N): out["whole"][1][4 * (P + N)]}  # always all S
    used = out["windowed"][1]
    assert min(used) == 24 and max(used) <= 32, used  # rows reach slot 16 + 12 at most
    for tag, c in whole.items():
        np.testing.assert_array_equal(windowed[tag].tokens, c.tokens, err_msg=f"request {tag}")
        np.testing.assert_allclose(windowed[tag].logprobs, c.logprobs, rtol=0, atol=2e-5)


def test_chunk_stops_once_enough_slots_are_free():
    """`free_to_stop`: the chunk returns after the first step at which that many slots are done
    (a waiting group can then be prefilled), not after all k steps; the bits are the same."""
    cfg, params, _ = _load("qwen2")
    reqs, _ = _static_reference(cfg, params, None, SETTINGS, calls=1)
    engine = Engine(cfg, slots=4, chunk=N, max_cache_length=P + N, prefill_batch=4)
    session = engine.session(params, SETTINGS)
    session.submit(reqs[:4])
    session._fill()
    start = session.state

    def run(steps, free):
        fn = functools.partial(chunk, cfg=cfg, steps=steps, settings=SETTINGS)
        return jax.jit(lambda p, s, f: fn(p, state=s, free_to_stop=f))(params, start, free)

    whole = run(N, None)
    ends = np.sort(np.asarray(whole.lengths))  # the step at which each slot is done
    assert len(set(ends.tolist())) > 1, ends
    for free in (1, 2, 3):
        early = run(N, np.int32(free))
        stop = ends[free - 1]  # the step at which `free` slots are done
        np.testing.assert_array_equal(early.lengths, np.minimum(whole.lengths, stop))
        np.testing.assert_array_equal(early.tokens[:, :stop], whole.tokens[:, :stop])


@pytest.mark.parametrize("mesh_shape", [None, (2, 2, 2)])
def test_samples_of_one_prompt_share_its_prefill_bitwise(mesh_shape):
    """A request right behind one with the same prompt (n samples of a prompt) starts as a copy
    of that one's freshly prefilled slot (on its own chips under a mesh) instead of a prefill
    of its own: fewer prefills, and still the static sampler's tokens and log-probs, bitwise."""
    cfg, params, _ = _load("qwen2")
    mesh = None if mesh_shape is None else shd.make_mesh(*mesh_shape)
    reqs, expected = _static_reference(cfg, params, mesh, SETTINGS, calls=2)
    engine = Engine(
        cfg, mesh, slots=B * NS, chunk=3, max_cache_length=P + N, prefill_batch=B
    )  # fmt: skip
    session = engine.session(params, SETTINGS)
    session.submit(reqs)  # in order: sample j + 1 of a prompt right behind sample j
    out = []
    while session.busy():
        out += session.step()
    assert len(out) == len(reqs)
    assert session.copies >= len(reqs) // (2 * NS), session.copies  # many samples were copies
    _assert_same(out, expected)


def test_greedy_stop_strings_through_the_generator():
    """Generator on the engine vs on the static sampler: same texts, tokens and log-probs, with
    stop strings (the stop automaton runs per slot) and greedy decoding."""
    cfg, params, tokenizer = _load("qwen2")
    texts = ["def add(a, b):\n    return", "import os", "x = [1, 2", "class A:"]
    greedy = SamplingSettings(max_new_tokens=N, greedy=True)
    free = Generator(Sampler(cfg), tokenizer).generate(params, texts, jax.random.key(0), greedy)
    stop = tokenizer.decode(free.tokens[0, 3:5])  # a stop string that does occur
    settings = greedy.replace(stop_strings=(stop,))
    ref = Generator(Sampler(cfg), tokenizer).generate(params, texts, jax.random.key(0), settings)
    engine = Engine(cfg, slots=4, chunk=4, max_cache_length=P + N, prefill_batch=4)
    gen = Generator(Sampler(cfg), tokenizer, engine=engine)
    out = gen.generate(params, texts, jax.random.key(0), settings)
    assert out.lengths[0] <= 5 and out.texts[0].endswith(stop)
    assert out.texts == ref.texts
    np.testing.assert_array_equal(out.tokens, ref.tokens)
    np.testing.assert_array_equal(out.lengths, ref.lengths)
    np.testing.assert_array_equal(out.logprobs, ref.logprobs)
    table = stops.stop_table(tokenizer, (stop,), cfg.vocab_size)
    with pytest.raises(ValueError, match="stop table"):
        engine.session(params, settings)
    engine.session(params, settings, table)  # with its table it is fine


def test_chunk_updates_the_cache_in_place():
    """The engine's decode chunk scatters new keys/values into the donated cache: no copy of a
    cache-shaped buffer (the detector is checked on a copying loop in test_sampler.py)."""
    cfg, params, _ = _load("qwen2")
    engine = Engine(cfg, slots=4, chunk=3, max_cache_length=P + N, prefill_batch=2, min_window=16)
    session = engine.session(params, SamplingSettings(max_new_tokens=N, greedy=True))
    shape = f"f32[4,{cfg.num_kv_heads},{P + N},{cfg.head_dim}]"
    assert session.state.cache[0]["k"].shape == (4, cfg.num_kv_heads, P + N, cfg.head_dim)
    assert engine.windows == (16, 24, P + N)
    for window in (24, P + N):  # a window is copied out and back; the whole cache never
        chunk = session._chunk(window).lower(session.params, session.state, None, np.int32(5))
        assert cache_copies(chunk.compile().as_text(), shape) == [], window


def test_clear_errors():
    cfg, params, _ = _load("qwen2")
    engine = Engine(cfg, slots=2, max_cache_length=32)
    session = engine.session(params, SamplingSettings(max_new_tokens=20))
    with pytest.raises(ValueError, match="exceeds the engine's cache length 32"):
        session.submit(Request(np.arange(5, 25), jax.random.key(0)))
    with pytest.raises(ValueError, match="empty prompt"):
        session.submit(Request(np.zeros((0,), np.int32), jax.random.key(0)))
    with pytest.raises(ValueError, match="engine slots of 3 rows does not divide"):
        Engine(cfg, shd.make_mesh(2, 4, 1), slots=3)
