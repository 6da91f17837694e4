"""Rollout throughput: the slot engine vs the static sampler, side by side in one run.

    python scripts/bench_rollout.py --preset tiny [--requests 64 --slots 16 --chunk 8]
    python scripts/bench_rollout.py --preset small --requests 32 --new_tokens 96

The workload (AZR-like skewed lengths): `requests` prompts of uniform random length in
[prompt_min, prompt_max] tokens, sampled at temperature 1 from a random checkpoint of the preset
(built once under .cache/bench). A set of EOS ids is chosen so that a row stops after each
token with probability p = 1 - cap_fraction ** (1 / new_tokens): lengths are geometric, capped
at `new_tokens`, with about `cap_fraction` (10%) of the rows reaching the cap, a long tail over
a short median, like AZR's responses (a dozen tokens to the cap). The realised lengths are
reported (median, mean, fraction at the cap).

Both sides serve the same requests with the same per-request keys, so they generate the same
tokens; useful tokens (non-pad, EOS included) per second are compared. The static sampler runs
`slots`-row calls in order, each decoding until its longest row is done (as `Generator` did);
the engine keeps `slots` decode slots full, refilling each as its row ends. Compilation is
excluded (one warm-up run each); the runs alternate static, engine, ... and the best of
`repeats` is kept, so a loaded machine affects both alike. The last line is JSON with
engine_tokens_per_s, static_tokens_per_s, ratio, slots, chunk, and `ideal_ratio`: the ratio
the lengths alone allow (static decode steps over the fewest an engine could run, every step
at one cost, prefills free), an upper bound for `ratio` on a machine where a step's cost does
not depend on how many rows are live.
"""

import json
import os
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_string("preset", "tiny", "Checkpoint shape (azr_jax.model.tiny_checkpoint.PRESETS).")
flags.DEFINE_string("family", "qwen2", "Model family.")
flags.DEFINE_integer("requests", 64, "Rows to generate (one sample per prompt).")
flags.DEFINE_integer("slots", 16, "Engine decode slots = static sampler rows per call.")
flags.DEFINE_integer("chunk", 8, "Engine decode steps per device call.")
flags.DEFINE_integer("prefill_batch", 4, "Engine requests per prefill-insert.")
flags.DEFINE_integer("prompt_min", 24, "Shortest prompt.")
flags.DEFINE_integer("prompt_max", 60, "Longest prompt (all prompts fit one 64-token bucket).")
flags.DEFINE_integer("new_tokens", 128, "The length cap N.")
flags.DEFINE_float("cap_fraction", 0.1, "Fraction of rows that reach the cap.")
flags.DEFINE_integer("repeats", 2, "Timed runs per side (the best is kept).")
FLAGS = flags.FLAGS


