"""The paper's runs: AZR hyperparameters (AZR_SPEC sections 1-4) for each model, per host type.

    python scripts/train.py --config=configs/azr.py:qwen2.5-coder-7b
    python scripts/train.py --config=configs/azr.py:qwen2.5-coder-7b,v5e-16 --config.output_dir=gs://...
    python scripts/train.py --config=configs/azr.py:qwen3-4b-base,gpu-8 --config.rl.learning_rate=2e-6

The argument is `MODEL[,HOST]`; HOST is one of v4-8, v4-16, v4-32, v5e-8, v5e-16, v5e-32, v5p-8,
gpu-8
(default gpu-8); `tpu_hosts(MODEL)` lists the TPU slices each model is checked on (a slice too
small for a model is an error naming the one to use). Before renting a TPU slice, `scripts/compile_tpu.py --config=configs/azr.py:MODEL,HOST`
says whether every program fits (the TPU compiler's own figures, on CPU). Any key
can still be overridden with --config.KEY=VALUE.
"""

import importlib.util
from pathlib import Path

import ml_collections

# model preset -> (Hugging Face name, parameters in billions)
MODELS = {
    "qwen2.5-coder-3b": ("Qwen/Qwen2.5-Coder-3B", 3.1),
    "qwen2.5-coder-7b": ("Qwen/Qwen2.5-Coder-7B", 7.6),
    "qwen2.5-coder-14b": ("Qwen/Qwen2.5-Coder-14B", 14.8),
    "qwen2.5-7b": ("Qwen/Qwen2.5-7B", 7.6),
    "llama-3.1-8b": ("meta-llama/Llama-3.1-8B", 8.0),
    "qwen3-4b-base": ("Qwen/Qwen3-4B-Base", 4.0),
}
# host -> (devices, GiB of accelerator memory per device)
HOSTS = {
    "v4-8": (4, 32),  # TPU v4-8: 4 chips x 32 GiB HBM
    "v5e-8": (8, 16),  # TPU v5e-8 (v5litepod-8): 8 chips x 16 GiB HBM
    "v5p-8": (4, 95),  # TPU v5p-8: 4 chips x 95 GiB HBM
    "gpu-8": (8, 80),  # 8 x H100/A100 80 GB
    "v5e-16": (16, 16),  # TPU v5litepod-16: 4 hosts x 4 chips x 16 GiB (models a v5e-8 cannot hold)
    "v4-16": (8, 32),  # TPU v4-16: 2 hosts x 4 chips x 32 GiB (models a v4-8 cannot hold)
    "v4-32": (16, 32),  # TPU v4-32: 4 hosts x 4 chips x 32 GiB (models a v4-16 cannot hold)
    "v5e-32": (32, 16),  # TPU v5litepod-32: 8 hosts x 4 chips x 16 GiB (models a v5e-16 cannot)
}
# TPU host -> libtpu topology name (scripts/compile_tpu.py compiles every program for it).
TPU_TOPOLOGIES = {
    "v4-8": "v4:2x2x1",
    "v5e-8": "v5e:2x4",
    "v5p-8": "v5p:2x2x1",
    "v5e-16": "v5e:4x4",
    "v4-16": "v4:2x2x2",
    "v4-32": "v4:2x2x4",
    "v5e-32": "v5e:4x8",
}
# TPU slices by generation, smallest first.
TPU_GENERATIONS = {
    "v4": ("v4-8", "v4-16", "v4-32"),
    "v5e": ("v5e-8", "v5e-16", "v5e-32"),
    "v5p": ("v5p-8",),
}
# The smallest slice of a generation that trains a model at the paper's lengths (6144 + 8096
# tokens, one update row per chip), where it is not the generation's smallest: the train step's
# per-chip memory does not fall below one row's activations with more chips, so these models
# need the larger slices' weight and gradient shards (scripts/compile_tpu.py, docs/multihost.md).
# qwen2.5-coder-7b's train step on a v5e-8 asked for 16.3 GiB of 15.75 before the train step's
# windowed einsums were turned off (sharding.TPU_COMPILER_OPTIONS); now 12.2, so a v5e-8 is its
# smallest v5e slice (TPU_TUNING). llama-3.1-8b's v5e-8 programs have not been compiled.
# qwen2.5-coder-14b on v4-16: 30.8 GiB of 31.75 with plain bfloat16 weights (2026-12-04); the
# compensation bfloat16 weights need to train (rl.master_weights) adds ~0.9 x its 3.45 GiB a chip
# (as it did to 7B on v4-8: 27.9 -> 31.0 for 3.54), ~33.8: an ESTIMATE, not compiled; a v4-32
# holds float32 weights (no master needed).
SMALLEST_TPU = {
    "llama-3.1-8b": {"v5e": "v5e-16"},
    "qwen2.5-coder-14b": {"v4": "v4-32", "v5e": "v5e-32"},
}
# What a model needs on a TPU slice beyond the defaults below, per scripts/compile_tpu.py:
#   model.remat_offload     each layer's saved input in host memory (3 GiB a chip for a 7B model
#                           at 16k tokens, 7.5 GiB for 14B), moved back for the backward pass;
#   rl.grad_accum_dtype     bfloat16: half the gradient summed over the 48 micro-batches;
#   sampling.weights        shards: decode from the train state's fsdp shards (a layer gathered
#                           at a time) instead of a whole-weight copy per chip;
#   model.param_dtype       bfloat16 where float32 weights would fit half a chip but leave too
#                           little for one row's activations;
#   rl.master_weights       compensated: the Kahan sum (2 bytes a parameter) instead of the
#                           default float32 master (4) that bfloat16 weights need to train,
#                           where the master does not fit (compiled: 7B on v5e-8 17.1 GiB with
#                           a master, 15.1 compensated; 7B on v4-8 31.0 compensated).
TPU_TUNING = {
    # train step 15.9 GiB of 15.75 without offload; a sampler copy would be 7.5 of them
    ("qwen3-4b-base", "v5e-8"): {"model.remat_offload": True, "sampling.weights": "shards"},
    # the train step: 33.6 GiB of 31.75 with a float32 accumulator, 28.6 with bfloat16 (2026-12-02;
    # 30.0 since remat_offload's custom VJP, 3.1 GiB of it on the host)
    # 27.9 at 86903b4; with the compensated sum 30.98 of 31.75 (2026-12-08, compiled)
    ("qwen2.5-coder-7b", "v4-8"): {
        "model.remat_offload": True,
        "rl.grad_accum_dtype": "bfloat16",
        "sampling.weights": "shards",
        "rl.master_weights": "compensated",
    },
    ("qwen2.5-7b", "v4-8"): {
        "model.remat_offload": True,
        "rl.grad_accum_dtype": "bfloat16",
        "sampling.weights": "shards",
        "rl.master_weights": "compensated",
    },
    # 27.1 at 86903b4; with the compensated sum ~30.4 (an ESTIMATE from 7B's +3.1, not compiled)
    ("llama-3.1-8b", "v4-8"): {
        "model.remat_offload": True,
        "rl.grad_accum_dtype": "bfloat16",
        "sampling.weights": "shards",
        "rl.master_weights": "compensated",
    },
    # the train step 12.2 GiB of 15.75, the engine's insert 7.6 + 3.5 resident, its chunk
    # 4.2 + 3.5 (2026-12-05; bfloat16 weights, as the 16 bytes/param rule picks on 8 chips)
    # A float32 master of the bfloat16 weights takes it to 17.1 (2026-12-08); the compensated sum
    # (2 bytes a parameter instead of 4) is the master weights' effect in the memory left.
    ("qwen2.5-coder-7b", "v5e-8"): {
        "model.remat_offload": True,
        "rl.grad_accum_dtype": "bfloat16",
        "rl.master_weights": "compensated",
    },
    ("qwen2.5-7b", "v5e-8"): {
        "model.remat_offload": True,
        "rl.grad_accum_dtype": "bfloat16",
        "rl.master_weights": "compensated",
    },
    # float32 weights + AdamW would take 7.1 of a chip's 15.75 GiB: bfloat16, as on v5e-8
    # (12.6 at 5fa457b with plain bfloat16 weights; a float32 master would add ~2.4: the
    # compensated sum, ~1.5, not compiled)
    ("qwen2.5-coder-7b", "v5e-16"): {
        "model.remat_offload": True,
        "model.param_dtype": "bfloat16",
        "rl.master_weights": "compensated",
    },
    ("qwen2.5-7b", "v5e-16"): {
        "model.remat_offload": True,
        "model.param_dtype": "bfloat16",
        "rl.master_weights": "compensated",
    },
    ("llama-3.1-8b", "v5e-16"): {"model.remat_offload": True, "rl.master_weights": "compensated"},
    # (v4-16, refused since 2026-12-08: 30.8 GiB of 31.75 with plain bfloat16 weights and
    # remat_offload, bfloat16 accumulation, mlp_chunk 1024; see SMALLEST_TPU)
    # 32 chips: float32 weights + AdamW would take 6.9 GiB a chip; bfloat16, as on v5e-16. The
    # train step: 9.3 GiB of 15.75 (2026-12-04; 17.2 with the TPU compiler's windowed einsums on,
    # whose q/k/v outputs took 0.31 GiB a layer: sharding.TPU_COMPILER_OPTIONS)
    ("qwen2.5-coder-14b", "v5e-32"): {
        "model.remat_offload": True,
        "model.param_dtype": "bfloat16",
        "rl.grad_accum_dtype": "bfloat16",
        "model.mlp_chunk": 1024,
    },
}


