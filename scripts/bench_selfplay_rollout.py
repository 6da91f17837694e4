"""The rollout part of one self-play step: one streaming queue vs phase by phase, in one run.

    python scripts/bench_selfplay_rollout.py [--steps_timed 2 --azr_batch 4]

Sets up the default run (configs/default.py: the tiny model, CPU, the sandboxed executor) in a
temporary directory, then times `trainer.rollouts` for the same step (same buffers, same
params, so the same requests) with `engine.streaming` on and off, alternating, best of
`repeats` each after a warm-up (compilation excluded). Phase by phase: propose, then solve, then
the difficulty rollouts, each decoding to its longest row, host checks overlapping the next
phase as in step.run_step. Streaming: one queue (selfplay/streaming.py). The last line is JSON
with streaming_s, phased_s, ratio, and the per-phase token counts.
"""

import importlib.util
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from absl import app, flags

flags.DEFINE_integer("azr_batch", 4, "Proposals and solves per (task type, role).")
flags.DEFINE_integer("max_new_tokens", 64, "Rollout length cap.")
flags.DEFINE_integer("repeats", 2, "Timed runs per side (the best is kept).")
FLAGS = flags.FLAGS


def main(_):
    from azr_jax.run import trainer
    from azr_jax.selfplay import step as selfplay

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("default_config", root / "configs/default.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    config = mod.get_config()
    config.output_dir = tempfile.mkdtemp(prefix="bench_selfplay_")
    config.azr.batch_size = FLAGS.azr_batch
    config.sampling.max_new_tokens = FLAGS.max_new_tokens
    run = trainer.setup(config)
    run.policy.params, run.policy.step = run.state.params, 0
    share = selfplay.HostShare()
    best, metrics = {}, {}
    with ThreadPoolExecutor(1, thread_name_prefix="azr-host") as host:
        for i in range(FLAGS.repeats + 1):
            for name, on in (("phased", False), ("streaming", True)):
                config.engine.streaming = on
                t = time.perf_counter()
                result = trainer.rollouts(run, 0, host, share)
                took = time.perf_counter() - t
                if i:  # the first round compiles
                    best[name] = min(best.get(name, float("inf")), took)
                metrics[name] = result.metrics
    run.pool.close()
    s = metrics["streaming"]
    out = dict(
        azr_batch=FLAGS.azr_batch, task_types=list(config.azr.task_types),
        max_new_tokens=FLAGS.max_new_tokens, slots=config.engine.slots or config.sampling.batch_size,
        chunk=config.engine.chunk, streaming_s=best["streaming"], phased_s=best["phased"],
        ratio=best["phased"] / best["streaming"],
        tokens={k.split("/")[1]: v for k, v in s.items() if k.startswith("tokens/")},
        valid_proposals=sum(v for k, v in s.items() if k.endswith("valid_rate")),
        streaming_device_wait_s=s["time/device_wait_s"],
        phased_device_wait_s=metrics["phased"]["time/device_wait_s"],
        load_1min=os.getloadavg()[0], cpu_count=os.cpu_count(),
    )  # fmt: skip
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    app.run(main)