def ideal_ratio(lengths, slots: int) -> dict:
    """What the lengths alone allow: decode steps of the static calls (each runs until its
    longest row ends) over the fewest an engine with `slots` slots could run (all rows packed
    end to end, or the longest row, whichever is more), with every step costing the same and
    prefills free. `ratio` / `ideal_ratio` is how much of it the engine turns into speed.
    `fifo_ratio`: the same against an engine that serves the rows in order and refills a slot
    the step it frees (lengths are not known in advance, so its tail is what a real one has)."""
    import heapq

    import numpy as np

    lengths = np.asarray(lengths)
    static_steps = int(sum(lengths[i : i + slots].max() for i in range(0, len(lengths), slots)))
    engine_steps = max(-(-int(lengths.sum()) // slots), int(lengths.max()))
    # In arrival order, each row into the first slot to free up, refilled the same step: the
    # steps of an engine that never waits (no chunks, no prefill groups); the rows it starts
    # last decide its tail.
    free_at = [0] * slots
    for n in lengths:
        heapq.heappush(free_at, heapq.heappop(free_at) + int(n))
    fifo_steps = max(free_at)
    return {
        "static_steps": static_steps,
        "engine_steps_min": engine_steps,
        "ideal_ratio": static_steps / engine_steps,
        "fifo_steps": fifo_steps,
        "fifo_ratio": static_steps / fifo_steps,
    }


def main(_):
    import jax
    import numpy as np

    from azr_jax.model import hf_io
    from azr_jax.model.tiny_checkpoint import make_tiny_checkpoint
    from azr_jax.sampling.engine import Engine, Request
    from azr_jax.sampling.sampler import Sampler, row_keys
    from azr_jax.sampling.settings import SamplingSettings

    root = Path(__file__).resolve().parent.parent
    model_dir = make_tiny_checkpoint(
        FLAGS.family, root / ".cache" / "bench" / f"{FLAGS.family}-{FLAGS.preset}",
        preset=FLAGS.preset,
    )  # fmt: skip
    cfg, params = hf_io.load_hf(model_dir)
    n, slots = FLAGS.new_tokens, FLAGS.slots
    p_stop = 1 - FLAGS.cap_fraction ** (1 / n)
    num_eos = max(1, round(p_stop * cfg.vocab_size))  # a random model is near-uniform
    settings = SamplingSettings(max_new_tokens=n, eos_ids=tuple(range(16, 16 + num_eos)))

    rng = np.random.default_rng(0)
    bucket = 1 << (FLAGS.prompt_max - 1).bit_length()
    lens = rng.integers(FLAGS.prompt_min, FLAGS.prompt_max + 1, FLAGS.requests)
    prompts = [rng.integers(16 + num_eos, cfg.vocab_size, k).astype(np.int32) for k in lens]
    # Request r = c * slots + i is row i of static call c: key row_keys(fold_in(key, c))[i].
    calls = -(-FLAGS.requests // slots)
    call_keys = [jax.random.fold_in(jax.random.key(0), c) for c in range(calls)]
    keys_np = np.concatenate(
        [np.asarray(jax.random.key_data(row_keys(k, slots))) for k in call_keys]
    )
    cache = bucket + n

    sampler = Sampler(cfg, max_cache_length=cache)
    engine = Engine(cfg, slots=slots, chunk=FLAGS.chunk, max_cache_length=cache,
                    prefill_batch=FLAGS.prefill_batch, prompt_buckets=(bucket,))  # fmt: skip

    def run_static():
        """slots-row calls in order, each until its longest row is done."""
        lengths = []
        for c in range(calls):
            rows = range(c * slots, min((c + 1) * slots, FLAGS.requests))
            tokens = np.zeros((slots, bucket), np.int32)
            plen = np.zeros((slots,), np.int32)  # 0: an inactive padding row
            for i, r in enumerate(rows):
                tokens[i, bucket - lens[r] :] = prompts[r]
                plen[i] = lens[r]
            out = jax.block_until_ready(sampler(params, tokens, plen, call_keys[c], settings))
            lengths += list(np.asarray(out.lengths)[: len(rows)])
        return np.array(lengths)

    def run_engine():
        reqs = [Request(prompts[r], keys_np[r], r) for r in range(FLAGS.requests)]
        return np.array([len(c.tokens) for c in engine.run(params, reqs, settings)])

    static_len, engine_len = run_static(), run_engine()  # warm-up: compiles
    best = {"static": float("inf"), "engine": float("inf")}
    for _ in range(FLAGS.repeats):
        for name, fn in (("static", run_static), ("engine", run_engine)):
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    useful = int(engine_len.sum())
    result = dict(
        preset=FLAGS.preset, family=FLAGS.family, requests=FLAGS.requests, slots=slots,
        chunk=FLAGS.chunk, prefill_batch=FLAGS.prefill_batch, new_tokens=n,
        prompt_len=[FLAGS.prompt_min, FLAGS.prompt_max], stop_p=p_stop,
        length_median=float(np.median(engine_len)), length_mean=float(engine_len.mean()),
        at_cap=float(np.mean(engine_len == n)), same_lengths=bool(np.array_equal(static_len,
                                                                               engine_len)),
        useful_tokens=useful, static_s=best["static"], engine_s=best["engine"],
        static_tokens_per_s=int(static_len.sum()) / best["static"],
        engine_tokens_per_s=useful / best["engine"],
        load_1min=os.getloadavg()[0], cpu_count=os.cpu_count(),
        device=str(jax.devices()[0].device_kind),
    )  # fmt: skip
    result["ratio"] = result["engine_tokens_per_s"] / result["static_tokens_per_s"]
    result.update(ideal_ratio(engine_len, slots))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    app.run(main)
