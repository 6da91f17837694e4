"""Next-token training of the warm start, and its cache keyed by the recipe's content hash.

`build_warmstart(recipe, cache_dir)` returns a Hugging Face directory (config.json,
model.safetensors, tokenizer files, generation_config.json, warmstart.json) that loads like any
checkpoint (`model_name=DIR`, `compare_with_hf.py`). It is built once per recipe: the directory
is `cache_dir/<sha256 of the recipe and of this package's source>[:16]`, so a rerun of the same
recipe returns at once and any change to the recipe or the code builds anew.

The build, all on the host CPU and deterministic given the recipe:
  1. grammar tasks, executed by the project's executor (`corpus.build_tasks`);
  2. every task rendered in the six self-play groups' prompt/response formats (`corpus.render`);
  3. a byte-level BPE tokenizer trained on that text (`tiny_checkpoint.train_tokenizer_on`);
  4. a Llama-shaped model of the project's own transformer, from random init, trained with
     optax AdamW: episode batches (one role per batch, so each has one padded shape) scored on
     the response's tokens plus, at `prompt_loss_weight`, the prompt's; every other batch a
     stream of program-and-input texts back to back, every token scored (`stream_group`);
  5. written with `hf_io.save_hf`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import resource
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from azr_jax.executor.pool import ExecutorPool
from azr_jax.model import hf_io
from azr_jax.model import transformer as model_lib
from azr_jax.model.config import ModelConfig
from azr_jax.model.tiny_checkpoint import SPECIAL, train_tokenizer_on
from azr_jax.warmstart import corpus

RECIPE_VERSION = 1  # bump when the build changes in a way the source hash would not show
DONE_FILE = "warmstart.json"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that determines the warm start (its hash names the cache entry)."""

    seed: int = 0
    n_programs: int = 4800  # grammar programs drawn (invalid ones dropped)
    num_inputs: int = 4  # inputs per induction task (the run's azr.num_inputs)
    max_references: int = 2  # references shown to triplet proposers (<= the run's K)
    banned_modules: tuple[str, ...] = ()  # as listed in the prompts (the executor's list)
    vocab_size: int = 2048  # tokenizer size (the embedding has rows up to a multiple of 64)
    max_token_length: int = 16  # tokens may span spaces, up to this many characters
    tokenizer_samples: int = 1500  # the tokenizer is trained on the first N rendered samples
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    mlp: int = 256
    steps: int = 800  # optimizer steps
    batch_size: int = 16  # rows per step (proposer, stream, solver and stream steps in turn)
    learning_rate: float = 3e-3  # AdamW peak, linear warm-up then cosine to 10%
    # Loss on the prompt's tokens too, at this weight beside the response's (0 = response only):
    # prompts hold programs (solver prompts, proposers' references), so the forward pass the
    # response needs anyway also teaches the syntax (the cost: unembedding every position).
    prompt_loss_weight: float = 0.5
    prompt_loss_stride: int = 4  # every 4th prompt token is scored (unembedding costs V x D each)
    # Every `stream_every`-th step (0 = never) trains on a stream instead: the triplet proposers'
    # ideal responses (program and input) back to back, EOS between them, cut into rows of
    # `stream_length` tokens, every token scored. ~8x more program tokens per step than an
    # episode batch, whose long prompt is context the loss mostly does not read.
    stream_every: int = 2
    stream_length: int = 256
    warmup_steps: int = 60
    weight_decay: float = 0.01

    def digest(self) -> str:
        h = hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode())
        h.update(str(RECIPE_VERSION).encode())
        here = Path(__file__).resolve().parent
        for path in sorted(here.glob("*.py")):  # the code that builds it is part of the recipe
            h.update(path.name.encode() + path.read_bytes())
        prompts_py = here.parent / "selfplay" / "prompts.py"
        h.update(prompts_py.read_bytes())
        return h.hexdigest()[:16]


def _hf_config(recipe: Recipe, vocab: int, eos: int, pad: int, max_len: int):
    """A Llama-shaped config with tied embeddings. Llama, not Qwen2: transformers' AutoTokenizer
    replaces a qwen2 checkpoint's pre-tokenizer with Qwen2's word-splitting regex, which would
    undo the space-crossing merges of our tokenizer; for llama it loads tokenizer.json as is."""
    import transformers as tf

    return tf.LlamaConfig(
        vocab_size=vocab,
        hidden_size=recipe.hidden,
        intermediate_size=recipe.mlp,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.kv_heads,
        max_position_embeddings=max_len,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=pad,
    )


def _bucket(n: int, smallest: int) -> int:
    size = smallest
    while size < n:
        size *= 2
    return size


@dataclasses.dataclass
class GroupArrays:
    """One group's sequences: [prompt left-padded to P | response right-padded to R]."""

    tokens: np.ndarray  # [N, P + R] int32
    attn: np.ndarray  # [N, P + R] bool
    prompt_len: int  # P
    kinds: np.ndarray  # [N] index into corpus.KINDS of each row


