"""Hugging Face checkpoints in and out: strict, streaming, no torch.

`load_hf(model_dir, mesh)` reads `config.json` and `*.safetensors` (single or sharded with an
index) one tensor at a time, converts it with the declarative table `hf_layout(cfg)`, and places
it straight onto its target sharding. Every checkpoint tensor must be consumed, every parameter
filled, every shape must match. `save_hf(params, cfg, out_dir, source_dir)` writes the reverse.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import ml_dtypes
import numpy as np

from azr_jax.model import transformer as model_lib
from azr_jax.model.config import ModelConfig
from azr_jax.parallel import sharding as shd
from azr_jax.storage import paths, staging

ST_DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "F64": np.float64,
    "I64": np.int64,
    "I32": np.int32,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
ST_NAMES = {np.dtype(v): k for k, v in ST_DTYPES.items()}
# Non-parameter buffers some checkpoints carry; they are recognised and skipped.
IGNORED = re.compile(r"(\.attn\.bias|\.attn\.masked_bias|\.rotary_emb\.inv_freq)$")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "generation_config.json",
    "chat_template.jinja",
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked; the message names the tensor/file and the fix."""


# ----------------------------------------------------------------------------- the layout table
# A conversion kind maps an HF tensor to one or more parameters and back.
#   copy:      same layout
#   T:         torch Linear [out, in] -> kernel [in, out]
#   in_heads:  [n*H, D] -> [D, n, H]        out_heads:  [D, n*H] -> [n, H, D]
#   bias_heads: [n*H] -> [n, H]             conv_out_heads (GPT-2 Conv1D): [n*H, D] -> [n, H, D]
#   conv_qkv:  GPT-2 c_attn [D, 3D] -> q, k, v [D, N, H]    conv_qkv_bias: [3D] -> 3 x [N, H]


@dataclass(frozen=True)
class Entry:
    hf_name: str
    hf_shape: tuple[int, ...]
    kind: str
    paths: tuple[tuple, ...]  # parameter paths in the params dict


