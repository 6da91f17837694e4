"""Accelerator memory per chip for each preset of configs/azr.py: what fits, and what to reduce.

    python scripts/memory_plan.py            # markdown tables, then one JSON line with every number

For each model x host it reads the preset (`configs/azr.py:MODEL,HOST`: parameter dtype, mesh,
sampling batch and lengths, micro-batch) and counts, per chip, in GiB:
  state     weights + AdamW's two moments (same dtype as the weights), fsdp-sharded over all chips
  grads     the gradient (same dtype), alive during the update
  sampler   the sampler's copy of the weights: whole on each tensor shard when that fits in half
            a chip (sharding.SAMPLE_RULES), else 0 (it decodes from the fsdp-sharded weights)
  kv        KV cache of the rows a chip samples: 2 * layers * kv_heads * head_dim * 2 bytes
            (bfloat16) * (max_prompt_len + max_new_tokens) * rows per chip
  prefill   one layer's attention scores while prefilling those rows (model.attention=einsum:
            [rows, heads, P, P] float32; 0 with a flash kernel: splash on TPU, cudnn on GPU,
            which model.attention=auto picks there in bfloat16)
  act       one training micro-batch under remat: each layer's input [rows, T, D] bfloat16, plus
            one layer's attention scores and probabilities [rows, heads, T, T] (float32 + bf16),
            plus one 512-position logits chunk [rows, 512, V] float32 and its gradient
Sampling peak = state + sampler + kv + prefill; update peak = state + grads + act. A chip counts
as full at 90% of its memory (XLA's own buffers and fragmentation take the rest).

This is arithmetic, not the compiler: for TPU hosts `scripts/compile_tpu.py` compiles the real
programs and its figures rule. When its saved runs exist (artifacts/compile_tpu/, from
scripts/compile_tpu_all.sh), a third table sets the two side by side and says where they differ
by more than 20%.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

GIB = 1 << 30
USABLE = 0.9  # fraction of a chip's memory the plan fills
LOGITS_CHUNK = 512  # positions unembedded at a time in the loss (train_step's logprob_chunk)
DTYPE_BYTES = {"float32": 4, "bfloat16": 2}


@dataclass(frozen=True)
class Arch:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool  # tie_word_embeddings: the LM head is the embedding
    qkv_bias: bool  # Qwen2 / Qwen2.5 carry q, k, v biases
    qk_norm: bool  # Qwen3 normalises q and k per head


# Architectures from each model's config.json on the Hugging Face hub (num_hidden_layers,
# hidden_size, num_attention_heads, num_key_value_heads, head_dim or hidden/heads,
# intermediate_size, vocab_size, tie_word_embeddings).
ARCHS = {
    "qwen2.5-coder-3b": Arch(36, 2048, 16, 2, 128, 11008, 151936, True, True, False),
    "qwen2.5-coder-7b": Arch(28, 3584, 28, 4, 128, 18944, 152064, False, True, False),
    "qwen2.5-coder-14b": Arch(48, 5120, 40, 8, 128, 13824, 152064, False, True, False),
    "qwen2.5-7b": Arch(28, 3584, 28, 4, 128, 18944, 152064, False, True, False),
    "llama-3.1-8b": Arch(32, 4096, 32, 8, 128, 14336, 128256, False, False, False),
    "qwen3-4b-base": Arch(36, 2560, 32, 8, 128, 9728, 151936, True, False, True),
}


def num_params(a: Arch) -> int:
    """Parameters of a decoder-only LM with this architecture (exact for these six)."""
    q, kv = a.heads * a.head_dim, a.kv_heads * a.head_dim
    attn = a.hidden * (q + 2 * kv) + q * a.hidden
    attn += (q + 2 * kv) if a.qkv_bias else 0
    attn += 2 * a.head_dim if a.qk_norm else 0
    layer = attn + 3 * a.hidden * a.intermediate + 2 * a.hidden  # + gate/up/down, two norms
    embed = a.vocab * a.hidden * (1 if a.tied else 2)
    return a.layers * layer + embed + a.hidden  # + final norm


def load_preset(arg: str):
    path = Path(__file__).resolve().parent.parent / "configs" / "azr.py"
    spec = importlib.util.spec_from_file_location("azr_config", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, mod.get_config(arg)


def flash_attention(mod, host: str, c) -> bool:
    """Whether the preset's attention on that host is a flash kernel (no [T, T] scores)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from azr_jax.model.config import resolve_attention

    backend = "tpu" if host in getattr(mod, "TPU_TOPOLOGIES", {}) else "gpu"
    return resolve_attention(c.model.attention, backend, c.model.dtype) in ("splash", "cudnn")


def _mesh(devices: int, data: int, fsdp: int, tensor: int) -> tuple[int, int, int]:
    sizes = [data, fsdp, tensor]
    if -1 in sizes:
        sizes[sizes.index(-1)] = devices // math.prod(s for s in sizes if s != -1)
    return tuple(sizes)