def tokenize_groups(
    samples: Sequence[tuple[str, str, int]], tokenizer, eos_id: int, pad_id: int
) -> dict[str, GroupArrays]:
    """Per role, the padded token arrays of its samples (all three task types); EOS ends each
    response."""
    by_kind: dict[int, list[tuple[list[int], list[int], int]]] = {}
    prompts_ = [p for p, _, _ in samples]
    responses = [r for _, r, _ in samples]
    p_ids = tokenizer(prompts_, add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(responses, add_special_tokens=False)["input_ids"]
    for (_, _, kind), p, r in zip(samples, p_ids, r_ids, strict=True):
        role = corpus.KINDS[kind][1]  # one padded shape per role: two compiled steps
        by_kind.setdefault(role, []).append((p, [*r, eos_id], kind))
    out = {}
    for role, rows in sorted(by_kind.items()):
        P = -(-max(len(p) for p, _, _ in rows) // 32) * 32
        R = -(-max(len(r) for _, r, _ in rows) // 16) * 16
        tokens = np.full((len(rows), P + R), pad_id, np.int32)
        attn = np.zeros((len(rows), P + R), bool)
        for i, (p, r, _) in enumerate(rows):
            tokens[i, P - len(p) : P] = p
            tokens[i, P : P + len(r)] = r
            attn[i, P - len(p) : P + len(r)] = True
        out[role] = GroupArrays(tokens, attn, P, np.array([k for _, _, k in rows]))
    return out


def stream_group(docs: Sequence[str], tokenizer, eos_id: int, length: int) -> GroupArrays:
    """`docs` tokenized back to back with EOS after each, cut into rows of `length` tokens (the
    tail that does not fill a row is dropped; a stream shorter than a row is one row of its
    length); every token but a row's first is a target."""
    ids = tokenizer(list(docs), add_special_tokens=False)["input_ids"]
    flat = np.array([t for doc in ids for t in [*doc, eos_id]], np.int32)
    length = min(length, len(flat))
    n = len(flat) // length
    tokens = flat[: n * length].reshape(n, length)
    return GroupArrays(tokens, np.ones_like(tokens, bool), 1, np.full(n, -1))


def token_losses(params, cfg: ModelConfig, tokens, attn, prompt_len: int, prompt_stride: int):
    """(mean next-token cross-entropy over the response tokens, the same over every
    `prompt_stride`-th prompt token, each predicted from those before it; 0 if the stride is 0).
    Only the scored positions are unembedded. tokens, attn: [B, P + R]."""
    positions = model_lib.positions_from_mask(attn)  # [B, T]
    h, _ = model_lib.hidden_states(params, cfg, tokens, positions, attn)  # [B, T, D]
    t = tokens.shape[1]
    # The states whose next token is scored (static): prompt ones at the stride, then the response's.
    in_prompt = np.arange(0, prompt_len - 1, prompt_stride) if prompt_stride else np.zeros(0, int)
    src = np.concatenate([in_prompt, np.arange(prompt_len - 1, t - 1)])  # [S]
    logits = model_lib.unembed(params, cfg, h[:, src])  # [B, S, V]
    targets = tokens[:, src + 1]  # [B, S]
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]  # [B, S]
    real = (attn[:, src + 1] & attn[:, src]).astype(jnp.float32)  # target and context real
    in_response = jnp.asarray(src + 1 >= prompt_len)  # [S]
    resp, prompt = real * in_response, real * ~in_response
    mean = lambda m: (nll * m).sum() / jnp.maximum(m.sum(), 1.0)  # noqa: E731
    return mean(resp), mean(prompt)


def response_loss(params, cfg: ModelConfig, tokens, attn, prompt_len: int):
    """Mean next-token cross-entropy over the response tokens. tokens, attn: [B, P + R]."""
    return token_losses(params, cfg, tokens, attn, prompt_len, 0)[0]


def make_optimizer(recipe: Recipe) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        0.0,
        recipe.learning_rate,
        min(recipe.warmup_steps, max(recipe.steps - 1, 1)),
        max(recipe.steps, 2),
        end_value=0.1 * recipe.learning_rate,
    )
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(schedule, b2=0.98, weight_decay=recipe.weight_decay),
    )


