"""Random-init Hugging Face checkpoints built locally: the embedded default, tests and benchmarks.

A checkpoint here is what a user's checkpoint is: a `transformers` model saved with
`save_pretrained` (safetensors, config.json, generation_config.json) plus a byte-level BPE
tokenizer, trained locally on the Python standard library's source, saved with its own
`save_pretrained`. Weights are redrawn with scales that make logits O(1) (transformers' own init
makes them tiny, which hides bugs). Everything is deterministic given the seed.

This module needs torch (requirements-dev.txt); nothing else in azr_jax does.
"""

from __future__ import annotations

import math
import sysconfig
from pathlib import Path
from typing import Any

SPECIAL = {"eos": "<|endoftext|>", "pad": "<|pad|>"}
PROMPT_TOKENS = ["<think>", "</think>", "<answer>", "</answer>", "```python", "```input", "```"]

# Model sizes. `tiny` is the embedded default; `small` is the sampling benchmark's (about 55M).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        vocab=2048, hidden=64, layers=2, heads=4, kv_heads=2, mlp=128, tokenizer_vocab=2048
    ),
    "small": dict(
        vocab=32000, hidden=512, layers=8, heads=8, kv_heads=2, mlp=1408, tokenizer_vocab=4096
    ),
    # A Qwen2.5-0.5B-shaped model (about 494M parameters): load-time benchmark and GPU runs.
    "qwen0.5b": dict(
        vocab=151936, hidden=896, layers=24, heads=14, kv_heads=2, mlp=4864, tokenizer_vocab=4096
    ),
}
FAMILIES = ("qwen2", "qwen3", "llama", "gpt2")


def train_tokenizer(vocab_size: int, max_bytes: int = 1_500_000):
    """A byte-level BPE tokenizer trained on stdlib sources (sorted, so deterministic)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts, total = [], 0
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="ignore")
        texts.append(text)
        total += len(text)
        if total > max_bytes:
            break
    return train_tokenizer_on(texts, vocab_size)


def train_tokenizer_on(texts, vocab_size: int, max_token_length: int = 0):
    """A byte-level BPE tokenizer trained on `texts` (in order) with the project's special and
    prompt tokens: what every locally built checkpoint uses (random or warm-started).

    `max_token_length > 0` lets merges cross spaces (no pre-split into words), up to that many
    characters per token: text that repeats (a prompt's fixed wording, `    return `) becomes
    a few long tokens, as SentencePiece-style tokenizers do.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=False, use_regex=max_token_length <= 0
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL["eos"], SPECIAL["pad"]],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        max_token_length=max_token_length if max_token_length > 0 else None,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=SPECIAL["eos"],
        bos_token=SPECIAL["eos"],
        pad_token=SPECIAL["pad"],
        unk_token=None,
        padding_side="left",
    )
    fast.add_tokens(PROMPT_TOKENS)
    return fast


def _hf_config(family: str, p: dict, vocab: int, eos: int, pad: int):
    import transformers as tf

    common = dict(vocab_size=vocab, bos_token_id=eos, eos_token_id=eos, pad_token_id=pad)
    if family == "gpt2":
        return tf.GPT2Config(
            n_embd=p["hidden"],
            n_layer=p["layers"],
            n_head=p["heads"],
            n_inner=p["mlp"],
            n_positions=1024,
            **common,
        )
    rope_kw = dict(
        hidden_size=p["hidden"],
        intermediate_size=p["mlp"],
        num_hidden_layers=p["layers"],
        num_attention_heads=p["heads"],
        num_key_value_heads=p["kv_heads"],
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        **common,
    )
    if family == "qwen2":
        return tf.Qwen2Config(tie_word_embeddings=True, rope_theta=10000.0, **rope_kw)
    if family == "qwen3":
        # head_dim deliberately differs from hidden / heads, as in real Qwen3 models.
        return tf.Qwen3Config(
            tie_word_embeddings=False,
            head_dim=2 * p["hidden"] // p["heads"],
            rope_theta=1000000.0,
            **rope_kw,
        )
    if family == "llama":
        scaling = dict(
            rope_type="llama3",
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=256,
            rope_theta=500000.0,
        )
        return tf.LlamaConfig(tie_word_embeddings=False, rope_parameters=scaling, **rope_kw)
    raise ValueError(f"family {family!r} is not one of {FAMILIES}")


def _redraw(model, seed: int) -> None:
    """Weights with O(1) logits: matrices ~ N(0, 1/fan_in), norms ~ 1 + N(0, 0.1), biases N(0, 0.1)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                base = 1.0 if ("norm" in name or "ln_" in name) and name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                conv1d = "c_attn" in name or "c_proj" in name or "c_fc" in name  # GPT-2: [in, out]
                fan_in = p.shape[0] if conv1d else p.shape[1]
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))


def make_tiny_checkpoint(
    family: str, out_dir: str | Path, *, preset: str = "tiny", seed: int = 0
) -> Path:
    """Builds (or reuses, if complete) a random checkpoint of `family` in `out_dir`."""
    import torch
    import transformers as tf

    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r} is not one of {sorted(PRESETS)}")
    out = Path(out_dir)
    if (
        (out / "config.json").exists()
        and list(out.glob("*.safetensors"))
        and (out / "tokenizer.json").exists()
    ):
        return out
    p = PRESETS[preset]
    tokenizer = train_tokenizer(p["tokenizer_vocab"])
    vocab = max(p["vocab"], -(-len(tokenizer) // 64) * 64)  # more rows than tokens, like Qwen
    eos, pad = tokenizer.convert_tokens_to_ids([SPECIAL["eos"], SPECIAL["pad"]])
    config = _hf_config(family, p, vocab, eos, pad)
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(config)
    _redraw(model, seed)
    model.generation_config.pad_token_id = pad
    model.generation_config.eos_token_id = eos
    model.generation_config.bos_token_id = eos
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    return out
