"""The rollout part of one self-play step: one streaming queue vs phase by phase, in one run.

    python scripts/bench_selfplay_rollout.py [--steps_timed 2 --azr_batch 4]

Sets up the default run (configs/default.py: the warm-started tiny model, CPU, the sandboxed
executor) in a temporary directory, then times `trainer.rollouts` for the same step (same
buffers, same params) three ways, alternating, best of `repeats` each after a warm-up
(compilation excluded):
  streaming      one queue on the slot engine (selfplay/streaming.py): the trainer's default.
  phased         phase by phase on the same engine (`engine.streaming=False`): propose, then
                 solve, then the difficulty rollouts, host checks overlapping the next phase as
                 in step.run_step. Same requests and keys as streaming, so the same tokens.
  phased_static  phase by phase on the static sampler (`engine.enabled=False`): what a step did
                 before the engine, each call padded to a power-of-two batch and decoding until
                 its longest row ends. Its keys are per call, so its samples (and the number of
                 valid proposals, hence of rollouts) differ: its token counts are printed too.
The last line is JSON with streaming_s, phased_s, phased_static_s, ratio (phased / streaming),
ratio_vs_static (phased_static / streaming) and the per-phase token counts of each side.
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
flags.DEFINE_integer("chunk", 0, "Engine decode steps per device call (0: the config's).")
flags.DEFINE_integer("n_rollouts", 0, "Difficulty rollouts per valid proposal (0: the config's).")
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
    config.engine.chunk = FLAGS.chunk or config.engine.chunk
    config.azr.n_rollouts = FLAGS.n_rollouts or config.azr.n_rollouts
    run = trainer.setup(config)
    run.policy.params, run.policy.step = run.state.params, 0
    share = selfplay.HostShare()
    best, metrics = {}, {}
    engine = run.policy.generator.engine
    sides = (("phased_static", False, None), ("phased", False, engine), ("streaming", True, engine))
    with ThreadPoolExecutor(1, thread_name_prefix="azr-host") as host:
        for i in range(FLAGS.repeats + 1):
            for name, on, eng in sides:
                config.engine.streaming = on
                run.policy.generator.engine = eng  # None: the static sampler
                t = time.perf_counter()
                result = trainer.rollouts(run, 0, host, share)
                took = time.perf_counter() - t
                if i:  # the first round compiles
                    best[name] = min(best.get(name, float("inf")), took)
                metrics[name] = result.metrics
    run.policy.generator.engine = engine
    run.pool.close()
    s = metrics["streaming"]

    def tokens(m):
        return {k.split("/")[1]: v for k, v in m.items() if k.startswith("tokens/")}

    def valid(m):
        return sum(v for k, v in m.items() if k.endswith("valid_rate"))

    out = dict(
        azr_batch=FLAGS.azr_batch, n_rollouts=config.azr.n_rollouts, task_types=list(config.azr.task_types),
        max_new_tokens=FLAGS.max_new_tokens, slots=config.engine.slots or config.sampling.batch_size,
        chunk=config.engine.chunk, streaming_s=best["streaming"], phased_s=best["phased"],
        phased_static_s=best["phased_static"],
        ratio=best["phased"] / best["streaming"],
        ratio_vs_static=best["phased_static"] / best["streaming"],
        tokens=tokens(s), valid_proposals=valid(s),
        static_tokens=tokens(metrics["phased_static"]),
        static_valid_proposals=valid(metrics["phased_static"]),
        streaming_device_wait_s=s["time/device_wait_s"],
        phased_device_wait_s=metrics["phased"]["time/device_wait_s"],
        load_1min=os.getloadavg()[0], cpu_count=os.cpu_count(),
    )  # fmt: skip
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    app.run(main)
