"""Where one decode step's time goes: the full step and its parts, timed in one run.

    python scripts/profile_decode.py --preset small [--batch 8 --prompt_len 64 --new_tokens 128]
    python scripts/profile_decode.py --preset small --threads 1   # XLA:CPU on one thread

At the shapes of `scripts/bench_sampling.py` (B rows, prompt P, N new tokens, cache S = P + N,
float32), on one random checkpoint of the preset (built once under .cache/bench), it times:

  full steps   `static_decode`: the static sampler's compiled decode loop (sampler.py), per
               step (N - 1 steps after the prefill); `engine_chunk`: the slot engine's decode
               chunk (engine.py) over B live slots, per step, device calls only; and
               `engine_session`: the same through `Session.step` (host round trip per chunk).
  parts        each in its own jitted `fori_loop` of `--steps` iterations (the loop a decode step
               lives in; a carried value feeds every iteration so nothing is hoisted out), per
               iteration: `forward` (the transformer's decode forward, cache update included,
               no head), `layer_matmuls` (the q/k/v/o and MLP dots of every layer at [B, D]),
               `attention` (scores, softmax and values over the [B, K, S, H] cache, every
               layer), `cache_update` (one [B, K, 1, H] write per layer and k/v:
               dynamic_update_slice as the static sampler; `cache_scatter`: the engine's per-row
               scatter), `lm_head_dv` ([B, D] x [D, V]) and `lm_head_vd` (against [V, D]),
               `sample_greedy` (argmax + log-softmax over [B, V]), `sample_temperature`
               (temperature 1: Gumbel noise over [B, V]) and `sample_top_p` (top_p 0.95: the
               full-vocab sort).
  HLO          in the compiled decode loops: `copy` instructions on cache-shaped buffers (a
               cache copied, not updated in place) and whether the donated state aliases the
               output.

Every figure is the best of `--repeats`. The floor is bench_sampling's: (parameter bytes + KV
bytes) / the faster of a measured copy and read bandwidth. The last line is JSON.
"""

import json
import os
import re
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_string("preset", "small", "Checkpoint shape (azr_jax.model.tiny_checkpoint.PRESETS).")
flags.DEFINE_string("family", "qwen2", "Model family.")
flags.DEFINE_integer("batch", 8, "Rows decoded per step (engine slots).")
flags.DEFINE_integer("prompt_len", 64, "Prompt tokens per row.")
flags.DEFINE_integer("new_tokens", 128, "Tokens generated per row.")
flags.DEFINE_integer("chunk", 8, "Engine decode steps per device call.")
flags.DEFINE_integer("steps", 32, "Iterations of each part's timing loop.")
flags.DEFINE_integer("repeats", 3, "Timed runs of each measurement (the best is kept).")
flags.DEFINE_integer("threads", 0, "1: XLA:CPU single-threaded (Eigen and intra-op); 0: default.")
flags.DEFINE_bool("hlo", True, "Inspect the compiled decode loops for cache copies.")
FLAGS = flags.FLAGS


def _best(fn, repeats):
    """min over repeats of fn(), where fn returns the seconds it measured itself."""
    return min(fn() for _ in range(repeats))


def _timed(fn, *args):
    import jax

    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def _loop_ms(jax, body, carry, consts, steps, repeats):
    """ms per iteration of `carry = body(i, carry, consts)` in a jitted fori_loop."""
    run = jax.jit(lambda c, k: jax.lax.fori_loop(0, steps, lambda i, x: body(i, x, k), c))
    jax.block_until_ready(run(carry, consts))  # compile + warm-up
    return 1e3 * _best(lambda: _timed(run, carry, consts), repeats) / steps