def _to_params(kind: str, x: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    if kind == "copy":
        return [x]
    if kind == "T":
        return [x.T]
    if kind in ("in_heads",):
        return [x.T.reshape(shapes[0])]
    if kind == "out_heads":
        return [x.T.reshape(shapes[0])]
    if kind in ("bias_heads", "conv_out_heads"):
        return [x.reshape(shapes[0])]
    if kind == "conv_qkv":
        return [p.reshape(s) for p, s in zip(np.split(x, 3, axis=1), shapes, strict=True)]
    if kind == "conv_qkv_bias":
        return [p.reshape(s) for p, s in zip(np.split(x, 3), shapes, strict=True)]
    raise AssertionError(kind)


def _to_hf(kind: str, xs: list[np.ndarray], hf_shape: tuple[int, ...]) -> np.ndarray:
    if kind == "copy":
        return xs[0]
    if kind == "T":
        return xs[0].T
    if kind in ("in_heads", "out_heads"):
        return xs[0].reshape(hf_shape[::-1]).T
    if kind in ("bias_heads", "conv_out_heads"):
        return xs[0].reshape(hf_shape)
    if kind == "conv_qkv":
        return np.concatenate([x.reshape(x.shape[0], -1) for x in xs], axis=1)
    if kind == "conv_qkv_bias":
        return np.concatenate([x.reshape(-1) for x in xs])
    raise AssertionError(kind)


def hf_layout(cfg: ModelConfig) -> list[Entry]:
    """Every HF tensor of a checkpoint of this config, with its parameter path(s)."""
    d, f, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    n, k, h = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    out: list[Entry] = []

    def add(name, shape, kind, *paths):
        out.append(Entry(name, tuple(shape), kind, tuple(paths)))

    if cfg.family == "gpt2":
        add("wte.weight", (v, d), "copy", ("embed",))
        add("wpe.weight", (cfg.max_position_embeddings, d), "copy", ("pos_embed",))
        for i in range(cfg.num_layers):
            p, L = f"h.{i}.", ("layers", i)
            for hf_norm, ours in (("ln_1", "attn_norm"), ("ln_2", "mlp_norm")):
                add(p + hf_norm + ".weight", (d,), "copy", L + (ours, "scale"))
                add(p + hf_norm + ".bias", (d,), "copy", L + (ours, "bias"))
            qkv = [L + ("attn", x) for x in ("q", "k", "v")]
            add(p + "attn.c_attn.weight", (d, 3 * d), "conv_qkv", *[q + ("kernel",) for q in qkv])
            add(p + "attn.c_attn.bias", (3 * d,), "conv_qkv_bias", *[q + ("bias",) for q in qkv])
            add(p + "attn.c_proj.weight", (d, d), "conv_out_heads", L + ("attn", "o", "kernel"))
            add(p + "attn.c_proj.bias", (d,), "copy", L + ("attn", "o", "bias"))
            add(p + "mlp.c_fc.weight", (d, f), "copy", L + ("mlp", "up", "kernel"))
            add(p + "mlp.c_fc.bias", (f,), "copy", L + ("mlp", "up", "bias"))
            add(p + "mlp.c_proj.weight", (f, d), "copy", L + ("mlp", "down", "kernel"))
            add(p + "mlp.c_proj.bias", (d,), "copy", L + ("mlp", "down", "bias"))
        add("ln_f.weight", (d,), "copy", ("final_norm", "scale"))
        add("ln_f.bias", (d,), "copy", ("final_norm", "bias"))
        return out

    add("model.embed_tokens.weight", (v, d), "copy", ("embed",))
    for i in range(cfg.num_layers):
        p, L = f"model.layers.{i}.", ("layers", i)
        add(p + "input_layernorm.weight", (d,), "copy", L + ("attn_norm", "scale"))
        add(p + "post_attention_layernorm.weight", (d,), "copy", L + ("mlp_norm", "scale"))
        for proj, heads in (("q", n), ("k", k), ("v", k)):
            add(
                p + f"self_attn.{proj}_proj.weight",
                (heads * h, d),
                "in_heads",
                L + ("attn", proj, "kernel"),
            )
            if cfg.attention_bias:
                add(
                    p + f"self_attn.{proj}_proj.bias",
                    (heads * h,),
                    "bias_heads",
                    L + ("attn", proj, "bias"),
                )
        add(p + "self_attn.o_proj.weight", (d, n * h), "out_heads", L + ("attn", "o", "kernel"))
        if cfg.o_bias:
            add(p + "self_attn.o_proj.bias", (d,), "copy", L + ("attn", "o", "bias"))
        if cfg.switches["qk_norm"]:
            add(p + "self_attn.q_norm.weight", (h,), "copy", L + ("attn", "q_norm", "scale"))
            add(p + "self_attn.k_norm.weight", (h,), "copy", L + ("attn", "k_norm", "scale"))
        for proj, shape in (("gate", (f, d)), ("up", (f, d)), ("down", (d, f))):
            add(p + f"mlp.{proj}_proj.weight", shape, "T", L + ("mlp", proj, "kernel"))
            if cfg.mlp_bias:
                add(p + f"mlp.{proj}_proj.bias", (shape[0],), "copy", L + ("mlp", proj, "bias"))
    add("model.norm.weight", (d,), "copy", ("final_norm", "scale"))
    if not cfg.tie_word_embeddings:
        add("lm_head.weight", (v, d), "T", ("lm_head",))
    return out


def _normalise_name(name: str, cfg: ModelConfig) -> str:
    if cfg.family == "gpt2" and name.startswith("transformer."):
        return name[len("transformer.") :]
    return name


# ----------------------------------------------------------------------------- safetensors
def _read_header(path: Path) -> tuple[dict, int]:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path}: corrupt safetensors file (shorter than its header)")
        n = struct.unpack("<Q", raw)[0]
        if n > min(size - 8, 100 << 20):
            raise CheckpointError(
                f"{path}: corrupt safetensors file (header length {n} is impossible)"
            )
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(
                f"{path}: corrupt safetensors file (header is not JSON: {e})"
            ) from e
    header.pop("__metadata__", None)
    for name, info in header.items():
        start, end = info["data_offsets"]
        if info["dtype"] not in ST_DTYPES:
            raise CheckpointError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        want = int(np.prod(info["shape"])) * np.dtype(ST_DTYPES[info["dtype"]]).itemsize
        if end - start != want or 8 + n + end > size:
            raise CheckpointError(
                f"{path}: tensor {name} is corrupt or truncated (needs bytes {start}..{end} of a "
                f"{size - 8 - n}-byte data section); re-download or re-export the checkpoint"
            )
    return header, 8 + n


