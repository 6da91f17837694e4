"""Load time and peak host memory: azr_jax's streaming loader vs transformers, side by side.

    python scripts/bench_load.py [--preset qwen0.5b] [--family qwen2] [--mesh_fsdp 1]

Builds (once, cached under .cache/bench) a random checkpoint of the preset's shape, then loads it
in two fresh processes: azr_jax (`hf_io.load_hf`, float32) and transformers
(`AutoModelForCausalLM.from_pretrained`, float32, torch CPU). Last line: JSON.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from absl import app, flags

flags.DEFINE_string(
    "preset", "qwen0.5b", "Checkpoint shape (azr_jax.model.tiny_checkpoint.PRESETS)."
)
flags.DEFINE_string("family", "qwen2", "Model family.")
flags.DEFINE_integer("mesh_fsdp", 1, "Load onto an fsdp mesh of this many fake CPU devices.")
FLAGS = flags.FLAGS

OURS = """
import os, resource, time, json, sys
def hwm():  # peak RSS of this process image (VmHWM; ru_maxrss survives exec, this does not)
    return int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]) / 1024
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count={n}"
import jax
from azr_jax.model import hf_io
from azr_jax.parallel import sharding
t = time.perf_counter()
mesh = sharding.make_mesh(data=1, fsdp={n}) if {n} > 1 else None
cfg, params = hf_io.load_hf(sys.argv[1], mesh)
jax.block_until_ready(params)
print(json.dumps(dict(seconds=time.perf_counter() - t,
      peak_rss_mb=hwm(), params=cfg.num_params)))
"""
THEIRS = """
import resource, time, json, sys, torch, transformers
def hwm():  # peak RSS of this process image (VmHWM; ru_maxrss survives exec, this does not)
    return int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]) / 1024
t = time.perf_counter()
m = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)
print(json.dumps(dict(seconds=time.perf_counter() - t,
      peak_rss_mb=hwm())))
"""
BASELINE = """
import resource, json, jax, torch, transformers
from azr_jax.model import hf_io
def hwm():  # peak RSS of this process image (VmHWM; ru_maxrss survives exec, this does not)
    return int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]) / 1024
print(json.dumps(dict(peak_rss_mb=hwm())))
"""


def _run(code: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    from azr_jax.model.tiny_checkpoint import make_tiny_checkpoint

    root = Path(__file__).resolve().parent.parent
    ckpt = make_tiny_checkpoint(
        FLAGS.family,
        root / ".cache" / "bench" / f"{FLAGS.family}-{FLAGS.preset}",
        preset=FLAGS.preset,
    )
    size_mb = sum(f.stat().st_size for f in ckpt.glob("*.safetensors")) / 2**20
    base = _run(BASELINE)
    ours = _run(OURS.format(n=FLAGS.mesh_fsdp), str(ckpt))
    theirs = _run(THEIRS, str(ckpt))
    print(
        json.dumps(
            {
                "preset": FLAGS.preset,
                "family": FLAGS.family,
                "params": ours["params"],
                "checkpoint_mb": round(size_mb, 1),
                "mesh_fsdp": FLAGS.mesh_fsdp,
                "azr_jax_load_s": round(ours["seconds"], 2),
                "azr_jax_peak_rss_mb": round(ours["peak_rss_mb"]),
                "hf_load_s": round(theirs["seconds"], 2),
                "hf_peak_rss_mb": round(theirs["peak_rss_mb"]),
                "imports_only_rss_mb": round(base["peak_rss_mb"]),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