def cache_copies(hlo_text: str, cache_shape: str) -> dict:
    """`copy` instructions whose result has the cache's shape, whether the donated input is
    aliased to the output, and the kernels (fusions) of the decode loop's body: each is one
    launch per step, whatever its size."""
    copies = [ln.strip() for ln in hlo_text.splitlines() if re.search(r"= \S+ copy\(", ln)]
    on_cache = [c for c in copies if cache_shape in c.split("=")[1].split("copy(")[0]]
    alias = re.search(r"input_output_alias=\{([^}]*)\}", hlo_text)
    bodies = re.findall(r" while\(.*body=%?([\w.\-]+)", hlo_text)
    computations = re.split(r"\n(?=\S)", hlo_text)
    fusions = [
        len(re.findall(r"= \S+ fusion\(", c))
        for c in computations
        if bodies and c.lstrip("%").startswith(bodies[-1] + " ")
    ]
    return dict(
        copies=len(copies),
        cache_copies=len(on_cache),
        aliased=alias is not None and bool(alias.group(1).strip()),
        loop_body_fusions=fusions[0] if fusions else None,
    )


def memory_bandwidth(jax, jnp) -> tuple[float, float]:
    """(copy, read) bytes/s over 256 MiB, as scripts/bench_sampling.py measures them."""
    x = jnp.ones((64 << 20,), jnp.float32)
    copy, read = jax.jit(lambda a: a + 1), jax.jit(jnp.sum)
    t_copy = _best(lambda: _timed(copy, x), 5)
    t_read = _best(lambda: _timed(read, x), 5)
    return 2 * x.nbytes / t_copy, x.nbytes / t_read