def iter_safetensors(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Yields (name, array) one tensor at a time; each array owns its memory (read, not mapped)."""
    header, base = _read_header(path)
    with open(path, "rb") as fh:
        for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            start, _ = info["data_offsets"]
            arr = np.empty(info["shape"], ST_DTYPES[info["dtype"]])
            fh.seek(base + start)
            if fh.readinto(memoryview(arr.reshape(-1).view(np.uint8))) != arr.nbytes:
                raise CheckpointError(f"{path}: tensor {name} is truncated")
            yield name, arr


def write_safetensors(path: Path, tensors: Mapping[str, tuple[tuple, Any]], fetch) -> None:
    """Writes tensors given as {name: (shape, dtype)}; `fetch(name)` returns each array in turn,
    so only one tensor is on the host at a time."""
    header, offset = {}, 0
    for name, (shape, dtype) in tensors.items():
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        header[name] = {
            "dtype": ST_NAMES[np.dtype(dtype)],
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for name, (shape, dtype) in tensors.items():
            arr = np.ascontiguousarray(fetch(name), dtype=dtype)
            if arr.shape != tuple(shape):
                raise AssertionError(f"{name}: {arr.shape} != {shape}")
            fh.write(arr.tobytes())
    os.replace(tmp, path)


def _checkpoint_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted({model_dir / f for f in weight_map.values()})
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise CheckpointError(f"{index} names shard files that are missing: {missing}")
        return files
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise CheckpointError(
            f"{model_dir}: no *.safetensors files (and no model.safetensors.index.json). "
            "Convert the checkpoint to safetensors (transformers' save_pretrained does this)."
        )
    return files


# ----------------------------------------------------------------------------- resolving a model
def is_hub_name(name: str) -> bool:
    """'org/model' that is not a local path: a Hugging Face hub name."""
    return (
        name.count("/") == 1
        and not name.startswith((".", "/", "~"))
        and not Path(name).expanduser().exists()
    )


def resolve_model_dir(name_or_path: str) -> Path:
    """A local directory, a `gs://` URL of one (staged once per host, storage/staging.py), or a
    hub name fetched (config, safetensors, tokenizer) when online (the hub's own cache and file
    locks make that once per host too)."""
    if paths.is_url(name_or_path):
        try:
            path = staging.stage(name_or_path)
        except FileNotFoundError as e:
            raise CheckpointError(str(e)) from e
        if not (path / "config.json").exists():
            raise CheckpointError(
                f"{name_or_path}: no config.json there; this is not a Hugging Face model directory"
            )
        return path
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise CheckpointError(
                f"{path}: no config.json; this is not a Hugging Face model directory"
            )
        return path
    if not is_hub_name(name_or_path):
        raise CheckpointError(
            f"model {name_or_path!r}: no such local directory (and not a hub name like 'org/model')"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                name_or_path,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"],
            )
        )
    except Exception as e:  # noqa: BLE001 - any hub failure gets the same advice
        raise CheckpointError(
            f"could not fetch {name_or_path!r} from the Hugging Face hub ({type(e).__name__}: {e}). "
            "Offline: download it elsewhere (huggingface-cli download "
            f"{name_or_path} --local-dir DIR), copy DIR here (config.json, *.safetensors, tokenizer "
            "files) and pass DIR as the model name."
        ) from e


def load_config(
    model_dir: str | Path,
    *,
    param_dtype: str = "float32",
    dtype: str = "float32",
    attention: str = "einsum",
) -> ModelConfig:
    from transformers import AutoConfig

    from azr_jax.model.config import FAMILIES

    model_dir = resolve_model_dir(str(model_dir))
    try:
        model_type = json.loads((model_dir / "config.json").read_text()).get("model_type")
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{model_dir}/config.json is not valid JSON: {e}") from e
    if model_type not in FAMILIES:
        raise CheckpointError(
            f"{model_dir}/config.json: model_type {model_type!r} is not supported; supported "
            f"model types: {', '.join(sorted(FAMILIES))}"
        )
    try:
        hf = AutoConfig.from_pretrained(model_dir)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{model_dir}/config.json: {e}") from e
    return ModelConfig.from_hf(hf, param_dtype=param_dtype, dtype=dtype, attention=attention)


def load_tokenizer(model_dir: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_dir(str(model_dir)))


# ----------------------------------------------------------------------------- load / save
def load_params(
    model_dir: str | Path,
    cfg: ModelConfig,
    mesh: jax.sharding.Mesh | None = None,
    rules: Mapping[str, Any] = shd.TRAIN_RULES,
) -> dict:
    """Parameters from safetensors, each placed on its sharding as it is read."""
    model_dir = resolve_model_dir(str(model_dir))
    abstract = model_lib.abstract_params(cfg)
    axes = model_lib.param_axes(cfg)
    by_name = {e.hf_name: e for e in hf_layout(cfg)}
    filled: dict[tuple, jax.Array] = {}
    seen: set[str] = set()
    for file in _checkpoint_files(model_dir):
        for raw_name, tensor in iter_safetensors(file):
            name = _normalise_name(raw_name, cfg)
            if IGNORED.search(name):
                continue
            if name not in by_name:
                if cfg.tie_word_embeddings and name == "lm_head.weight":
                    seen.add(name)  # tied: the head is the embedding
                    continue
                raise CheckpointError(
                    f"{file.name}: tensor {raw_name} is not a parameter of a {cfg.family} model with "
                    "this config.json (wrong config, or an unsupported variant)"
                )
            if name in seen:
                raise CheckpointError(
                    f"{file.name}: tensor {raw_name} appears twice in the checkpoint"
                )
            entry = by_name[name]
            if tuple(tensor.shape) != entry.hf_shape:
                raise CheckpointError(
                    f"{file.name}: tensor {raw_name} has shape {tuple(tensor.shape)} but config.json "
                    f"implies {entry.hf_shape}; the checkpoint and its config.json disagree"
                )
            shapes = [_get(abstract, p).shape for p in entry.paths]
            for path, value in zip(
                entry.paths, _to_params(entry.kind, tensor, shapes), strict=True
            ):
                target = _get(abstract, path)
                value = np.ascontiguousarray(value, dtype=target.dtype)
                filled[path] = _place(
                    value,
                    None
                    if mesh is None
                    else shd.named_sharding(
                        mesh, _get(axes, path), value.shape, rules, "/".join(map(str, path))
                    ),
                )
            seen.add(name)
            del tensor
    missing = [e.hf_name for e in by_name.values() if e.hf_name not in seen]
    if missing:
        raise CheckpointError(
            f"{model_dir}: checkpoint is missing {len(missing)} tensor(s), first: {missing[:3]}; "
            "the files are incomplete or belong to another config"
        )
    return model_lib._unflatten(filled)


def _get(tree: Mapping, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _place(value: np.ndarray, sharding: jax.sharding.Sharding | None) -> jax.Array:
    if sharding is None:
        return jax.device_put(value)
    # Each device (on every host) takes only its own slice of the host array.
    return jax.make_array_from_callback(value.shape, sharding, lambda idx: value[idx])


def load_hf(
    model_dir: str | Path,
    mesh: jax.sharding.Mesh | None = None,
    *,
    param_dtype: str = "float32",
    dtype: str = "float32",
    attention: str = "einsum",
    rules: Mapping[str, Any] = shd.TRAIN_RULES,
) -> tuple[ModelConfig, dict]:
    """(config, params) of a Hugging Face checkpoint directory or hub name."""
    cfg = load_config(model_dir, param_dtype=param_dtype, dtype=dtype, attention=attention)
    return cfg, load_params(model_dir, cfg, mesh, rules)


def _host(x: jax.Array) -> np.ndarray:
    if jax.process_count() > 1 and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def save_hf(
    params: dict,
    cfg: ModelConfig,
    out_dir: str | Path,
    source_dir: str | Path | None = None,
    *,
    dtype: str | None = None,
    max_shard_bytes: int = 4 << 30,
) -> Path:
    """Writes `params` as a Hugging Face directory that transformers loads (and vLLM serves).

    config.json, generation config and tokenizer files are copied from `source_dir` (the checkpoint
    the run started from). Tensors stream to disk one at a time; on several hosts every process
    must call this (gathers are collective) and process 0 writes.
    """
    out_dir = Path(out_dir)
    dt = np.dtype(
        ml_dtypes.bfloat16
        if (dtype or cfg.param_dtype) == "bfloat16"
        else (dtype or cfg.param_dtype)
    )
    layout = hf_layout(cfg)
    writer = jax.process_index() == 0
    if writer:
        out_dir.mkdir(parents=True, exist_ok=True)
    # Group entries into shards by size.
    shards: list[list[Entry]] = [[]]
    size = 0
    for e in layout:
        nbytes = int(np.prod(e.hf_shape)) * dt.itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(e)
        size += nbytes
    names = (
        ["model.safetensors"]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    prefix = "transformer." if cfg.family == "gpt2" else ""
    weight_map = {}
    for fname, entries in zip(names, shards, strict=True):
        by_name = {prefix + e.hf_name: e for e in entries}

        def fetch(name, by_name=by_name):
            e = by_name[name]
            return _to_hf(e.kind, [_host(_get(params, p)) for p in e.paths], e.hf_shape)

        if writer:
            write_safetensors(
                out_dir / fname, {n: (e.hf_shape, dt) for n, e in by_name.items()}, fetch
            )
        else:
            for n in by_name:
                fetch(n)  # take part in the collective gathers
        weight_map.update({n: fname for n in by_name})
    if not writer:
        return out_dir
    if len(shards) > 1:
        (out_dir / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2)
        )
    if source_dir is not None:
        src = resolve_model_dir(str(source_dir))
        conf = json.loads((src / "config.json").read_text())
        conf["dtype"] = "bfloat16" if dt == np.dtype(ml_dtypes.bfloat16) else str(dt)
        conf.pop("torch_dtype", None)
        (out_dir / "config.json").write_text(json.dumps(conf, indent=2))
        for f in TOKENIZER_FILES:
            if (src / f).exists() and (src / f).resolve() != (out_dir / f).resolve():
                shutil.copy(src / f, out_dir / f)
    return out_dir