def plan_one(model: str, host: str, tensor: int | None = None) -> dict:
    """Every per-chip number (GiB) for one preset; `tensor` overrides the preset's mesh.tensor."""
    mod, c = load_preset(f"{model},{host}")
    devices, chip_gib = mod.HOSTS[host]
    a = ARCHS[model]
    data, fsdp, tens = _mesh(devices, c.mesh.data, c.mesh.fsdp, tensor or c.mesh.tensor)
    if tensor:  # the tensor axis takes its chips from fsdp
        data, fsdp = 1, devices // tens
    p = num_params(a)
    pb = DTYPE_BYTES[c.model.param_dtype]
    ab = DTYPE_BYTES[c.model.dtype]
    budget = USABLE * chip_gib * GIB
    batch_chips = data * fsdp  # rows split over data x fsdp, replicated over tensor

    state = 3 * p * pb / devices
    grads = p * pb / devices
    sampler_full = p * pb / tens
    sampler = sampler_full if sampler_full <= 0.5 * chip_gib * GIB else 0.0
    seq = c.sampling.max_prompt_len + c.sampling.max_new_tokens
    heads_chip = a.heads / tens
    kv_row = 2 * a.layers * a.kv_heads * a.head_dim * ab * seq / tens
    # A flash kernel (splash on TPU, cudnn on GPU: what model.attention=auto picks there in
    # bfloat16) keeps no [T, T] scores in memory.
    flash = flash_attention(mod, host, c)
    prefill_row = 0.0 if flash else heads_chip * c.sampling.max_prompt_len**2 * 4
    sample_rows = c.sampling.batch_size / batch_chips

    def act(rows: float, t: int) -> float:
        saved = a.layers * rows * t * a.hidden * ab
        scores = 0.0 if flash else rows * heads_chip * t * t * (4 + ab)
        logits = 2 * rows * LOGITS_CHUNK * a.vocab / tens * 4
        return saved + scores + logits

    micro_rows = (c.rl.micro_batch_size or c.azr.batch_size) / batch_chips
    sample_peak = state + sampler + sample_rows * (kv_row + prefill_row)
    update_peak = state + grads + act(micro_rows, seq)
    free_sample = budget - state - sampler
    fit_sample_rows = max(0, math.floor(free_sample / (kv_row + prefill_row)))
    free_update = budget - state - grads
    fit_micro_rows = 0
    while act(fit_micro_rows + 1, seq) <= free_update:
        fit_micro_rows += 1
    # Longest row (a multiple of 512, or the full length) that one row per chip can train on.
    fit_len = max((t for t in [*range(512, seq, 512), seq] if act(1, t) <= free_update), default=0)
    return {
        "model": model,
        "host": host,
        "chips": devices,
        "chip_gib": chip_gib,
        "mesh": [data, fsdp, tens],
        "params_b": p / 1e9,
        "param_dtype": c.model.param_dtype,
        "state_gib": state / GIB,
        "grads_gib": grads / GIB,
        "sampler_gib": sampler / GIB,
        "sampler_full_gib": sampler_full / GIB,
        "sample_rows_per_chip": sample_rows,
        "kv_gib": sample_rows * kv_row / GIB,
        "prefill_gib": sample_rows * prefill_row / GIB,
        "micro_rows_per_chip": micro_rows,
        "act_gib": act(micro_rows, seq) / GIB,
        "sample_peak_gib": sample_peak / GIB,
        "update_peak_gib": update_peak / GIB,
        "budget_gib": budget / GIB,
        "fit_sample_rows_per_chip": fit_sample_rows,
        "fit_micro_rows_per_chip": fit_micro_rows,
        "fit_len_one_row": fit_len,
        "seq": seq,
        "flash": flash,
    }


def advice(r: dict) -> str:
    """What to change for this preset, in the config's own keys."""
    if r["state_gib"] + r["grads_gib"] > r["budget_gib"]:
        return "weights + AdamW + grads overflow: more chips (a larger slice) for fsdp"
    out = []
    chips = r["mesh"][0] * r["mesh"][1]
    if r["sampler_gib"] == 0:
        t = next((t for t in (2, 4, 8) if r["sampler_full_gib"] / t <= r["chip_gib"] / 2), None)
        out.append(
            "sampler decodes from fsdp shards"
            + (f" (mesh.tensor={t}: whole-weight decode)" if t else "")
        )
    if r["fit_sample_rows_per_chip"] < r["sample_rows_per_chip"]:
        rows = r["fit_sample_rows_per_chip"] * chips
        out.append(
            f"sampling.batch_size<={rows}"
            if rows
            else "no sampling row fits: shorter sampling.max_prompt_len, or prefill in chunks"
        )
    if r["fit_micro_rows_per_chip"] < r["micro_rows_per_chip"]:
        rows = r["fit_micro_rows_per_chip"] * chips
        out.append(
            f"rl.micro_batch_size<={rows}"
            if rows
            else f"no {r['seq']}-token row trains (plain attention fits {r['fit_len_one_row']}): "
            "flash attention or shorter max lengths"
        )
    return "; ".join(out) or "fits as configured"