@functools.cache
def _jit_step(cfg: ModelConfig, recipe: Recipe, prompt_len: int):
    opt = make_optimizer(recipe)
    w = recipe.prompt_loss_weight

    def step(params, opt_state, tokens, attn):
        def loss_fn(p):
            stride = recipe.prompt_loss_stride if w > 0 else 0
            resp, prompt = token_losses(p, cfg, tokens, attn, prompt_len, stride)
            return resp + w * prompt, resp

        (_, loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss  # loss: the response's

    return jax.jit(step, donate_argnums=(0, 1))


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def train_model(
    recipe: Recipe, groups: dict[str, GroupArrays], cfg: ModelConfig, progress: bool = True
) -> tuple[dict, dict[str, Any]]:
    """Trains from random init; batches alternate between the roles, rows drawn with the seed."""
    from tqdm import tqdm

    rng = np.random.default_rng(recipe.seed + 1)
    params = model_lib.init_params(cfg, recipe.seed)
    opt_state = make_optimizer(recipe).init(params)
    kinds = sorted(k for k in groups if k != "stream")
    losses: dict[str, list[float]] = {k: [] for k in groups}
    every = recipe.stream_every if "stream" in groups else 0
    bar = tqdm(range(recipe.steps), desc="warm start", disable=not progress, unit="step")
    for i in bar:
        if every and i % every == every - 1:
            kind = "stream"
        else:
            kind = kinds[(i - (i // every if every else 0)) % len(kinds)]
        g = groups[kind]
        rows = rng.choice(
            len(g.tokens), size=recipe.batch_size, replace=len(g.tokens) < recipe.batch_size
        )
        step = _jit_step(cfg, recipe, g.prompt_len)
        params, opt_state, loss = step(params, opt_state, g.tokens[rows], g.attn[rows])
        losses[kind].append(float(loss))
        if i % 20 == 0:
            bar.set_postfix(loss=f"{np.mean([v[-1] for v in losses.values() if v]):.3f}")
    bar.close()
    tail = {k: float(np.mean(v[-10:])) if v else None for k, v in losses.items()}
    head = {k: float(v[0]) if v else None for k, v in losses.items()}
    return params, {"first_loss": head, "final_loss": tail}


def build_warmstart(
    recipe: Recipe,
    cache_dir: str | Path,
    *,
    pool: ExecutorPool | None = None,
    progress: bool = True,
) -> Path:
    """The warm-started checkpoint of `recipe`: from the cache, or built (minutes) and cached."""
    cache_dir = Path(cache_dir)
    digest = recipe.digest()  # once: the source may change while a build runs
    out = cache_dir / digest
    if (out / DONE_FILE).exists():
        return out
    t0, c0 = time.perf_counter(), _cpu_seconds()
    own_pool = pool is None
    if own_pool:
        pool = ExecutorPool(workers=2, timeout_s=5.0, memory_mb=512, hash_seeds=[101, 202])
    try:
        tasks = corpus.build_tasks(pool, recipe.seed, recipe.n_programs, recipe.num_inputs)
    finally:
        if own_pool:
            pool.close()
    if not tasks:
        raise RuntimeError("the grammar gave no valid task: the executor rejected them all")
    samples = corpus.render(
        tasks, recipe.seed, recipe.max_references, recipe.banned_modules, recipe.num_inputs
    )
    t_corpus = time.perf_counter() - t0
    tokenizer = train_tokenizer_on(
        [p + r for p, r, _ in samples[: recipe.tokenizer_samples]],
        recipe.vocab_size,
        recipe.max_token_length,
    )
    eos, pad = tokenizer.convert_tokens_to_ids([SPECIAL["eos"], SPECIAL["pad"]])
    groups = tokenize_groups(samples, tokenizer, eos, pad)
    if recipe.stream_every:
        docs = [corpus.response(("code_o", "propose"), task) for task in tasks]
        groups["stream"] = stream_group(docs, tokenizer, eos, recipe.stream_length)
    max_len = _bucket(max(g.tokens.shape[1] for g in groups.values()), 256)
    vocab = -(-len(tokenizer) // 64) * 64
    hf = _hf_config(recipe, vocab, eos, pad, max(max_len, 2048))
    cfg = ModelConfig.from_hf(hf)
    t1 = time.perf_counter()
    params, stats = train_model(recipe, groups, cfg, progress)
    t_train = time.perf_counter() - t1

    tmp = cache_dir / f".building-{digest}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    tokenizer.save_pretrained(tmp)
    hf.save_pretrained(tmp)
    (tmp / "generation_config.json").write_text(
        json.dumps({"bos_token_id": eos, "eos_token_id": eos, "pad_token_id": pad}, indent=2)
    )
    hf_io.save_hf(params, cfg, tmp, tmp)
    info = {
        "recipe": dataclasses.asdict(recipe),
        "digest": digest,
        "tasks": len(tasks),
        "samples": len(samples),
        "num_params": cfg.num_params,
        "shapes": {k: list(g.tokens.shape) for k, g in groups.items()},
        "corpus_seconds": t_corpus,
        "train_seconds": t_train,
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds": _cpu_seconds() - c0,
        **stats,
    }
    (tmp / DONE_FILE).write_text(json.dumps(info, indent=2))
    if out.exists():  # another process finished first: keep its copy
        shutil.rmtree(tmp)
    else:
        tmp.rename(out)
    return out


def corpus_programs(recipe: Recipe, pool: ExecutorPool) -> list[corpus.GrammarTask]:
    """The warm start's tasks again (deterministic): what held-out sets must avoid."""
    return corpus.build_tasks(pool, recipe.seed, recipe.n_programs, recipe.num_inputs)