def parts(jax, jnp, cfg, params, b, s):
    """{name: ms per iteration} of each part of a decode step in isolation."""
    from azr_jax.model import transformer as model_lib
    from azr_jax.sampling.sampler import sample_token
    from azr_jax.sampling.settings import SamplingSettings

    steps, reps = FLAGS.steps, FLAGS.repeats
    d, n, k, h, v = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.vocab_size
    rng = jax.random.key(1)
    x0 = jax.random.normal(rng, (b, d), jnp.float32)  # [B, D]
    layers = params["layers"]
    cache = model_lib.init_cache(cfg, b, s)
    cache = jax.tree_util.tree_map(lambda c: c + jax.random.normal(rng, c.shape, c.dtype), cache)
    out = {}

    def matmuls(i, x, ps):  # x [B, D]
        for p in ps.values():
            a = p["attn"]
            q = jnp.einsum("BD,DNH->BNH", x, a["q"]["kernel"])
            kk = jnp.einsum("BD,DKH->BKH", x, a["k"]["kernel"])
            vv = jnp.einsum("BD,DKH->BKH", x, a["v"]["kernel"])
            o = jnp.einsum("BE,ED->BD", q.reshape(b, n * h), a["o"]["kernel"].reshape(n * h, d))
            m = p["mlp"]
            g = jnp.einsum("BD,DF->BF", x, m["gate"]["kernel"])
            u = jnp.einsum("BD,DF->BF", x, m["up"]["kernel"])
            dn = jnp.einsum("BF,FD->BD", g * u, m["down"]["kernel"])
            x = x + 1e-3 * (o + dn) + 1e-3 * (kk.sum() + vv.sum())
        return x

    out["layer_matmuls"] = _loop_ms(jax, matmuls, x0, layers, steps, reps)

    def attention(i, q, kv):  # q [B, 1, N, H]; the model's decode attention, every layer
        slot = jnp.arange(s)
        mask = (slot <= s // 2 + i % (s // 2))[None, None, :]  # [1, 1, S]
        for c in kv:
            qg = q.reshape(b, 1, k, n // k, h)
            sc = jnp.einsum("BTKGH,BKSH->BKGTS", qg, c["k"], preferred_element_type=jnp.float32)
            sc = jnp.where(mask[:, None, None], sc * h**-0.5, -1e30)
            pr = jax.nn.softmax(sc, axis=-1)
            o = jnp.einsum("BKGTS,BKSH->BKGTH", pr, c["v"])
            q = q + 1e-3 * o.transpose(0, 3, 1, 2, 4).reshape(b, 1, n, h)
        return q

    out["attention"] = _loop_ms(jax, attention, jnp.ones((b, 1, n, h)), cache, steps, reps)

    new = jnp.ones((b, k, 1, h))

    def update(i, c, kv):  # the static sampler's write: one slot for all rows
        zero = jnp.zeros((), jnp.int32)
        idx = (zero, zero, i % s, zero)
        return [
            {name: jax.lax.dynamic_update_slice(x, kv, idx) for name, x in la.items()} for la in c
        ]

    out["cache_update"] = _loop_ms(jax, update, cache, new, steps, reps)

    def scatter(i, c, kv):  # the engine's write: row r at its own slot
        rows = jnp.arange(b)[:, None]
        slots = ((i + jnp.arange(b)) % s)[:, None]
        val = kv.transpose(0, 2, 1, 3)  # [B, 1, K, H]
        return [
            {name: x.at[rows, :, slots].set(val, mode="drop") for name, x in la.items()} for la in c
        ]

    out["cache_scatter"] = _loop_ms(jax, scatter, cache, new, steps, reps)

    def forward(i, carry, ps):  # the transformer's decode forward at slot P + i
        tok, c = carry
        pos = jnp.full((b, 1), FLAGS.prompt_len, jnp.int32) + i
        mask = jnp.ones((b, s), bool)
        hid, c = model_lib.hidden_states(ps, cfg, tok, pos, mask, c, FLAGS.prompt_len + i)
        tok = (tok + (hid[:, :, 0] > 0).astype(jnp.int32)) % 1000
        return tok, c

    tok0 = jnp.ones((b, 1), jnp.int32)
    out["forward"] = _loop_ms(jax, forward, (tok0, cache), params, steps, reps)

    table = params["embed"] if cfg.tie_word_embeddings else params["lm_head"].T  # [V, D]

    def lm_head_dv(i, x, w):
        lg = jnp.einsum("BD,DV->BV", x, w, preferred_element_type=jnp.float32)
        return x + 1e-3 * lg[:, :d]

    out["lm_head_dv"] = _loop_ms(jax, lm_head_dv, x0, jnp.asarray(table.T), steps, reps)

    def lm_head_vd(i, x, w):
        lg = jnp.einsum("BD,VD->BV", x, w, preferred_element_type=jnp.float32)
        return x + 1e-3 * lg[:, :d]

    out["lm_head_vd"] = _loop_ms(jax, lm_head_vd, x0, table, steps, reps)

    logits = jax.random.normal(rng, (b, v), jnp.float32)
    keys = jax.random.split(rng, b)
    for name, st in (
        ("sample_greedy", SamplingSettings(greedy=True)),
        ("sample_temperature", SamplingSettings(temperature=1.0)),
        ("sample_top_p", SamplingSettings(temperature=1.0, top_p=0.95)),
    ):

        def sample(i, c, lg, st=st):
            tok, lp = sample_token(keys, jnp.full((b,), i), lg + c, st)
            return c + 1e-6 * (lp.sum() + tok.sum())

        out[name] = _loop_ms(jax, sample, jnp.zeros(()), logits, steps, reps)
    return out


def full_steps(jax, jnp, np, cfg, params, b, p, new):
    """ms per step of the static decode loop and of the engine's chunk (and session)."""
    from azr_jax.sampling.engine import Engine, Request
    from azr_jax.sampling.sampler import Sampler
    from azr_jax.sampling.settings import SamplingSettings

    settings = SamplingSettings(max_new_tokens=new, greedy=True)
    rng = np.random.default_rng(b)
    prompts = rng.integers(16, min(cfg.vocab_size, 2000), (b, p)).astype(np.int32)
    lengths = np.full((b,), p, np.int32)
    sampler = Sampler(cfg, max_cache_length=p + new)
    tokens, lens, key = jnp.asarray(prompts), jnp.asarray(lengths), jax.random.key(0)
    pre, dec = sampler.compile(params, tokens, lens, key, settings)

    def static():
        state = jax.block_until_ready(pre(params, tokens, lens, key, None))
        return _timed(dec, params, state, None)

    static()  # warm-up
    out = dict(static_decode=1e3 * _best(static, FLAGS.repeats) / (new - 1))

    engine = Engine(
        cfg, slots=b, chunk=FLAGS.chunk, max_cache_length=p + new, prompt_buckets=(p,),
        prefill_batch=b,
    )  # fmt: skip
    requests = [Request(prompts[i], jax.random.key(i)) for i in range(b)]

    def filled():
        session = engine.session(params, settings)
        session.submit(requests)
        session._fill()
        jax.block_until_ready(session.state)
        return session

    def chunks():
        session = filled()
        start = time.perf_counter()
        state = session.state
        for _ in range(-(-new // FLAGS.chunk)):
            state = session._chunk(engine.windows[-1])(session.params, state, None, b + 1)
        jax.block_until_ready(state)
        return time.perf_counter() - start

    def through_session():
        session = filled()
        start = time.perf_counter()
        while session.busy():
            session.step()
        return time.perf_counter() - start

    chunks(), through_session()  # warm-up
    out["engine_chunk"] = 1e3 * _best(chunks, FLAGS.repeats) / new
    out["engine_session"] = 1e3 * _best(through_session, FLAGS.repeats) / new
    hlo = {}
    if FLAGS.hlo:
        c0 = f"f32[{b},{cfg.num_kv_heads},{p + new},{cfg.head_dim}]"
        hlo["static_decode"] = cache_copies(dec.as_text(), c0)
        session = filled()
        chunk_exe = (
            session._chunk(engine.windows[-1])
            .lower(session.params, session.state, None, np.int32(b + 1))
            .compile()
        )
        hlo["engine_chunk"] = cache_copies(chunk_exe.as_text(), c0)
    return out, hlo


def main(_):
    if FLAGS.threads == 1:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        )
    import jax
    import jax.numpy as jnp
    import numpy as np

    from azr_jax.model import hf_io
    from azr_jax.model.tiny_checkpoint import make_tiny_checkpoint

    root = Path(__file__).resolve().parent.parent
    model_dir = make_tiny_checkpoint(
        FLAGS.family, root / ".cache" / "bench" / f"{FLAGS.family}-{FLAGS.preset}",
        preset=FLAGS.preset,
    )  # fmt: skip
    cfg, params = hf_io.load_hf(model_dir)
    b, p, new = FLAGS.batch, FLAGS.prompt_len, FLAGS.new_tokens
    s = p + new
    load0 = os.getloadavg()[0]
    full, hlo = full_steps(jax, jnp, np, cfg, params, b, p, new)
    part = parts(jax, jnp, cfg, params, b, s)
    copy_bw, read_bw = memory_bandwidth(jax, jnp)
    param_bytes = sum(x.nbytes for x in jax.tree_util.tree_leaves(params))
    kv_bytes = cfg.num_layers * 2 * b * s * cfg.num_kv_heads * cfg.head_dim * 4
    bound = 1e3 * (param_bytes + kv_bytes) / max(copy_bw, read_bw)
    ms = {**full, **part}
    kernels = [x for x in jax.tree_util.tree_leaves(params["layers"]) if x.ndim >= 2]
    layer_mb = sum(x.nbytes for x in kernels) / 1e6  # what layer_matmuls reads per step
    head_mb = cfg.vocab_size * cfg.hidden_size * 4 / 1e6
    result = dict(
        preset=FLAGS.preset, family=FLAGS.family, batch=b, prompt_len=p, new_tokens=new,
        chunk=FLAGS.chunk, threads=FLAGS.threads or "default",
        ms={k: round(v, 3) for k, v in ms.items()},
        parts_sum_ms=round(
            part["forward"] + min(part["lm_head_dv"], part["lm_head_vd"]) + part["sample_greedy"],
            3,
        ),
        bound_step_ms=round(bound, 3), static_over_bound=round(full["static_decode"] / bound, 2),
        copy_gb_per_s=round(copy_bw / 1e9, 2), read_gb_per_s=round(read_bw / 1e9, 2),
        layer_dots_gb_per_s=round(layer_mb / part["layer_matmuls"], 2),
        head_dot_gb_per_s=round(head_mb / min(part["lm_head_dv"], part["lm_head_vd"]), 2),
        hlo=hlo, load_1min=[round(load0, 2), round(os.getloadavg()[0], 2)],
    )  # fmt: skip
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    app.run(main)