def tpu_hosts(model: str) -> tuple[str, ...]:
    """The TPU slices a model's preset is checked on: each generation's smallest that holds it."""
    return tuple(
        SMALLEST_TPU.get(model, {}).get(g, hosts[0]) for g, hosts in TPU_GENERATIONS.items()
    )


def hosts_of(model: str) -> tuple[str, ...]:
    """Every host a model's preset exists for: its TPU slices and the GPU host."""
    return (*tpu_hosts(model), "gpu-8")


def _check_slice(model: str, host: str) -> None:
    for gen, hosts in TPU_GENERATIONS.items():
        smallest = SMALLEST_TPU.get(model, {}).get(gen)
        if host in hosts and smallest and hosts.index(host) < hosts.index(smallest):
            raise ValueError(
                f"configs/azr.py: {model} does not train on a {host} at the paper's lengths (the "
                f"TPU compiler's figures, docs/multihost.md); the smallest {gen} slice that does "
                f"is {smallest}: use configs/azr.py:{model},{smallest}"
            )


def _default():
    spec = importlib.util.spec_from_file_location("default", Path(__file__).with_name("default.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config()


def get_config(arg: str | None = "qwen2.5-coder-7b") -> ml_collections.ConfigDict:
    model, _, host = (arg or "qwen2.5-coder-7b").partition(",")
    host = host or "gpu-8"
    if model not in MODELS:
        raise ValueError(f"configs/azr.py: unknown model {model!r}; choose one of {sorted(MODELS)}")
    if host not in HOSTS:
        raise ValueError(f"configs/azr.py: unknown host {host!r}; choose one of {sorted(HOSTS)}")
    _check_slice(model, host)
    hf_name, billions = MODELS[model]
    devices, gib = HOSTS[host]
    c = _default()
    c.model_name = hf_name
    c.output_dir = f"runs/{model}-{host}"
    c.num_steps = 500  # paper: 500 steps

    # Memory per device for training: weights + AdamW moments (same dtype) + gradients, all
    # fsdp-sharded. float32 everywhere needs 16 bytes/param; bfloat16 weights 8 bytes/param.
    f32_gib = 16 * billions / devices
    c.model.param_dtype = "float32" if f32_gib < 0.5 * gib else "bfloat16"
    c.model.dtype = "bfloat16"
    c.model.remat = True  # 8k-token responses: recompute activations
    # The MLP 2048 positions at a time in full-sequence calls (update rows of ~14k tokens,
    # 8k-token prefills): a [rows, 2048, F] working set instead of [rows, T, F] (qwen2.5-coder-7b
    # on v5e-8: the train step's temporaries 16.8 -> 13.5 GiB with the vocab-parallel LM head).
    c.model.mlp_chunk = 2048
    c.model.remat_offload = False
    c.rl.grad_accum_dtype = "float32"

    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, -1, 1
    c.hardware.name = host
    c.hardware.platform = "tpu" if host in TPU_TOPOLOGIES else "gpu"
    c.hardware.devices = devices

    c.sampling.temperature = 1.0  # paper rollouts: temperature 1.0, top-p 1.0
    c.sampling.top_p = 1.0
    c.sampling.max_prompt_len = 6144
    c.sampling.max_new_tokens = 8096
    c.sampling.batch_size = 64

    c.executor.workers = 8
    c.executor.timeout_s = 10.0  # paper: 10 s
    c.executor.memory_mb = 1024

    c.azr.batch_size = 64  # 64 per (task type, role): 384 sequences per update
    c.azr.n_rollouts = 8
    c.azr.num_references = 6
    c.azr.num_inputs = 10  # paper: 10 induction inputs, half shown
    c.azr.seed_buffer_size = 256  # seeding phase with the base model before training

    c.rl.learning_rate = 1e-6  # constant, AdamW, clip 1.0
    c.rl.schedule = "constant"
    c.rl.entropy_coef = 0.001
    c.rl.clip_eps = 0.2
    c.rl.kl_coef = 0.0
    c.rl.micro_batch_size = 64 if devices == 8 else 32  # a multiple of the mesh's data x fsdp

    # TPU hosts, at the paper's lengths (update rows of 8192 + 8192 bucketed tokens; prompts
    # bucketed to 8192 + 8096 cache slots), as checked by scripts/compile_tpu.py (figures in
    # docs/multihost.md): splash attention (model.attention=auto), one update row per chip per
    # micro-batch (remat keeps only each layer's input), the slot engine's rollouts at one slot
    # per chip (engine.slots = sampling.batch_size), then TPU_TUNING's changes for this slice.
    if host in TPU_TOPOLOGIES:
        c.rl.micro_batch_size = devices
        c.sampling.batch_size = devices
        for key, value in TPU_TUNING.get((model, host), {}).items():
            group, leaf = key.split(".")
            c[group][leaf] = value

    c.checkpoint.interval_steps = 25
    c.checkpoint.max_to_keep = 3
    c.eval.every_steps = 50
    c.eval.max_new_tokens = 1024
    return c
