"""Sampling settings: one frozen dataclass, and how to build it from a checkpoint directory.

The dataclass is hashable and static under jit: the sampler compiles one prefill/decode pair per
(settings, batch bucket, prompt bucket). `settings_from_model_dir` reads the checkpoint's
`generation_config.json` and tokenizer special tokens; explicit overrides win.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
    """How to sample. N below is `max_new_tokens`; R = B * n is the number of output rows."""

    max_new_tokens: int = 256  # N: the most tokens generated per row (the decode loop's bound)
    greedy: bool = False  # argmax decoding; temperature / top_p / top_k are then ignored
    temperature: float = 1.0  # logits are divided by it before truncation and sampling
    top_p: float = 1.0  # nucleus: keep the smallest top set with mass >= top_p (1.0: off)
    top_k: int = 0  # keep only the k most likely tokens (0: off)
    n: int = 1  # samples per prompt: the prompt is prefilled once, its cache rows replicated
    eos_ids: tuple[int, ...] = ()  # a row stops after emitting one of these (kept in its length)
    stop_strings: tuple[str, ...] = ()  # a row stops after the token that completes one of these
    pad_id: int = 0  # fills the token buffer after a row has stopped

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens}: must be >= 1")
        if not self.greedy and not self.temperature > 0:
            raise ValueError(
                f"temperature={self.temperature}: must be > 0 (use greedy=True for argmax)"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p}: must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError(f"top_k={self.top_k}: must be >= 0 (0 turns it off)")
        if self.n < 1:
            raise ValueError(f"n={self.n}: samples per prompt must be >= 1")
        if any(not s for s in self.stop_strings):
            raise ValueError("stop_strings: the empty string would stop every row at once")
        # Lists from JSON or a config become tuples, so the settings stay hashable.
        object.__setattr__(self, "eos_ids", tuple(int(i) for i in self.eos_ids))
        object.__setattr__(self, "stop_strings", tuple(self.stop_strings))

    def replace(self, **changes: Any) -> SamplingSettings:
        return dataclasses.replace(self, **changes)


def _ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def settings_from_model_dir(model_dir: str | Path, **overrides: Any) -> SamplingSettings:
    """Settings from `generation_config.json` and the tokenizer's special tokens, then overrides.

    Read from the checkpoint: `do_sample` (False -> greedy), `temperature`, `top_p`, `top_k`,
    `max_new_tokens`, `eos_token_id` (int or list) and `pad_token_id`; the tokenizer's
    `eos_token` joins the EOS ids and its `pad_token` is the fallback pad. Any field of
    `SamplingSettings` may be overridden by keyword.
    """
    from azr_jax.model.hf_io import load_tokenizer, resolve_model_dir

    fields = {f.name for f in dataclasses.fields(SamplingSettings)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown sampling setting(s) {unknown}; known: {sorted(fields)}")
    model_dir = resolve_model_dir(str(model_dir))
    gen_path = model_dir / "generation_config.json"
    gen = json.loads(gen_path.read_text()) if gen_path.exists() else {}
    tokenizer = load_tokenizer(model_dir)
    found: dict[str, Any] = {}
    if "do_sample" in gen:
        found["greedy"] = not gen["do_sample"]
    for key in ("temperature", "top_p", "top_k", "max_new_tokens"):
        if gen.get(key) is not None:
            found[key] = gen[key]
    eos = list(_ids(gen.get("eos_token_id")))
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    found["eos_ids"] = tuple(eos)
    pad = gen.get("pad_token_id")
    if pad is None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos or [0])[0]
    found["pad_id"] = int(pad)
    return SamplingSettings(**{**found, **overrides})
