"""Sampling throughput: azr_jax's sampler vs transformers' `generate`, side by side in one run.

    python scripts/bench_sampling.py --preset small [--batch 8 --prompt_len 64 --new_tokens 128]
    python scripts/bench_sampling.py --preset qwen0.5b --dtype bfloat16 --batches 1,16,64,256

Builds (once, cached under .cache/bench) a random checkpoint of the preset's shape, then times
greedy generation of exactly `new_tokens` tokens (EOS ignored) from the same random prompts with
the same weights: azr_jax (compile excluded, reported as compile_s) and transformers (PyTorch,
CUDA when available, after a warm-up call). Also reported: the decode step time and its
memory-bandwidth floor, (parameter bytes + KV-cache bytes read per step) / device copy bandwidth
(measured here with a large jnp copy). One JSON line per batch size; the last line is JSON.
"""

import json
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_string("preset", "tiny", "Checkpoint shape (azr_jax.model.tiny_checkpoint.PRESETS).")
flags.DEFINE_string("family", "qwen2", "Model family.")
flags.DEFINE_integer("batch", 8, "Prompts per call (ignored when --batches is set).")
flags.DEFINE_string("batches", "", "Comma-separated batch sizes, e.g. 1,16,64,256.")
flags.DEFINE_integer("prompt_len", 64, "Prompt tokens per row (no padding).")
flags.DEFINE_integer("new_tokens", 128, "Tokens generated per row.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Weights and activations.")
flags.DEFINE_integer("repeats", 3, "Timed runs per side (the best is reported).")
flags.DEFINE_bool("hf", True, "Also time transformers' generate.")
FLAGS = flags.FLAGS


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def memory_bandwidth(jax, jnp) -> tuple[float, float]:
    """Device memory bandwidth in bytes/s over 256 MiB: (copy, read). The copy is a jitted
    x + 1 (reads and writes every byte); the read is a sum (XLA's CPU elementwise loops are
    single-threaded, its reductions are not). The decode floor uses the faster of the two."""
    x = jnp.ones((64 << 20,), jnp.float32)
    copy, read = jax.jit(lambda a: a + 1), jax.jit(jnp.sum)
    copy(x).block_until_ready(), read(x).block_until_ready()
    t_copy = _best(lambda: copy(x).block_until_ready(), 5)
    t_read = _best(lambda: read(x).block_until_ready(), 5)
    return 2 * x.nbytes / t_copy, x.nbytes / t_read


def bench_jax(cfg, params, prompts, new_tokens):
    import jax
    import numpy as np

    from azr_jax.sampling.sampler import Sampler
    from azr_jax.sampling.settings import SamplingSettings

    settings = SamplingSettings(max_new_tokens=new_tokens, greedy=True)
    sampler = Sampler(cfg, max_cache_length=prompts.shape[1] + new_tokens)
    lengths = np.full((prompts.shape[0],), prompts.shape[1], np.int32)
    tokens, lengths, rng = jax.device_put(prompts), jax.device_put(lengths), jax.random.key(0)
    prefill, decode = sampler.compile(params, tokens, lengths, rng, settings)
    compile_s = sampler.compile_seconds
    out = sampler(params, tokens, lengths, rng, settings)  # warm-up (first execution)
    jax.block_until_ready(out)

    def run():
        jax.block_until_ready(sampler(params, tokens, lengths, rng, settings))

    total = _best(run, FLAGS.repeats)
    prefill_s = _best(lambda: jax.block_until_ready(prefill(params, tokens, lengths, rng, None)), 3)
    generated = np.asarray(out.tokens)
    return dict(total=total, prefill=prefill_s, compile=compile_s, tokens=generated)


def bench_hf(model_dir, prompts, new_tokens, dtype):
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype).to(device).eval()
    model.generation_config.eos_token_id = None  # fixed length: EOS ignored
    ids = torch.as_tensor(prompts, dtype=torch.long, device=device)
    mask = torch.ones_like(ids)

    def run(n):
        with torch.no_grad():
            out = model.generate(
                input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=n,
                min_new_tokens=n, pad_token_id=0,
            )  # fmt: skip
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    run(4)  # warm-up
    total = _best(lambda: run(new_tokens), FLAGS.repeats)
    prefill = _best(lambda: run(1), 3)
    tokens = run(new_tokens)[:, prompts.shape[1] :].cpu().numpy()
    return dict(total=total, prefill=prefill, tokens=tokens, device=device)


def main(_):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from azr_jax.model import hf_io
    from azr_jax.model.tiny_checkpoint import make_tiny_checkpoint

    root = Path(__file__).resolve().parent.parent
    model_dir = make_tiny_checkpoint(
        FLAGS.family,
        root / ".cache" / "bench" / f"{FLAGS.family}-{FLAGS.preset}",
        preset=FLAGS.preset,
    )
    cfg, params = hf_io.load_hf(model_dir, param_dtype=FLAGS.dtype, dtype=FLAGS.dtype)
    copy_bw, read_bw = memory_bandwidth(jax, jnp)
    bandwidth = max(copy_bw, read_bw)
    itemsize = jnp.dtype(FLAGS.dtype).itemsize
    param_bytes = sum(x.nbytes for x in jax.tree_util.tree_leaves(params))
    batches = [int(b) for b in FLAGS.batches.split(",")] if FLAGS.batches else [FLAGS.batch]
    p, n = FLAGS.prompt_len, FLAGS.new_tokens
    for batch in batches:
        rng = np.random.default_rng(batch)
        prompts = rng.integers(16, min(cfg.vocab_size, 2000), (batch, p)).astype(np.int32)
        ours = bench_jax(cfg, params, prompts, n)
        step_ms = 1e3 * (ours["total"] - ours["prefill"]) / (n - 1)
        s = p + n
        kv_bytes = cfg.num_layers * 2 * batch * s * cfg.num_kv_heads * cfg.head_dim * itemsize
        bound_ms = 1e3 * (param_bytes + kv_bytes) / bandwidth
        result = dict(
            preset=FLAGS.preset, family=FLAGS.family, dtype=FLAGS.dtype, batch=batch,
            prompt_len=p, new_tokens=n, device=str(jax.devices()[0].device_kind),
            jax_tokens_per_s=batch * n / ours["total"], jax_total_s=ours["total"],
            compile_s=ours["compile"], prefill_ms=1e3 * ours["prefill"],
            decode_step_ms=step_ms, bound_step_ms=bound_ms, step_over_bound=step_ms / bound_ms,
            param_mb=param_bytes / 1e6, kv_cache_mb=kv_bytes / 1e6, copy_gb_per_s=copy_bw / 1e9,
            read_gb_per_s=read_bw / 1e9,
        )  # fmt: skip
        if FLAGS.hf:
            theirs = bench_hf(model_dir, prompts, n, FLAGS.dtype)
            agree = float(np.mean(theirs["tokens"] == ours["tokens"]))
            result.update(
                hf_device=theirs["device"], hf_tokens_per_s=batch * n / theirs["total"],
                hf_decode_step_ms=1e3 * (theirs["total"] - theirs["prefill"]) / (n - 1),
                ratio=theirs["total"] / ours["total"], token_agreement=agree,
            )  # fmt: skip
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    app.run(main)
