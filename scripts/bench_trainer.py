"""Seconds per self-play step by phase, for the tiny default and the `small` preset.

    python scripts/bench_trainer.py --preset tiny --steps 4
    python scripts/bench_trainer.py --preset small --steps 3

Runs the real trainer (scripts/train.py's `train_and_evaluate`) in a fresh run directory and
reports the mean over steps 2.. (step 1 includes compilation) of each phase: propose, solve and
estimate are device sampling; validate and grade run on the host thread while the device samples
(their `_wait` parts are the time the device sat idle waiting for them); update is the
policy-gradient step. Last line: JSON.
"""

import importlib.util
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags

flags.DEFINE_enum(
    "preset", "tiny", ["tiny", "small"], "Model size (azr_jax.model.tiny_checkpoint.PRESETS)."
)
flags.DEFINE_integer("steps", 4, "Self-play steps (the first is excluded from the means).")
flags.DEFINE_integer("batch", 4, "azr.batch_size: tasks per (task type, role).")
flags.DEFINE_integer("new_tokens", 64, "sampling.max_new_tokens.")
FLAGS = flags.FLAGS
ROOT = Path(__file__).resolve().parent.parent
PHASES = (
    "propose",
    "validate",
    "validate_wait",
    "solve",
    "grade",
    "grade_wait",
    "estimate",
    "estimate_grade",
    "update",
    "device_wait",
    "step",
)


def main(argv):
    del argv
    from azr_jax.model.tiny_checkpoint import make_tiny_checkpoint
    from azr_jax.run.trainer import train_and_evaluate

    spec = importlib.util.spec_from_file_location("default", ROOT / "configs" / "default.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    config = mod.get_config()
    config.model.base = "random"  # the trainer's own cost, on the tiny random model
    with tempfile.TemporaryDirectory() as tmp:
        if FLAGS.preset == "small":
            config.model_name = str(
                make_tiny_checkpoint("qwen2", Path(tmp) / "small", preset="small")
            )
        config.output_dir = str(Path(tmp) / "run")
        config.num_steps = FLAGS.steps
        config.azr.batch_size = FLAGS.batch
        config.sampling.max_new_tokens = FLAGS.new_tokens
        config.checkpoint.interval_steps = 1000
        t = time.perf_counter()
        train_and_evaluate(config)
        total = time.perf_counter() - t
        rows = [
            json.loads(x) for x in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()
        ]
    steady = rows[1:] or rows
    out = {
        "preset": FLAGS.preset,
        "steps": FLAGS.steps,
        "batch_per_group": FLAGS.batch,
        "new_tokens": FLAGS.new_tokens,
        "total_s": round(total, 1),
        "first_step_s": round(rows[0]["time/step_s"], 2),
    }
    for p in PHASES:
        vals = [r.get(f"time/{p}_s", 0.0) for r in steady]
        out[f"{p}_s"] = round(float(np.mean(vals)), 3)
    out["device_wait_frac"] = round(out["device_wait_s"] / out["step_s"], 4)
    print(json.dumps(out))


if __name__ == "__main__":
    app.run(main)