def markdown(rows: list[dict]) -> tuple[str, str]:
    """Two tables: the lasting memory (weights, optimizer, KV cache), then the attention terms."""
    t1 = [
        "| model | host | params (B) | dtype | weights + AdamW | grads | sampler copy "
        "| KV cache (rows/chip) | sum | usable |",
        "|" + "---|" * 10,
    ]
    t2 = [
        "| model | host | prefill scores | train activations (rows/chip) | sampling rows/chip "
        "that fit | micro-batch rows/chip that fit | longest row, 1/chip | what to change |",
        "|" + "---|" * 8,
    ]
    for r in rows:
        total = r["state_gib"] + r["grads_gib"] + r["sampler_gib"] + r["kv_gib"]
        t1.append(
            f"| {r['model']} | {r['host']} | {r['params_b']:.2f} | {r['param_dtype']} "
            f"| {r['state_gib']:.1f} | {r['grads_gib']:.1f} | {r['sampler_gib']:.1f} "
            f"| {r['kv_gib']:.1f} ({r['sample_rows_per_chip']:g}) | {total:.1f} "
            f"| {r['budget_gib']:.1f} |"
        )
        t2.append(
            f"| {r['model']} | {r['host']} | {r['prefill_gib']:.1f} "
            f"| {r['act_gib']:.0f} ({r['micro_rows_per_chip']:g}) "
            f"| {r['fit_sample_rows_per_chip']} of {r['sample_rows_per_chip']:g} "
            f"| {r['fit_micro_rows_per_chip']} of {r['micro_rows_per_chip']:g} "
            f"| {r['fit_len_one_row']} of {r['seq']} | {advice(r)} |"
        )
    return "\n".join(t1), "\n".join(t2)


def plan_all() -> list[dict]:
    mod, _ = load_preset(None)
    return [plan_one(m, h) for m in ARCHS if m in mod.MODELS for h in mod.hosts_of(m)]


def against_compiler(rows: list[dict], folder: Path) -> tuple[str, list[dict]]:
    """This plan's peaks beside scripts/compile_tpu.py's (saved logs in `folder`): where they
    differ by more than 20% the compiler's figure is the one to trust (it is the real program)."""
    out = [
        "| model | host | plan update peak | compiler train step | plan sampling peak "
        "| compiler decode + resident | agree within 20% |",
        "|" + "---|" * 7,
    ]
    table = []
    for r in rows:
        got: dict = {}  # MODEL,HOST.log (all programs) or MODEL,HOST.*.log (some of them)
        prefix = f"{r['model']},{r['host']}"
        for log in sorted(folder.glob(prefix + ".*log")):
            lines = log.read_text().strip().splitlines()  # empty while a compile runs
            if lines and log.name[len(prefix) :].count(".") <= 2:  # not .tensor2.train.log
                try:
                    got.update(json.loads(lines[-1])["programs"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # not a finished compile's report
        if not got:
            continue

        def peak(name, got=got):
            x = got.get(name)  # an out-of-HBM compile reports its temporaries: a lower bound
            return None if x is None else x["peak_gib"] + x["resident_gib"]

        pairs = [
            (plan, comp)
            for plan, comp in (
                (r["update_peak_gib"], peak("train_step")),
                (r["sample_peak_gib"], peak("decode")),
            )
            if comp is not None
        ]
        ok = all(abs(plan - comp) <= 0.2 * comp for plan, comp in pairs)
        table.append({"model": r["model"], "host": r["host"], "agree": ok})

        def fmt(x):
            return "-" if x is None else f"{x:.1f}"

        out.append(
            f"| {r['model']} | {r['host']} | {r['update_peak_gib']:.1f} | {fmt(peak('train_step'))} "
            f"| {r['sample_peak_gib']:.1f} | {fmt(peak('decode'))} | "
            + ("yes" if ok else "no: the compiler's figure rules")
            + " |"
        )
    return "\n".join(out), table


def main() -> None:
    rows = plan_all()
    lasting, attention = markdown(rows)
    print("GiB per chip, the presets' mesh (data=1, fsdp=all chips, tensor=1).\n")
    print(lasting + "\n\n" + attention + "\n")
    compiled = Path(__file__).resolve().parent.parent / "artifacts" / "compile_tpu"
    if compiled.is_dir():
        text, _ = against_compiler(rows, compiled)
        print("Against the TPU compiler (scripts/compile_tpu.py, artifacts/compile_tpu/):\n")
        print(text + "\n")
    print(json.dumps({"archs": {k: asdict(a) for k, a in ARCHS.items()}, "plans": rows}))


if __name__ == "__main__":
    main()
