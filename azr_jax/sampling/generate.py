"""Text in, text out: the host-side wrapper around the compiled sampler (what the trainer calls).

`Generator.generate(params, texts, rng, settings)` tokenizes the prompts, left-pads them into a
length bucket and the batch into a batch bucket (so the number of compiled shapes stays small;
padding rows are inactive and cost no decode steps once real rows are done), samples, and
decodes each completion to text with the EOS token dropped and the text cut right after the
stop string. Token ids and log-probs come back too, for the policy-gradient loss.

With an `engine` (engine.py, the default of the trainer and of evaluation), all rows of a call
go through the slot engine's one queue instead: no batch bucket, no decoding behind the longest
row. Row r (sample j of prompt b, r = b * n + j) has the key fold_in(rng, r) either way, so the
two paths give a row the same tokens (tests/sampling/test_engine.py).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from azr_jax.parallel import distributed
from azr_jax.parallel import sharding as shd
from azr_jax.sampling import stop_strings as stops
from azr_jax.sampling.engine import Engine, Request
from azr_jax.sampling.sampler import Sampler, row_keys
from azr_jax.sampling.settings import SamplingSettings


@dataclasses.dataclass(frozen=True)
class Generations:
    """Host-side results for B prompts and n samples each (R = B * n rows, prompt-major)."""

    prompt_tokens: np.ndarray  # [B, P] int32 left-padded prompt ids (P: the length bucket)
    prompt_lengths: np.ndarray  # [B] int32 real prompt tokens per row
    tokens: np.ndarray  # [R, N] int32 generated ids (settings.pad_id after the row stopped)
    logprobs: np.ndarray  # [R, N] float32 log-probs of the generated ids (0 after the stop)
    lengths: np.ndarray  # [R] int32 generated tokens per row, EOS / stop token included
    texts: list[str]  # R completions: EOS dropped, cut right after the first stop string


def length_buckets(max_len: int, smallest: int = 16) -> tuple[int, ...]:
    """Powers of two from `smallest` up to (and including one >=) `max_len`."""
    out = [smallest]
    while out[-1] < max_len:
        out.append(out[-1] * 2)
    return tuple(out)


class Generator:
    """Tokenize -> bucket -> sample -> detokenize, around a `Sampler` and its tokenizer.

    Args:
      sampler: the compiled sampler (it holds the model config and mesh).
      tokenizer: the checkpoint's Hugging Face tokenizer.
      prompt_buckets: allowed padded prompt lengths (default: powers of two from 16).
      add_special_tokens: let the tokenizer add BOS etc. (off: prompts come fully formatted).
      engine: when given, `generate` runs every row through this slot engine (one queue).
    """

    def __init__(
        self,
        sampler: Sampler,
        tokenizer,
        prompt_buckets: tuple[int, ...] | None = None,
        add_special_tokens: bool = False,
        engine: Engine | None = None,
    ):
        self.sampler, self.tokenizer, self.engine = sampler, tokenizer, engine
        self.prompt_buckets = tuple(
            sorted(prompt_buckets or length_buckets(sampler.max_cache_length))
        )
        self.add_special_tokens = add_special_tokens
        self._stop_tables: dict[tuple[str, ...], np.ndarray] = {}

    def stop_table(self, stop_strings: tuple[str, ...]) -> np.ndarray | None:
        """The [Q, V] stop-string table (built once per set of stop strings)."""
        if not stop_strings:
            return None
        if stop_strings not in self._stop_tables:
            self._stop_tables[stop_strings] = stops.stop_table(
                self.tokenizer, stop_strings, self.sampler.cfg.vocab_size
            )
        return self._stop_tables[stop_strings]

    def batch_bucket(self, batch: int) -> int:
        """The next power of two >= batch, rounded up to a multiple of the mesh's data x fsdp."""
        size = 1 << max(batch - 1, 0).bit_length()
        mesh = self.sampler.mesh
        if mesh is not None:
            rows = shd.batch_shards(mesh)
            size = -(-size // rows) * rows
        return size

    def encode(self, texts: list[str], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Left-padded [B', P] ids and [B'] lengths, B' and P bucketed (extra rows: length 0)."""
        ids = [
            self.tokenizer(t, add_special_tokens=self.add_special_tokens)["input_ids"]
            for t in texts
        ]
        longest = max(len(x) for x in ids)
        fits = [b for b in self.prompt_buckets if b >= longest]
        if not fits:
            raise ValueError(
                f"a prompt has {longest} tokens, more than the largest prompt bucket "
                f"{self.prompt_buckets[-1]}; shorten it or add a larger bucket"
            )
        p, b = fits[0], self.batch_bucket(len(ids))
        tokens = np.full((b, p), pad_id, np.int32)
        lengths = np.zeros((b,), np.int32)
        for row, x in enumerate(ids):
            if not x:
                raise ValueError(f"prompt {row} is empty after tokenization")
            tokens[row, p - len(x) :] = x
            lengths[row] = len(x)
        return tokens, lengths

    def generate(
        self, params: dict, texts: list[str], rng: jax.Array, settings: SamplingSettings
    ) -> Generations:
        """Samples `settings.n` completions for each of `texts` (row b * n + j: prompt b)."""
        if not texts:
            raise ValueError("generate: no prompts")
        if self.engine is not None:
            return self._generate_engine(params, list(texts), rng, settings)
        tokens, lengths = self.encode(list(texts), settings.pad_id)
        out = self.sampler(
            params, tokens, lengths, rng, settings, self.stop_table(settings.stop_strings)
        )
        out = distributed.fetch(out)  # every host gets every row (multi-host safe)
        r = len(texts) * settings.n
        gen_tokens = np.asarray(out.tokens[:r])
        gen_lengths = np.asarray(out.lengths[:r])
        return Generations(
            prompt_tokens=tokens[: len(texts)],
            prompt_lengths=lengths[: len(texts)],
            tokens=gen_tokens,
            logprobs=np.asarray(out.logprobs[:r]),
            lengths=gen_lengths,
            texts=[
                self.detokenize(t[:n], settings)
                for t, n in zip(gen_tokens, gen_lengths, strict=True)
            ],
        )

    def requests(self, texts: list[str], rng: jax.Array, n: int, tags=None) -> list[Request]:
        """Engine requests for n samples of each text: row r = b * n + j has key fold_in(rng, r)."""
        tokens, lengths = self.encode(texts, 0)
        keys = np.asarray(_row_key_data(_typed(rng), len(texts) * n))
        out = []
        for b in range(len(texts)):
            prompt = tokens[b, tokens.shape[1] - lengths[b] :]
            for j in range(n):
                r = b * n + j
                out.append(Request(prompt, keys[r], r if tags is None else tags[r]))
        return out

    def _generate_engine(self, params, texts, rng, settings) -> Generations:
        tokens, lengths = self.encode(texts, settings.pad_id)
        done = self.engine.run(
            params,
            self.requests(texts, rng, settings.n),
            settings,
            self.stop_table(settings.stop_strings),
        )
        r, new = len(texts) * settings.n, settings.max_new_tokens
        gen_tokens = np.full((r, new), settings.pad_id, np.int32)
        gen_logprobs = np.zeros((r, new), np.float32)
        gen_lengths = np.zeros((r,), np.int32)
        for i, c in enumerate(done):
            gen_tokens[i, : len(c.tokens)] = c.tokens
            gen_logprobs[i, : len(c.tokens)] = c.logprobs
            gen_lengths[i] = len(c.tokens)
        return Generations(
            prompt_tokens=tokens[: len(texts)],
            prompt_lengths=lengths[: len(texts)],
            tokens=gen_tokens,
            logprobs=gen_logprobs,
            lengths=gen_lengths,
            texts=[self.detokenize(c.tokens, settings) for c in done],
        )

    def detokenize(self, ids: np.ndarray, settings: SamplingSettings) -> str:
        """One completion's text: a final EOS dropped, cut right after the first stop string."""
        ids = [int(i) for i in ids]
        if ids and ids[-1] in settings.eos_ids:
            ids = ids[:-1]
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        return stops.cut_at_stop(text, settings.stop_strings)


@functools.partial(jax.jit, static_argnums=1)
def _row_key_data(rng: jax.Array, rows: int) -> jax.Array:
    """[rows, 2] uint32 data of `row_keys(rng, rows)`, in one device call (the same keys as
    eager ops would give; eagerly, the fold-ins cost ~1 ms a request on the host)."""
    return jax.random.key_data(row_keys(rng, rows))


def _typed(rng: jax.Array) -> jax.Array:
    if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
        return rng
    return jax.random.wrap_key_data(rng)  # a raw uint32 key from jax.random.PRNGKey
