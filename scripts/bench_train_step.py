"""Train-step throughput: azr_jax's jitted update vs the same update in PyTorch, side by side.

    python scripts/bench_train_step.py --preset small             # CPU: batch 8, length 256
    python scripts/bench_train_step.py --preset qwen0.5b --dtype bfloat16 --length 2048 \
        --batch 8 --remat both --attention einsum,cudnn            # GPU: adds MFU

One step = forward, backward and AdamW update of the TRR++ loss (clipped ratio against old
log-probs, entropy bonus, token-mean) on `batch` rows of `length` tokens (prompt = length / 4,
the rest response). The reference is a transformers model with the same weights, the same loss
from full logits, `clip_grad_norm_` and `torch.optim.AdamW`, on the same device (CUDA when
available). Compilation and warm-up steps are excluded. tokens/s counts every row token; MFU is
6 * parameters * tokens/s / peak. Builds the random checkpoint once under .cache/bench.
Last line: JSON.

    python scripts/bench_train_step.py --packing --preset tiny    # packed vs padded updates

`--packing` (issue 12) times instead the same jitted step on one batch of episodes in the
trainer's two layouts, side by side: padded (`trainer.make_batch`: one episode a row, prompt
and response widths bucketed to powers of two) and packed (`trainer.make_packed_batch`, what
`rl.packing=True` feeds). Timed steps alternate between the two (paired under the same load);
the figure is real (non-pad: prompt + response) tokens per second, median over steps. The
episodes' lengths follow AZR's shape: prompts are long-ish (the task template, K reference
triplets and the program: uniform in [prompt_cap / 3, prompt_cap]); responses are long-tailed,
from a dozen tokens to the cap (log-normal, median response_cap / 8, sigma 1, clipped to
[12, response_cap]; one response of the batch runs to the cap, as some always does in AZR's
6 x 64-episode batches at 8,096 tokens). The JSON also holds both losses (they must agree).
"""

import functools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# JAX would otherwise take 75% of the GPU at its first use, starving the PyTorch side.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("preset", "small", "Checkpoint shape (azr_jax.model.tiny_checkpoint.PRESETS).")
flags.DEFINE_string("family", "qwen2", "Model family.")
flags.DEFINE_integer("batch", 8, "Rows per step.")
flags.DEFINE_integer("length", None, "Row length (default: 128 for tiny, 256 otherwise).")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype (params float32).")
flags.DEFINE_enum("remat", "off", ["off", "on", "both"], "jax.checkpoint around each block.")
flags.DEFINE_list(
    "attention",
    ["einsum"],
    "Attention implementations to time, each a JAX variant (azr_jax.model.config.ATTENTION_IMPLS).",
)
flags.DEFINE_string(
    "trace_dir",
    None,
    "If set, 2 more steps of each JAX variant run under jax.profiler.trace(TRACE_DIR/<variant>) "
    "(read them with scripts/trace_summary.py).",
)
flags.DEFINE_integer("micro_batches", 1, "Micro-batches per step.")
flags.DEFINE_integer("chunk", 512, "Log-prob chunk (positions unembedded at a time).")
flags.DEFINE_integer("steps", 5, "Timed steps per side.")
flags.DEFINE_integer("warmup", 2, "Untimed steps per side (the first compiles).")
flags.DEFINE_float("peak_flops", 989e12, "Peak dense bf16 FLOP/s of one device (H100/H200).")
flags.DEFINE_bool("torch", True, "Also time the PyTorch step.")
flags.DEFINE_bool("packing", False, "Time packed vs padded update batches (see the docstring).")
flags.DEFINE_integer("episodes", 64, "--packing: episodes in the batch.")
flags.DEFINE_integer("prompt_cap", 256, "--packing: longest prompt (tokens).")
flags.DEFINE_integer("response_cap", 256, "--packing: longest response (tokens).")
flags.DEFINE_integer(
    "threads", 0, "CPU threads for both sides (0: each library's default; 1: single-threaded)."
)
FLAGS = flags.FLAGS

LR = 1e-6
_TORCH_INFO: dict = {}  # what the reference ran with (its attention implementation)


