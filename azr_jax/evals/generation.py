"""The one place evaluation generates text: prompts in, `n` responses per prompt out.

Swapping the decode engine is a change to `generate_responses` only. Every host runs the same
calls on the same prompts (the sampler is one SPMD program over the global mesh) and gets every
response back; the hosts then grade their shares (`suite.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax

from azr_jax.sampling.generate import Generator
from azr_jax.sampling.settings import SamplingSettings


def generate_responses(
    generator: Generator,
    params,
    settings: SamplingSettings,
    prompts: Sequence[str],
    batch_size: int,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[list[str]]:
    """`settings.n` responses for each prompt, in order (greedy when `settings.greedy`).

    Args:
      batch_size: rows per sampler call (prompts per call = batch_size // n, at least 1).
      seed: the sampling key (each call folds in its first prompt's index).
      progress: called with the number of prompts done after each call.
    """
    per_call = max(1, batch_size // settings.n)
    out: list[list[str]] = []
    for start in range(0, len(prompts), per_call):
        batch = list(prompts[start : start + per_call])
        rng = jax.random.fold_in(jax.random.key(seed), start)
        texts = generator.generate(params, batch, rng, settings).texts
        out += [texts[i * settings.n : (i + 1) * settings.n] for i in range(len(batch))]
        if progress is not None:
            progress(len(batch))
    return out
