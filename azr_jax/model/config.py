"""The model's hyperparameters: one frozen dataclass, built from a Hugging Face `config.json`.

Each supported family is a small dict of architectural switches below; there is no class
hierarchy. `ModelConfig.from_hf(AutoConfig.from_pretrained(dir))` is the only constructor that
reads Hugging Face objects.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

# Architectural switches of each supported `model_type`.
FAMILIES: dict[str, dict[str, Any]] = {
    "qwen2": dict(
        norm="rms", act="silu", gated_mlp=True, positions="rope", qkv_bias=True, qk_norm=False
    ),
    "qwen3": dict(
        norm="rms", act="silu", gated_mlp=True, positions="rope", qkv_bias=False, qk_norm=True
    ),
    "llama": dict(
        norm="rms", act="silu", gated_mlp=True, positions="rope", qkv_bias=False, qk_norm=False
    ),
    "gpt2": dict(
        norm="layer",
        act="gelu_new",
        gated_mlp=False,
        positions="learned",
        qkv_bias=True,
        qk_norm=False,
    ),
}
SUPPORTED_DTYPES = ("float32", "bfloat16", "float16")
# How full-sequence attention (training, scoring, prefill without a cache) is computed:
#   einsum: our own einsum + float32 softmax over the [T, S] scores (everywhere; the default);
#   xla:    jax.nn.dot_product_attention, XLA implementation (any backend; same numbers);
#   cudnn:  jax.nn.dot_product_attention on cuDNN's fused flash attention (CUDA GPUs only,
#           bfloat16/float16 compute): the [T, S] scores never reach memory.
#   splash: JAX's Pallas TPU splash-attention kernel (model/splash.py): flash attention on TPU,
#           the same kernel in interpret mode (slow, exact) elsewhere.
#   auto:   splash on TPU, cudnn on GPU in bfloat16/float16, einsum otherwise (`resolve_attention`).
# Decoding with a KV cache always uses the einsum path.
ATTENTION_IMPLS = ("einsum", "xla", "cudnn", "splash")
ATTENTION_CHOICES = (*ATTENTION_IMPLS, "auto")


def resolve_attention(attention: str, backend: str, dtype: str) -> str:
    """The implementation `attention` means on `backend` (cpu | gpu | tpu) at compute `dtype`:
    `auto` picks splash on TPU, cudnn on GPU in bfloat16/float16 and einsum otherwise; any other
    name is returned as is. The one place where `auto` is decided."""
    if attention not in ATTENTION_CHOICES:
        raise ValueError(f"attention {attention!r} is not one of {ATTENTION_CHOICES}")
    if attention != "auto":
        return attention
    if backend == "tpu":
        return "splash"
    if backend in ("gpu", "cuda") and dtype in ("bfloat16", "float16"):
        return "cudnn"
    return "einsum"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of a decoder-only causal LM (all families share one shape legend).

    Legend used across the model: B batch, T query length, S key/cache length, D hidden size,
    N query heads, K key/value heads, G = N // K, H head dim, F MLP width, V vocabulary.
    """

    family: str  # a key of FAMILIES
    vocab_size: int  # V: rows of the embedding (may exceed the tokenizer's length)
    hidden_size: int  # D
    num_layers: int
    num_heads: int  # N
    num_kv_heads: int  # K
    head_dim: int  # H
    intermediate_size: int  # F
    norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    rope_theta: float = 10000.0
    rope_scaling: tuple[tuple[str, Any], ...] = ()  # sorted (key, value) pairs of rope_parameters
    attention_bias: bool = False  # bias on q/k/v projections
    o_bias: bool = False
    mlp_bias: bool = False
    param_dtype: str = "float32"  # storage dtype of the weights
    dtype: str = "float32"  # compute dtype of activations
    attention: str = "einsum"  # one of ATTENTION_IMPLS (a run-time choice, not a weight shape)
    splash_interpret: bool | None = None  # splash: interpret mode (None: iff the backend is no TPU)
    # MLP positions per chunk in full-sequence calls (0: all at once): long update rows and
    # prefills keep a [B, mlp_chunk, F] working set instead of [B, T, F] (a run-time choice).
    mlp_chunk: int = 0
    # Under remat (training), keep each block's saved input in pinned host memory instead of HBM
    # (TPU/GPU; moved back for the backward pass): the [B, T, D] per layer that remat keeps.
    remat_offload: bool = False

    @property
    def switches(self) -> dict[str, Any]:
        return FAMILIES[self.family]

    @property
    def num_params(self) -> int:
        d, f, v = self.hidden_size, self.intermediate_size, self.vocab_size
        n, k, h = self.num_heads, self.num_kv_heads, self.head_dim
        sw = self.switches
        attn = d * (n + 2 * k) * h + n * h * d
        if self.attention_bias:
            attn += (n + 2 * k) * h
        if self.o_bias:
            attn += d
        mlp = (3 if sw["gated_mlp"] else 2) * d * f
        if self.mlp_bias:
            mlp += (2 * f if sw["gated_mlp"] else f) + d
        norms = 2 * d * (2 if sw["norm"] == "layer" else 1)
        qk = 2 * h if sw["qk_norm"] else 0
        per_layer = attn + mlp + norms + qk
        total = self.num_layers * per_layer + v * d + d * (2 if sw["norm"] == "layer" else 1)
        if not self.tie_word_embeddings:
            total += v * d
        if sw["positions"] == "learned":
            total += self.max_position_embeddings * d
        return total

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def rope_inv_freq(self) -> np.ndarray:
        """Inverse frequencies of the rotary embedding, [H // 2], after any rope scaling."""
        h = self.head_dim
        inv_freq = 1.0 / (self.rope_theta ** (np.arange(0, h, 2, dtype=np.float64) / h))
        scaling = dict(self.rope_scaling)
        kind = scaling.get("rope_type", "default")
        if kind == "default":
            return inv_freq.astype(np.float32)
        if kind == "linear":
            return (inv_freq / scaling["factor"]).astype(np.float32)
        if kind == "llama3":
            factor = scaling["factor"]
            low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
            old_len = scaling["original_max_position_embeddings"]
            low_wavelen, high_wavelen = old_len / low, old_len / high
            wavelen = 2 * math.pi / inv_freq
            scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
            smooth = (old_len / wavelen - low) / (high - low)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
            return np.where(medium, smoothed, scaled).astype(np.float32)
        raise ValueError(
            f"rope type {kind!r} is not supported (supported: default, linear, llama3); "
            "use a checkpoint without that rope_scaling or add it to ModelConfig.rope_inv_freq"
        )

    @classmethod
    def from_hf(
        cls,
        hf: Any,
        *,
        param_dtype: str = "float32",
        dtype: str = "float32",
        attention: str = "einsum",
    ) -> ModelConfig:
        """Builds the config from a `transformers` PretrainedConfig (from AutoConfig)."""
        family = getattr(hf, "model_type", None)
        if family not in FAMILIES:
            raise ValueError(
                f"model_type {family!r} is not supported; supported model types: "
                f"{', '.join(sorted(FAMILIES))}"
            )
        for name in (param_dtype, dtype):
            if name not in SUPPORTED_DTYPES:
                raise ValueError(f"dtype {name!r} is not one of {SUPPORTED_DTYPES}")
        if attention == "auto":  # resolved for this process's backend
            import jax

            attention = resolve_attention(attention, jax.default_backend(), dtype)
        if attention not in ATTENTION_IMPLS:
            raise ValueError(f"attention {attention!r} is not one of {ATTENTION_CHOICES}")
        if family == "gpt2":
            if getattr(hf, "scale_attn_by_inverse_layer_idx", False) or getattr(
                hf, "reorder_and_upcast_attn", False
            ):
                raise ValueError(
                    "gpt2 options scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn "
                    "are not supported; set them to false in config.json"
                )
            if hf.activation_function != "gelu_new":
                raise ValueError(
                    f"gpt2 activation {hf.activation_function!r} is not supported (gelu_new)"
                )
            d = hf.n_embd
            return cls(
                family=family,
                vocab_size=hf.vocab_size,
                hidden_size=d,
                num_layers=hf.n_layer,
                num_heads=hf.n_head,
                num_kv_heads=hf.n_head,
                head_dim=d // hf.n_head,
                intermediate_size=hf.n_inner or 4 * d,
                norm_eps=hf.layer_norm_epsilon,
                max_position_embeddings=hf.n_positions,
                tie_word_embeddings=True,
                attention_bias=True,
                o_bias=True,
                mlp_bias=True,
                param_dtype=param_dtype,
                dtype=dtype,
                attention=attention,
            )
        if getattr(hf, "use_sliding_window", False):
            raise ValueError(
                f"{family}: use_sliding_window=true is not supported; set it to false in config.json"
            )
        rope = dict(getattr(hf, "rope_parameters", None) or getattr(hf, "rope_scaling", None) or {})
        theta = float(rope.pop("rope_theta", getattr(hf, "rope_theta", 10000.0)))
        rope.setdefault("rope_type", rope.pop("type", "default"))
        head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
        # Qwen2: bias on q/k/v only. Llama and Qwen3: `attention_bias` adds one on q/k/v/o.
        extra_bias = bool(getattr(hf, "attention_bias", False)) and family != "qwen2"
        cfg = cls(
            family=family,
            vocab_size=hf.vocab_size,
            hidden_size=hf.hidden_size,
            num_layers=hf.num_hidden_layers,
            num_heads=hf.num_attention_heads,
            num_kv_heads=getattr(hf, "num_key_value_heads", None) or hf.num_attention_heads,
            head_dim=head_dim,
            intermediate_size=hf.intermediate_size,
            norm_eps=hf.rms_norm_eps,
            max_position_embeddings=hf.max_position_embeddings,
            tie_word_embeddings=bool(getattr(hf, "tie_word_embeddings", False)),
            rope_theta=theta,
            rope_scaling=tuple(sorted(rope.items())),
            attention_bias=FAMILIES[family]["qkv_bias"] or extra_bias,
            o_bias=extra_bias,
            mlp_bias=bool(getattr(hf, "mlp_bias", False)),
            param_dtype=param_dtype,
            dtype=dtype,
            attention=attention,
        )
        if cfg.num_heads % cfg.num_kv_heads:
            raise ValueError(
                f"num_attention_heads={cfg.num_heads} is not a multiple of "
                f"num_key_value_heads={cfg.num_kv_heads}"
            )
        cfg.rope_inv_freq()  # fail early on an unsupported rope type
        return cfg