def make_rows(batch: int, length: int, vocab: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    prompt = length // 4
    tokens = rng.integers(2, vocab, (batch, length)).astype(np.int32)
    attn = np.ones((batch, length), np.int32)
    loss = np.zeros((batch, length), np.int32)
    loss[:, prompt:] = 1
    adv = rng.normal(size=batch).astype(np.float32)
    return tokens, attn, loss, adv, prompt


def _timed(step, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps


def bench_jax(ckpt: Path, rows, old, remat: bool, attention: str, trace: str | None) -> float:
    import jax

    from azr_jax.model import hf_io
    from azr_jax.parallel import sharding as shd
    from azr_jax.update.pg_loss import PGBatch, PGLossConfig
    from azr_jax.update.train_step import TrainHparams, jit_init_state, jit_train_step

    tokens, attn, loss, adv, prompt = rows
    mesh = shd.make_mesh(data=1, fsdp=-1)
    cfg, params = hf_io.load_hf(ckpt, mesh, dtype=FLAGS.dtype, attention=attention)
    hp = TrainHparams(
        loss=PGLossConfig(),
        lr=LR,
        micro_batches=FLAGS.micro_batches,
        logprob_chunk=FLAGS.chunk,
        remat=remat,
    )
    state = jit_init_state(cfg, hp, mesh)(params)
    step_fn = jit_train_step(cfg, hp, mesh)
    batch = PGBatch(
        tokens=tokens,
        attn_mask=attn,
        loss_mask=loss,
        advantages=adv,
        old_logprobs=old,
        response_start=prompt,
    )
    batch = jax.device_put(batch, shd.batch_sharding(mesh, 1))  # rows over data x fsdp
    rng = jax.random.key(0)
    holder = {"state": state}

    def step():
        holder["state"], metrics = step_fn(holder["state"], batch, rng)
        jax.block_until_ready(metrics["loss"])

    seconds = _timed(step, FLAGS.steps, FLAGS.warmup)
    if trace:
        with jax.profiler.trace(trace, create_perfetto_trace=True):
            for _ in range(2):
                step()
    return seconds


def old_logprobs(ckpt: Path, rows):
    """The 'sampler' log-probs: the current policy's, so ratios start at 1 as in a real update."""
    import jax
    import numpy as np

    from azr_jax.model import hf_io
    from azr_jax.update.logprobs import token_logprobs

    tokens, attn, _, _, prompt = rows
    cfg, params = hf_io.load_hf(ckpt, dtype=FLAGS.dtype)
    fn = jax.jit(lambda p, t, a: token_logprobs(p, cfg, t, a, start=prompt, chunk=FLAGS.chunk)[0])
    return np.asarray(fn(params, tokens, attn), np.float32)


def bench_torch(ckpt: Path, rows, old) -> float | None:
    import numpy as np
    import torch
    import transformers

    tokens, attn, loss, adv, _ = rows
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).to(dev)
    _TORCH_INFO["torch_attention"] = getattr(model.config, "_attn_implementation", None)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
    t = lambda x: torch.tensor(np.array(x), device=dev)  # noqa: E731
    tokens, attn, mask = t(tokens).long(), t(attn).long(), t(loss)[:, 1:].float()
    old, adv = t(old)[:, 1:], t(adv)[:, None]
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    autocast = torch.autocast(dev, dtype=torch.bfloat16, enabled=FLAGS.dtype == "bfloat16")

    def step():
        with autocast:
            logits = model(input_ids=tokens, attention_mask=attn, position_ids=positions).logits
        logp_all = torch.log_softmax(logits[:, :-1].float(), -1)
        logp = logp_all.gather(-1, tokens[:, 1:, None])[..., 0]
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        ratio = torch.exp(logp - old)
        pg = torch.maximum(-adv * ratio, -adv * ratio.clamp(0.8, 1.2))
        obj = ((pg - 0.001 * entropy) * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        obj.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if dev == "cuda":
            torch.cuda.synchronize()

    try:
        return _timed(step, FLAGS.steps, FLAGS.warmup)
    except torch.OutOfMemoryError:
        return None


def _release_torch_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def azr_like_episodes(n: int, prompt_cap: int, response_cap: int, vocab: int, seed: int = 0):
    """`n` episodes with AZR-shaped lengths (see the module docstring), random tokens."""
    import numpy as np

    from azr_jax.selfplay.step import Episode

    rng = np.random.default_rng(seed)
    prompts = rng.integers(max(prompt_cap // 3, 1), prompt_cap + 1, n)
    responses = np.exp(rng.normal(np.log(response_cap / 8), 1.0, n))
    responses = np.clip(np.round(responses), min(12, response_cap), response_cap).astype(int)
    responses[int(rng.integers(n))] = response_cap
    out = []
    for i in range(n):
        p, r = int(prompts[i]), int(responses[i])
        out.append(
            Episode(
                group=i % 6,
                prompt_ids=rng.integers(2, vocab, p).astype(np.int32),
                response_ids=rng.integers(2, vocab, r).astype(np.int32),
                logprobs=rng.normal(-2.0, 0.5, r).astype(np.float32),
                prompt="",
                response="",
                reward=float(rng.uniform(-1, 1)),
            )
        )
    return out, rng.normal(size=n).astype(np.float32)


def bench_packing(ckpt: Path) -> dict:
    """Packed vs padded: the same episodes, the same jitted step, alternating timed steps."""
    import statistics

    import jax
    import numpy as np

    from azr_jax.model import hf_io
    from azr_jax.parallel import sharding as shd
    from azr_jax.run import trainer
    from azr_jax.update.pg_loss import PGLossConfig
    from azr_jax.update.train_step import (
        TrainHparams,
        jit_init_state,
        jit_train_step,
        train_step,
    )

    mesh = shd.make_mesh(data=1, fsdp=-1)
    cfg = hf_io.load_config(ckpt, dtype=FLAGS.dtype)
    episodes, adv = azr_like_episodes(
        FLAGS.episodes, FLAGS.prompt_cap, FLAGS.response_cap, cfg.vocab_size
    )
    hp = TrainHparams(
        loss=PGLossConfig(),
        lr=LR,
        micro_batches=FLAGS.micro_batches,
        logprob_chunk=FLAGS.chunk,
        remat=FLAGS.remat == "on",
    )
    pad_id = 0
    padded, _ = trainer.make_batch(episodes, adv, pad_id)
    cap = trainer._bucket(FLAGS.prompt_cap) + FLAGS.response_cap
    multiple = FLAGS.micro_batches * jax.device_count()
    packed, _ = trainer.make_packed_batch(episodes, adv, pad_id, cap, multiple)
    real = int(np.asarray(padded.attn_mask).sum())
    assert real == int(np.asarray(packed.attn_mask).sum())
    step_fn = jit_train_step(cfg, hp, mesh)
    sides = {}
    for name, batch in (("padded", padded), ("packed", packed)):
        _, params = hf_io.load_hf(ckpt, mesh, dtype=FLAGS.dtype)
        batch = jax.device_put(batch, shd.batch_sharding(mesh, 1))
        sides[name] = {"state": jit_init_state(cfg, hp, mesh)(params), "batch": batch}
    rng = jax.random.key(0)
    losses, times = {}, {"padded": [], "packed": []}

    def step(name):
        side = sides[name]
        t = time.perf_counter()
        side["state"], metrics = step_fn(side["state"], side["batch"], rng)
        loss = float(jax.block_until_ready(metrics["loss"]))
        losses.setdefault(name, loss)  # the first step's: both start from the same weights
        return time.perf_counter() - t

    for _ in range(FLAGS.warmup):
        for name in sides:
            step(name)
    for i in range(FLAGS.steps):
        for name in sides if i % 2 == 0 else reversed(list(sides)):
            times[name].append(step(name))
    out = {"mode": "packing", "real_tokens": real}
    for name, batch in (("padded", padded), ("packed", packed)):
        # XLA's own count of the compiled step's work: independent of the machine's load.
        plain = jax.jit(functools.partial(train_step, cfg=cfg, hparams=hp))
        with jax.set_mesh(mesh):
            cost = plain.lower(sides[name]["state"], sides[name]["batch"], rng).compile()
        cost = cost.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        out[f"{name}_gflop"] = cost.get("flops", 0.0) / 1e9
        out[f"{name}_gbytes_accessed"] = cost.get("bytes accessed", 0.0) / 1e9
        rows, length = np.shape(batch.tokens)
        sec = statistics.median(times[name])
        out[f"{name}_rows"], out[f"{name}_row_length"] = rows, length
        out[f"{name}_fill"] = real / (rows * length)
        out[f"{name}_step_s"] = sec
        out[f"{name}_real_tokens_per_s"] = real / sec
        out[f"{name}_loss"] = losses[name]
        out[f"{name}_step_times_s"] = [round(x, 4) for x in times[name]]
        print(f"{name}: {rows} x {length} rows, {sec * 1e3:.0f} ms/step", flush=True)
    # Three readings of the same paired steps: medians (the headline), best-of (the least
    # disturbed step of each side) and the median of the per-pair ratios.
    out["ratio"] = out["packed_real_tokens_per_s"] / out["padded_real_tokens_per_s"]
    out["ratio_best_of"] = min(times["padded"]) / min(times["packed"])
    pairs = [a / b for a, b in zip(times["padded"], times["packed"], strict=True)]
    out["ratio_paired_median"] = statistics.median(pairs)
    out["gflop_ratio"] = out["padded_gflop"] / max(out["packed_gflop"], 1e-12)
    p = np.array([len(e.prompt_ids) for e in episodes])
    r = np.array([len(e.response_ids) for e in episodes])
    out["prompt_len_mean_max"] = [float(p.mean()), int(p.max())]
    out["response_len_median_mean_max"] = [float(np.median(r)), float(r.mean()), int(r.max())]
    return out


def main(argv):
    del argv
    if FLAGS.threads:
        # On a shared CPU, OpenMP's spinning threads can slow torch by 10x; pin both sides.
        import torch

        torch.set_num_threads(FLAGS.threads)
        if FLAGS.threads == 1:
            os.environ["XLA_FLAGS"] = (
                os.environ.get("XLA_FLAGS", "")
                + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            )
    import jax

    from azr_jax.model import hf_io
    from azr_jax.model.tiny_checkpoint import make_tiny_checkpoint

    root = Path(__file__).resolve().parent.parent
    ckpt = make_tiny_checkpoint(
        FLAGS.family,
        root / ".cache" / "bench" / f"{FLAGS.family}-{FLAGS.preset}",
        preset=FLAGS.preset,
    )
    cfg = hf_io.load_config(ckpt)
    if FLAGS.packing:
        out = {"preset": FLAGS.preset, "family": FLAGS.family, "params": cfg.num_params}
        out.update(dtype=FLAGS.dtype, device=jax.devices()[0].device_kind)
        out.update(episodes=FLAGS.episodes, prompt_cap=FLAGS.prompt_cap)
        out.update(response_cap=FLAGS.response_cap, micro_batches=FLAGS.micro_batches)
        out.update(bench_packing(ckpt))
        out["load_avg_1m"] = os.getloadavg()[0]
        print(json.dumps(out))
        return
    length = FLAGS.length or (128 if FLAGS.preset == "tiny" else 256)
    rows = make_rows(FLAGS.batch, length, cfg.vocab_size)
    old = old_logprobs(ckpt, rows)
    tokens = FLAGS.batch * length
    out = {
        "preset": FLAGS.preset,
        "family": FLAGS.family,
        "params": cfg.num_params,
        "batch": FLAGS.batch,
        "length": length,
        "dtype": FLAGS.dtype,
        "device": jax.devices()[0].device_kind,
        "num_devices": jax.device_count(),
        "threads": FLAGS.threads,
    }
    # PyTorch first: its caching allocator hands the GPU memory back before JAX allocates.
    sec_torch = bench_torch(ckpt, rows, old) if FLAGS.torch else None
    _release_torch_memory()
    out["torch_tokens_per_s"] = tokens / sec_torch if sec_torch else None
    out.update(_TORCH_INFO)
    variants = {"off": [False], "on": [True], "both": [False, True]}[FLAGS.remat]
    for attention in FLAGS.attention:
        for remat in variants:
            # The first attention keeps the plain keys (jax_tokens_per_s, ...); others are
            # suffixed with their name (jax_cudnn_tokens_per_s, ...).
            key = "jax" + ("" if attention == FLAGS.attention[0] else f"_{attention}")
            key += "_remat" if remat else ""
            try:
                trace = os.path.join(FLAGS.trace_dir, key) if FLAGS.trace_dir else None
                sec = bench_jax(ckpt, rows, old, remat, attention, trace)
            except Exception as e:  # e.g. cudnn on a GPU/shape it does not support
                out[f"{key}_error"] = f"{type(e).__name__}: {str(e)[:300]}"
                print(f"{key}: failed: {out[f'{key}_error']}", flush=True)
                continue
            out[f"{key}_tokens_per_s"] = tokens / sec
            out[f"{key}_mfu"] = (
                6 * cfg.num_params * tokens / sec / (FLAGS.peak_flops * jax.device_count())
            )
            print(f"{key}: {sec * 1e3:.1f} ms/step, {tokens / sec:.0f} tokens/s", flush=True)
    if out["torch_tokens_per_s"]:
        print(f"torch: {tokens / out['torch_tokens_per_s'] * 1e3:.1f} ms/step", flush=True)
    main_key = "jax_tokens_per_s" if "jax_tokens_per_s" in out else "jax_remat_tokens_per_s"
    ok = out["torch_tokens_per_s"] and main_key in out
    out["ratio"] = out[main_key] / out["torch_tokens_per_s"] if ok else None
    print(json.dumps(out))


if __name__ == "__main__":
    app.run(main)
