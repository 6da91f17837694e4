"""The TPU compiler's word, before renting a slice: compile a preset's real programs for a TPU
topology ahead of time (no TPU needed, shapes only) and report per-device memory and FLOPs.

    python scripts/compile_tpu.py --config=configs/azr.py:qwen2.5-coder-7b,v5e-16
    python scripts/compile_tpu.py --config=configs/azr.py:qwen2.5-coder-14b,v5e-16
    python scripts/compile_tpu.py --config=configs/azr.py:qwen3-4b-base,v5p-8 --topology=v6e:2x2
    python scripts/compile_tpu.py --config=configs/default.py --topology=v5e:2x2 --model=tiny

It compiles, with the shardings of azr_jax/parallel/sharding.py on a mesh of the topology's
devices, the programs the trainer runs:
  train_step  `update.train_step.jit_train_step` on the whole update batch (2 x task types x
              azr.batch_size rows, split into rl.micro_batch_size micro-batches) at the longest
              row the trainer builds: prompt and response each bucketed to a power of two
              (6144 + 8096 -> 8192 + 8192);
  prefill     the rollouts' prefill: with the slot engine (engine.enabled, the trainer's and
              evaluation's default) one `insert` of engine.prefill_batch prompts at the longest
              prompt bucket into the slots' KV cache; with engine.enabled=False the static
              sampler's largest call (sampling.batch_size prompts, each repeated
              azr.n_rollouts times);
  decode      the engine's `chunk` (engine.chunk decode steps over all engine.slots slots of
              bucketed prompt + max_new_tokens cache), or the static sampler's decode loop.
The sampler decodes from whole weights per tensor shard when they fit in half a chip, else from
the fsdp shards, gathering a layer at a time (`--sampler_weights` forces either).
Per program it prints the compiler's per-device peak (arguments + outputs + temporaries -
aliased), the chip's HBM, whether it fits, and the FLOPs per device (XLA's count: a loop body
counts once), then one JSON line (last line):
  {"preset", "host", "topology", "programs": {"train_step": {"peak_gib", "hbm_gib", "fits",
   "tflops", ...}, "prefill": {...}, "decode": {...}}, "fits"}
"est_step_s" is an ESTIMATE (model FLOPs / the chip's peak bfloat16 rate), not a measurement;
for the engine it is per insert / per chunk. "host_temporaries_gib" is pinned host memory
(model.remat_offload's saved block inputs), not HBM.

libtpu (the TPU compiler) is read from `.libtpu/` in the repository (`make tpu-compiler`, a pip
`--target` directory kept out of the virtualenv so that CPU runs never see a TPU plugin) or from
an installed `libtpu` (a TPU VM). JAX runs on CPU here (JAX_PLATFORMS defaults to cpu): the TPU
devices are abstract.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBTPU_DIR = ROOT / ".libtpu"
if LIBTPU_DIR.is_dir():
    sys.path.insert(0, str(LIBTPU_DIR))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Compiling only, never running: several compiles (and a TPU VM's own job) may load libtpu at once.
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
sys.path.insert(0, str(ROOT / "scripts"))  # memory_plan: the presets' architectures

import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from azr_jax.model import transformer as model_lib  # noqa: E402
from azr_jax.model.config import ModelConfig, resolve_attention  # noqa: E402
from azr_jax.parallel import sharding as shd  # noqa: E402
from azr_jax.sampling.engine import Engine, init_state  # noqa: E402
from azr_jax.sampling.sampler import Sampler  # noqa: E402
from azr_jax.sampling.settings import SamplingSettings  # noqa: E402
from azr_jax.update.pg_loss import PGBatch  # noqa: E402
from azr_jax.update.train_step import jit_train_step  # noqa: E402

GIB = 1 << 30
PROGRAMS = ("train_step", "prefill", "decode")
# TPU generation (from the device kind) -> (HBM GiB per chip that a program may use, peak
# bfloat16 TFLOP/s per chip). The compiler counts 15.75 of a v5e chip's 16 GiB as available
# (its RESOURCE_EXHAUSTED message); the others are taken 0.25 GiB short of nominal likewise.
CHIPS = {
    "v4": (31.75, 275),
    "v5e": (15.75, 197),
    "v5p": (94.75, 459),
    "v6e": (31.75, 918),
}
STOP_STATES = 16  # rows of the stop-string table ("</answer>": a handful of automaton states)
# A tiny architecture for --model=tiny (CI): azr_jax's tiny checkpoint shape, head_dim 128 (the
# splash kernel's lane width).
TINY = dict(layers=2, hidden=256, heads=4, kv_heads=2, head_dim=128, intermediate=512, vocab=2048)

_CONFIG = config_flags.DEFINE_config_file("config", "configs/azr.py", "The run config.")
flags.DEFINE_string(
    "topology", None, "libtpu topology, e.g. v5e:2x4 (default: the host preset's, configs/azr.py)"
)
flags.DEFINE_string("model", None, "architecture: a configs/azr.py model preset or 'tiny'")
flags.DEFINE_list("programs", list(PROGRAMS), "which programs to compile")
flags.DEFINE_string(
    "summarize", None, "a folder of saved runs (stdout, *.log): print the docs table and exit"
)
flags.DEFINE_bool(
    "extrapolate",
    False,
    "compile 1- and 2-layer versions and extrapolate linearly to the model's layer count "
    "(faster; the JSON says so): exact for weights, optimizer state and KV cache, an "
    "overestimate of the train step's temporaries (only a full compile decides a train step)",
)
flags.DEFINE_integer(
    "layers",
    None,
    "compile the model with this many layers instead of its own (a what-if: how a program's "
    "memory grows per layer; the JSON's `layers` says so and `fits` is about that model)",
)
flags.DEFINE_enum(
    "sampler_weights",
    None,
    ["auto", "copy", "shards"],
    "the sampler's weights (default: the config's sampling.weights): auto (as "
    "sharding.sampling_rules decides for this chip's HBM), copy (whole weights per tensor shard, "
    "SAMPLE_RULES) or shards (fsdp-sharded, TRAIN_RULES)",
)
FLAGS = flags.FLAGS


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def preset_and_host(config_arg: str) -> tuple[str | None, str | None]:
    """('qwen2.5-coder-7b', 'v5e-8') from 'configs/azr.py:qwen2.5-coder-7b,v5e-8' (None if none)."""
    _, _, arg = config_arg.partition(":")
    if not arg or not config_arg.split(":")[0].endswith("azr.py"):
        return None, None
    model, _, host = arg.partition(",")
    return model, host or "gpu-8"


def chip_of(device) -> tuple[str, float, float]:
    """(generation, usable HBM GiB, peak bf16 TFLOP/s) of a TPU device, from its device kind."""
    kind = device.device_kind.lower()  # "TPU v4", "TPU v5 lite", "TPU v5", "TPU v6 lite"
    gen = (
        "v5e"
        if "v5 lite" in kind or "v5e" in kind
        else "v6e"
        if "v6" in kind
        else "v5p"
        if "v5" in kind
        else "v4"
        if "v4" in kind
        else None
    )
    if gen is None:
        raise ValueError(f"unknown TPU device kind {device.device_kind!r}; add it to CHIPS")
    return (gen, *CHIPS[gen])


def model_config(model: str, c) -> ModelConfig:
    """The preset's ModelConfig from its architecture (scripts/memory_plan.py's ARCHS: each
    model's config.json), the config's dtypes and TPU attention (auto -> splash, compiled)."""
    import memory_plan

    families = {"qwen2.5": "qwen2", "llama": "llama", "qwen3": "qwen3"}
    if model == "tiny":
        a, family = memory_plan.Arch(**TINY, tied=True, qkv_bias=True, qk_norm=False), "qwen2"
    else:
        if model not in memory_plan.ARCHS:
            raise ValueError(
                f"--model={model!r}: choose 'tiny' or one of {sorted(memory_plan.ARCHS)}"
            )
        a = memory_plan.ARCHS[model]
        family = next(f for prefix, f in families.items() if model.startswith(prefix))
    return ModelConfig(
        family=family,
        vocab_size=a.vocab,
        hidden_size=a.hidden,
        num_layers=a.layers,
        num_heads=a.heads,
        num_kv_heads=a.kv_heads,
        head_dim=a.head_dim,
        intermediate_size=a.intermediate,
        norm_eps=1e-6,
        max_position_embeddings=131072,
        tie_word_embeddings=a.tied,
        rope_theta=1e6,
        attention_bias=a.qkv_bias,
        param_dtype=c.model.param_dtype,
        dtype=c.model.dtype,
        attention=resolve_attention(c.model.attention, "tpu", c.model.dtype),
        splash_interpret=False,
        mlp_chunk=c.model.mlp_chunk,
        remat_offload=c.model.remat_offload,
    )


def _bucket(n: int, smallest: int = 16) -> int:
    size = smallest
    while size < n:
        size *= 2
    return size


def _struct(shape, dtype, sharding=None):
    return jax.ShapeDtypeStruct(shape, jnp.dtype(dtype), sharding=sharding)


def _measure(compile_fn) -> dict[str, Any]:
    """Bytes per device and FLOPs of one compiled program; a program the compiler rejects for
    want of HBM reports the temporaries it asked for (a lower bound) and the error."""
    start = time.perf_counter()
    try:
        compiled = compile_fn()
    except jax.errors.JaxRuntimeError as e:
        # Two wordings of libtpu's refusal: "HLO temporaries (X G) exceeds available HBM", and
        # "CompileTimeHbmOom ... Total hbm usage >= X G" (arguments included).
        found = re.search(r"HLO temporaries \(([\d.]+)G\)", str(e)) or re.search(
            r"Total hbm usage >= ([\d.]+)G", str(e)
        )
        if "RESOURCE_EXHAUSTED" not in str(e) or not found:
            raise
        temp = float(found.group(1)) * GIB
        return {
            "arguments": 0,
            "outputs": 0,
            "temporaries": temp,
            "aliased": 0,
            "host_temporaries": 0,
            "compiler_peak": 0,
            "flops": 0.0,
            "error": str(e).splitlines()[0][:300],
            "seconds": time.perf_counter() - start,
        }
    m = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {
        "arguments": m.argument_size_in_bytes,
        "outputs": m.output_size_in_bytes,
        "temporaries": m.temp_size_in_bytes,
        "aliased": m.alias_size_in_bytes,
        "host_temporaries": getattr(m, "host_temp_size_in_bytes", 0),  # remat_offload's
        "compiler_peak": getattr(m, "peak_memory_in_bytes", 0),  # its heap simulation's
        "flops": float(cost.get("flops", 0.0)),
        "seconds": time.perf_counter() - start,
    }


def _extrapolate(one: dict, two: dict, layers: int) -> dict:
    """Linear in the layer count from 1- and 2-layer compiles (weights, optimizer state, KV
    cache and remat's saved inputs grow per layer; the per-layer working set does not)."""
    out = {
        k: one[k] + (two[k] - one[k]) * (layers - 1)
        for k in (
            "arguments",
            "outputs",
            "temporaries",
            "aliased",
            "host_temporaries",
            "compiler_peak",
            "flops",
        )
    }
    out["seconds"] = one["seconds"] + two["seconds"]
    for key in (
        "f32_cache_copies",
        "quadratic_arrays",
        "gathers_outside_loop",
    ):  # per layer: the 2-layer count
        if key in two:
            out[key] = two[key]
    if "error" in one or "error" in two:
        out["error"] = one.get("error") or two.get("error")
    return out


def _report(raw: dict, hbm_gib: float, resident: float) -> dict[str, Any]:
    """The figures of one program; `resident` (bytes) is what else stays on the chip meanwhile
    (while sampling: AdamW's moments, and the trainer's weights when the sampler has a copy)."""
    peak = raw["arguments"] + raw["outputs"] + raw["temporaries"] - raw["aliased"]
    out = {
        "peak_gib": round(peak / GIB, 3),
        "resident_gib": round(resident / GIB, 3),
        "hbm_gib": hbm_gib,
        "fits": "error" not in raw and peak + resident <= hbm_gib * GIB,
        "tflops": float(f"{raw['flops'] / 1e12:.4g}"),
        "arguments_gib": round(raw["arguments"] / GIB, 3),
        "outputs_gib": round(raw["outputs"] / GIB, 3),
        "temporaries_gib": round(raw["temporaries"] / GIB, 3),
        "aliased_gib": round(raw["aliased"] / GIB, 3),
        "host_temporaries_gib": round(raw.get("host_temporaries", 0) / GIB, 3),
        # the compiler's simulated peak of live buffers: at most peak_gib (the temporaries are
        # one block); `fits` uses peak_gib, the memory the program holds while it runs
        "compiler_peak_gib": round(raw.get("compiler_peak", 0) / GIB, 3),
        "compile_s": round(raw["seconds"], 1),
    }
    for key in ("f32_cache_copies", "quadratic_arrays"):
        if key in raw:
            out[key] = raw[key]
    if "error" in raw:
        out["error"] = raw["error"]
    return out


def compile_train_step(cfg: ModelConfig, c, mesh) -> Any:
    """The jitted train step, as the trainer runs it (with the non-finite guard), lowered at the
    whole update batch's worst-case shapes: one episode per row of the padded length. Packing
    (`rl.packing`) fills the same row length with several episodes and never needs more rows, so
    this bounds the packed step too."""
    from azr_jax.run.trainer import abstract_train_state, hparams_from

    hp = hparams_from(c)
    rows = 2 * len(c.azr.task_types) * c.azr.batch_size
    p, r = _bucket(c.sampling.max_prompt_len), _bucket(c.sampling.max_new_tokens)
    length = p + r
    b1, b2 = shd.batch_sharding(mesh, 1), shd.batch_sharding(mesh, 2)
    batch = PGBatch(
        tokens=_struct((rows, length), "int32", b2),
        attn_mask=_struct((rows, length), "bool", b2),
        loss_mask=_struct((rows, length), "bool", b2),
        advantages=_struct((rows,), "float32", b1),
        old_logprobs=_struct((rows, length), "float32", b2),
        group_ids=_struct((rows,), "int32", b1),
        rewards=_struct((rows,), "float32", b1),
        response_start=p,
    )
    shd.check_batch(mesh, rows // hp.micro_batches, "micro-batch")
    step = jit_train_step(cfg, hp, mesh, guard=True)  # as trainer.py runs it
    state = abstract_train_state(cfg, hp, mesh)
    rng = jax.eval_shape(lambda: jax.random.key(0))
    rng = jax.ShapeDtypeStruct(rng.shape, rng.dtype, sharding=shd.replicated(mesh))
    with jax.set_mesh(mesh):
        return step.jitted.lower(state, batch, rng).compile()


def sampler_keeps_a_copy(cfg: ModelConfig, mesh, hbm_gib: float) -> bool:
    """sharding.sampling_rules' choice for a chip of `hbm_gib` (abstract devices report no
    memory): whole weights per tensor shard when they fit in half a chip."""
    param_bytes = cfg.num_params * jnp.dtype(cfg.param_dtype).itemsize
    return param_bytes / mesh.shape["tensor"] <= 0.5 * hbm_gib * GIB


def compile_sampler(cfg: ModelConfig, c, mesh, copy: bool) -> tuple[Any, Any]:
    """The static sampler's (prefill, decode) executables at its largest call (the difficulty
    estimation: sampling.batch_size prompts x azr.n_rollouts samples each)."""
    s = c.sampling
    longest = max(s.max_new_tokens, c.eval.max_new_tokens)
    p = _bucket(s.max_prompt_len)
    rules = shd.SAMPLE_RULES if copy else shd.TRAIN_RULES  # the full model's choice
    sampler = Sampler(cfg, mesh, rules=rules, max_cache_length=_bucket(s.max_prompt_len) + longest)
    settings = _settings(c, n=max(1, c.azr.n_rollouts))
    b = s.batch_size
    sampler.check(b, p, settings)
    params = jax.tree_util.tree_map(
        lambda a, sh: _struct(a.shape, a.dtype, sh),
        model_lib.abstract_params(cfg),
        sampler.param_shardings,
    )
    tokens = _struct((b, p), "int32", shd.batch_sharding(mesh, 2))
    lengths = _struct((b,), "int32", shd.batch_sharding(mesh, 1))
    rng = jax.eval_shape(lambda: jax.random.key(0))
    rng = jax.ShapeDtypeStruct(rng.shape, rng.dtype, sharding=shd.replicated(mesh))
    table = _struct((STOP_STATES, cfg.vocab_size), "int32", shd.replicated(mesh))
    return sampler.compile(params, tokens, lengths, rng, settings, table)


def engine_shape(c, mesh) -> tuple[int, int, int]:
    """(slots, chunk steps, prefill batch) of the trainer's slot engine (trainer.make_engine)."""
    g = c.engine
    rows = shd.batch_shards(mesh)
    slots = g.slots or c.sampling.batch_size
    return slots, g.chunk, max(1, min(g.prefill_batch or rows, slots))


def compile_engine(cfg: ModelConfig, c, mesh, copy: bool) -> tuple[Any, Any]:
    """The slot engine's (insert, chunk) executables, as the trainer runs them (engine.enabled,
    the default): an insert prefills `prefill_batch` prompts at the longest prompt bucket into
    the slots' KV cache; a chunk runs `engine.chunk` decode steps over every slot."""
    s = c.sampling
    p = _bucket(s.max_prompt_len)
    longest = max(s.max_new_tokens, c.eval.max_new_tokens)
    slots, steps, m = engine_shape(c, mesh)
    rules = shd.SAMPLE_RULES if copy else shd.TRAIN_RULES  # the full model's choice
    engine = Engine(
        cfg,
        mesh,
        slots=slots,
        chunk=steps,
        max_cache_length=p + longest,
        prefill_batch=m,
        rules=rules,
    )
    settings = _settings(c, n=1)  # one sample per request: the n rollouts are n requests
    engine.check(p, settings)
    _, ins, dec, _ = engine.programs(settings, (STOP_STATES, cfg.vocab_size))
    params = jax.tree_util.tree_map(
        lambda a, sh: _struct(a.shape, a.dtype, sh),
        model_lib.abstract_params(cfg),
        engine.param_shardings,
    )
    state = jax.tree_util.tree_map(
        lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
        jax.eval_shape(lambda: init_state(cfg, slots, engine.max_cache_length, settings)),
        engine._state_shardings(settings),
    )
    rows1, rows2 = shd.batch_sharding(mesh, 1), shd.batch_sharding(mesh, 2)
    keys = _struct((m, 2), "uint32", rows2)  # the requests' raw key data
    table = _struct((STOP_STATES, cfg.vocab_size), "int32", shd.replicated(mesh))
    scalar = _struct((), "int32", shd.replicated(mesh))  # the chunk's early-stop count
    with jax.set_mesh(mesh):
        ins_exe = ins.lower(
            params,
            state,
            _struct((m, p), "int32", rows2),
            _struct((m,), "int32", rows1),
            _struct((m,), "int32", shd.replicated(mesh)),
            keys,
        ).compile()
        dec_exe = (
            dec(engine.windows[-1]).lower(params, state, table, scalar).compile()
        )  # all S: the most
    return ins_exe, dec_exe


def _settings(c, n: int) -> SamplingSettings:
    """The rollouts' sampling settings (the paper's: temperature 1, answers stop at </answer>)."""
    s = c.sampling
    return SamplingSettings(
        max_new_tokens=s.max_new_tokens,
        temperature=s.temperature or 1.0,
        top_p=s.top_p,
        top_k=s.top_k,
        n=n,
        eos_ids=(1,),
        stop_strings=("</answer>",),
    )


def model_flops(cfg: ModelConfig, c, program: str, mesh=None) -> float:
    """Matmul FLOPs of one program (whole slice), for the step-time ESTIMATE: 2 x params per
    token forward (x3 with the backward, x4 under remat), plus causal attention."""
    n = cfg.num_params - cfg.vocab_size * cfg.hidden_size * (1 if cfg.tie_word_embeddings else 0)
    attn_per_token = 2 * 2 * cfg.num_layers * cfg.num_heads * cfg.head_dim  # x T/2 keys on average
    s = c.sampling
    if program == "train_step":
        rows = 2 * len(c.azr.task_types) * c.azr.batch_size
        t = _bucket(s.max_prompt_len) + _bucket(s.max_new_tokens)
        mult = 4 if c.model.remat else 3
        return mult * rows * t * (2 * n + attn_per_token * t / 2)
    if c.engine.enabled and mesh is not None and program in ("prefill", "decode"):
        slots, steps, m = engine_shape(c, mesh)
        t = _bucket(s.max_prompt_len)
        if program == "prefill":  # one insert
            return m * t * (2 * n + attn_per_token * t / 2)
        keys = t + s.max_new_tokens / 2  # one chunk, every slot live, halfway through
        return slots * steps * (2 * n + attn_per_token * keys)
    if program == "prefill":
        t = _bucket(s.max_prompt_len)
        return s.batch_size * t * (2 * n + attn_per_token * t / 2)
    rows = s.batch_size * max(1, c.azr.n_rollouts)
    keys = _bucket(s.max_prompt_len) + s.max_new_tokens / 2
    return rows * s.max_new_tokens * (2 * n + attn_per_token * keys)


def _state_bytes(cfg: ModelConfig, c, mesh) -> tuple[float, float]:
    """(weights, optimizer state: AdamW moments + the float32 master or compensation of
    `rl.master_weights`) bytes per device of the train state, from its shardings."""
    from azr_jax.run.trainer import abstract_train_state, hparams_from

    state = abstract_train_state(cfg, hparams_from(c), mesh)

    def per_device(tree) -> float:
        leaves = jax.tree_util.tree_leaves(tree)
        return float(
            sum(
                math.prod(x.sharding.shard_shape(x.shape)) * jnp.dtype(x.dtype).itemsize
                for x in leaves
            )
        )

    return per_device(state.params), per_device(state.opt_state)


def decode_checks(hlo: str, cfg: ModelConfig, c) -> dict[str, int]:
    """What the compiled decode step materialises, read from its optimized HLO: float32 arrays
    as large as one layer's per-device K or V cache ([rows, kv heads, S, H], i.e. a float32 copy
    of the cache; 0 expected in bfloat16), and arrays with two dimensions of S slots (quadratic
    in the cache length; 0 expected)."""
    slots = _bucket(c.sampling.max_prompt_len) + max(
        c.sampling.max_new_tokens, c.eval.max_new_tokens
    )
    f32_copies = quadratic = 0
    for dtype, dims in re.findall(r"\b(f32|bf16|f16|s32|pred)\[([\d,]+)\]", hlo):
        shape = [int(d) for d in dims.split(",") if d]
        if dtype == "f32" and slots in shape and cfg.head_dim in shape and len(shape) >= 3:
            f32_copies += 1
        if shape.count(slots) >= 2:  # [.., S, .., S]: a score matrix over the cache
            quadratic += 1
    return {"f32_cache_copies": f32_copies, "quadratic_arrays": quadratic}


def _compile_all(cfg, c, mesh, copy: bool, programs) -> dict[str, dict]:
    out: dict[str, dict] = {}
    if "train_step" in programs:
        out["train_step"] = _measure(lambda: compile_train_step(cfg, c, mesh))
    if "prefill" in programs or "decode" in programs:
        both = {}

        def sampler():
            build = compile_engine if c.engine.enabled else compile_sampler
            both["exe"] = build(cfg, c, mesh, copy)
            return both["exe"][0]

        pre = _measure(sampler)
        if "error" in pre:
            out.update({name: pre for name in ("prefill", "decode") if name in programs})
        else:
            dec = _measure(lambda: both["exe"][1])
            dec.update(decode_checks(both["exe"][1].as_text(), cfg, c))
            pre["seconds"] = dec["seconds"] = pre["seconds"] / 2
            out.update({k: v for k, v in (("prefill", pre), ("decode", dec)) if k in programs})
    return out


def run(
    c,
    model: str,
    host: str | None,
    topology: str,
    programs,
    extrapolate: bool = False,
    sampler_weights: str = "auto",
    layers: int | None = None,
) -> dict[str, Any]:
    from jax.experimental import topologies

    # v4 chips run as one "megacore" device each (as on a v4 VM); libtpu's default is one
    # device per TensorCore, with half the chip's HBM each.
    kwargs = {"chip_config_name": "megacore"} if topology.startswith("v4") else {}
    topo = topologies.get_topology_desc(topology_name=topology, platform="tpu", **kwargs)
    devices = list(topo.devices)
    gen, hbm_gib, peak_tflops = chip_of(devices[0])
    mesh = shd.make_mesh(c.mesh.data, c.mesh.fsdp, c.mesh.tensor, devices=devices)
    cfg = model_config(model, c)
    shd.check_heads(mesh, cfg.num_heads, cfg.num_kv_heads)
    sampler_copy = sampler_keeps_a_copy(cfg, mesh, hbm_gib)  # decided by the full model
    if layers is not None:
        if layers < 1:
            raise ValueError(f"--layers={layers}: give a layer count >= 1")
        cfg = cfg.replace(num_layers=layers)
    if sampler_weights != "auto":
        sampler_copy = sampler_weights == "copy"
    if extrapolate:
        one = _compile_all(cfg.replace(num_layers=1), c, mesh, sampler_copy, programs)
        two = _compile_all(cfg.replace(num_layers=2), c, mesh, sampler_copy, programs)
        raw = {k: _extrapolate(one[k], two[k], cfg.num_layers) for k in one}
    else:
        raw = _compile_all(cfg, c, mesh, sampler_copy, programs)
    weights, moments = _state_bytes(cfg, c, mesh)
    out: dict[str, Any] = {}
    for name, r in raw.items():
        resident = 0.0 if name == "train_step" else moments + (weights if sampler_copy else 0.0)
        out[name] = _report(r, hbm_gib, resident)
        est = model_flops(cfg, c, name, mesh) / (peak_tflops * 1e12 * len(devices))
        out[name]["est_step_s"] = float(f"{est:.3g}")  # an ESTIMATE at 100% of peak
    return {
        "preset": model,
        "host": host,
        "topology": topology,
        "chip": gen,
        "chips": len(devices),
        "processes": len({d.process_index for d in devices}),
        "mesh": dict(mesh.shape),
        "attention": cfg.attention,
        "layers": cfg.num_layers,
        "extrapolated_from_layers": [1, 2] if extrapolate else None,
        "sampler": sampler_kind(c, mesh),
        "commit": _commit(),
        "programs": out,
        "fits": all(r["fits"] for r in out.values()),
    }


def _commit() -> str | None:
    """The checkout's commit (the figures belong to the code that was compiled), if known."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def sampler_kind(c, mesh) -> dict[str, Any]:
    """Which rollout programs "prefill" and "decode" are: the slot engine's insert and chunk
    (the trainer's default) or the static sampler's largest call (engine.enabled=False)."""
    if not c.engine.enabled:
        return {"kind": "static", "rows": c.sampling.batch_size * max(1, c.azr.n_rollouts)}
    slots, steps, m = engine_shape(c, mesh)
    return {"kind": "engine", "slots": slots, "chunk": steps, "prefill_batch": m}


def table(result: dict[str, Any]) -> str:
    rows = [
        f"{result['preset']} on {result['host'] or '-'} ({result['topology']}: "
        f"{result['chips']} x {result['chip']}, {result['processes']} host(s)), mesh "
        f"{result['mesh']}, attention={result['attention']}",
        "| program | peak GiB/chip | + resident | HBM GiB | fits | TFLOPs/chip (XLA) "
        "| est. s (estimate) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["programs"].items():
        rows.append(
            f"| {name} | {r['peak_gib']:.2f} | {r['resident_gib']:.2f} | {r['hbm_gib']} "
            f"| {'yes' if r['fits'] else 'NO'} "
            f"| {r['tflops']:.3f} | {r['est_step_s']} |"
        )
    return "\n".join(rows)


def summary(paths: list[Path]) -> str:
    """One markdown table (docs/multihost.md) from saved runs: the last JSON line of each log."""
    rows = [
        "| model | host (topology) | mesh d/f/t | train step peak | prefill peak + resident "
        "| decode peak + resident | HBM | fits | est. update s | remat inputs on host | commit |",
        "|" + "---|" * 11,
    ]
    for path in sorted(paths):
        r = json.loads(path.read_text().strip().splitlines()[-1])
        p = r["programs"]
        m = r["mesh"]

        def cell(name, with_resident=True, p=p):
            x = p.get(name)
            if x is None:
                return "-"
            text = f"{x['peak_gib']:.1f}"
            if with_resident and x["resident_gib"]:
                text += f" + {x['resident_gib']:.1f}"
            return text + ("" if x["fits"] else " (NO)")

        hbm = next(iter(p.values()))["hbm_gib"] if p else "-"
        rows.append(
            f"| {r['preset']} | {r['host']} ({r['topology']}) | {m['data']}/{m['fsdp']}/"
            f"{m['tensor']} | {cell('train_step', False)} | {cell('prefill')} | {cell('decode')} "
            f"| {hbm} | {'yes' if r['fits'] else 'NO'} "
            f"| {p.get('train_step', {}).get('est_step_s', '-')} "
            f"| {p.get('train_step', {}).get('host_temporaries_gib', 0) or '-'} "
            f"| {r.get('commit') or '-'} |"
        )
    return "\n".join(rows)


def main(argv) -> None:
    del argv
    if FLAGS.summarize:
        print(summary([p for p in Path(FLAGS.summarize).glob("*.log")]))
        return
    c = _CONFIG.value
    model, host = preset_and_host(config_flags.get_config_filename(FLAGS["config"]))
    model = FLAGS.model or model
    if model is None:
        raise app.UsageError(
            "--model is needed with a config that is not configs/azr.py:MODEL,HOST"
        )
    topology = FLAGS.topology
    if topology is None:
        azr = _load(ROOT / "configs" / "azr.py", "azr_config")
        if host not in azr.TPU_TOPOLOGIES:
            raise app.UsageError(
                f"host {host!r} is no TPU host preset ({sorted(azr.TPU_TOPOLOGIES)}); pass "
                "--topology, e.g. --topology=v5e:2x4"
            )
        topology = azr.TPU_TOPOLOGIES[host]
    bad = [p for p in FLAGS.programs if p not in PROGRAMS]
    if bad:
        raise app.UsageError(f"--programs: {bad} are not in {PROGRAMS}")
    try:
        result = run(
            c,
            model,
            host,
            topology,
            FLAGS.programs,
            FLAGS.extrapolate,
            FLAGS.sampler_weights or c.sampling.get("weights", "auto"),
            FLAGS.layers,
        )
    except RuntimeError as e:
        if "libtpu" in str(e).lower() or "tpu" in str(e).lower() and "topology" in str(e).lower():
            raise SystemExit(
                f"compile_tpu: the TPU compiler is not available ({e}); run `make tpu-compiler` "
                "(installs libtpu into .libtpu/) or pip install 'jax[tpu]'"
            ) from e
        raise
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
