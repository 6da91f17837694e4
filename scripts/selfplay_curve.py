"""The self-play curve: the real trainer from the warm start, scored on held-out grammar tasks.

    python scripts/selfplay_curve.py                                   # N=20 steps, K=5, paper + novelty
    python scripts/selfplay_curve.py --steps=300 --every=50 --config.azr.batch_size=8  # BENCHMARKS
    python scripts/selfplay_curve.py --steps=2 --every=2 --heldout_programs=16 \
        --config.model_name=WARMSTART_DIR --config.azr.batch_size=2    # shortened (the CI's)

1. Builds (or finds in its cache) the config's warm start and the tasks of its corpus.
2. Draws held-out tasks from `--heldout_seed` with the same grammar, dropping every program
   whose normalised text is in the corpus, and writes them as CRUXEval-format JSONL
   (`OUT/heldout.jsonl`: code, input, output, id), so `scripts/evaluate.py` scores them too.
3. Scores the base model on them (deduction = CRUXEval-O rule, abduction = CRUXEval-I rule,
   through `evals/evaluation.py`; induction through the executor's induction grader).
4. For each reward variant (`paper`: AZR's learnability reward; `novelty`: with the
   `azr.novelty_decay` and `azr.novelty_penalty` options; `diversity`: with the
   `azr.diversity_penalty` option), runs `trainer.train_and_evaluate` for `--steps` steps with
   the held-out file as its periodic evaluation every `--every` steps, then scores induction on
   the final checkpoint.
5. Writes OUT/curve.png and prints, as its last line, JSON: `valid_rate` (first and last 10% of
   steps, per task type), `heldout_accuracy` (initial, final, per task type), `learnable_fraction`
   (valid proposals whose difficulty-rollout solve rate was strictly between 0 and 1),
   `distinct_programs`, `heldout_proposed` (held-out programs the run proposed), `steps`,
   `seconds`, `seed`: the paper variant at top level, every variant under `variants`.
"""

import copy
import io
import json
import re
import time
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from azr_jax.storage import paths

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/default.py", "Run config file[:preset]."
)
flags.DEFINE_integer("steps", 20, "Self-play steps per variant (N).")
flags.DEFINE_integer("every", 5, "Score the held-out set every K steps.")
flags.DEFINE_integer("heldout_programs", 100, "Grammar programs drawn for the held-out set.")
flags.DEFINE_integer("heldout_seed", 1_000_003, "Seed of the held-out set (not the corpus's).")
flags.DEFINE_list("variants", ["paper", "novelty"], "Reward variants to run side by side.")
flags.DEFINE_float("diversity_penalty", 0.5, "azr.diversity_penalty of the diversity variant.")
flags.DEFINE_float("novelty_decay", 1.0, "azr.novelty_decay of the novelty variant.")
# 2026-12-05 (BENCHMARKS.md, 300 steps): decay 1.0 alone slowed the collapse (distinct 0.39 vs
# the paper's 0.20); with penalty 0.5 as well, distinct 0.61.
flags.DEFINE_float("novelty_penalty", 0.5, "azr.novelty_penalty of the novelty variant.")
# 2026-12-02 (BENCHMARKS.md): at 1e-4 greedy held-out answers did not change in 24 steps; 1e-3
# cost abduction 0.10; 3e-4 moved deduction +0.02-0.04 and kept abduction.
flags.DEFINE_float("learning_rate", 3e-4, "rl.learning_rate of the runs.")
# The paper's 8 difficulty rollouts (the default config's 2 keep `make train` short): with 2 a
# task is learnable only at exactly 1 of 2 (learnable_fraction 0.12); with 8, 0.28.
flags.DEFINE_integer("n_rollouts", 8, "azr.n_rollouts of the runs (difficulty rollouts).")
flags.DEFINE_string("out", "runs/selfplay_curve", "Output directory (runs, held-out set, PNG).")
FLAGS = flags.FLAGS

_RATE = re.compile(r"solve rate ([0-9.]+)")
TYPES = ("code_o", "code_i", "code_f")
VARIANTS = ("paper", "diversity", "novelty")


def _write_heldout(tasks, path) -> None:
    lines = []
    for n, t in enumerate(tasks):
        row = {"code": t.triplet.program, "input": t.triplet.input, "output": t.triplet.output}
        lines.append(json.dumps({**row, "id": f"heldout_{n}"}) + "\n")
    paths.write_atomic(path, "".join(lines).encode())


def _score_induction(generator, params, settings, config, tasks, pool) -> float:
    """Greedy induction on the held-out tasks: the program must give the hidden outputs."""
    from azr_jax.run import trainer
    from azr_jax.selfplay import prompts
    from azr_jax.selfplay.step import grade
    from azr_jax.selfplay.tasks import TaskType

    items = [(TaskType.INDUCTION, t.induction) for t in tasks]
    texts = [prompts.solver_prompt(TaskType.INDUCTION, t) for _, t in items]
    gen = trainer.greedy_fn(
        generator,
        params,
        settings.replace(max_new_tokens=config.eval.max_new_tokens),
        config.sampling.batch_size,
    )
    verdicts = grade(pool, items, gen(texts))
    return sum(c for _, c, _ in verdicts) / max(len(verdicts), 1)


def _score(config, model_dir, step, tasks, pool, known=None):
    """{code_o, code_i, code_f} held-out accuracy of a base directory or of a run's step.

    `known`: deduction/abduction accuracies the run's periodic evaluation already measured on
    this checkpoint (then only induction is scored here)."""
    from azr_jax.evals import evaluation
    from azr_jax.run import restore, trainer

    cfg, params, mesh, base, _ = restore.load_policy(config, step, model_dir)
    generator, settings = trainer.make_generator(cfg, mesh, base, config)
    if known is None:
        epool = evaluation.evaluation_pool(workers=max(2, config.executor.workers))
        try:
            summary, _ = trainer.run_evaluation(generator, params, settings, config, epool)
        finally:
            epool.close()
        known = {"code_o": summary["cruxeval_o"], "code_i": summary["cruxeval_i"]}
    induction = _score_induction(generator, params, settings, config, tasks, pool)
    return {**known, "code_f": induction}


def _run_summary(run_dir: Path, steps: int, heldout_programs: set[str]) -> dict:
    from azr_jax.run.records import read_metrics
    from azr_jax.selfplay.diversity import normalize_program
    from azr_jax.selfplay.parsing import parse_proposer_response
    from azr_jax.selfplay.tasks import TaskType

    rows = read_metrics(run_dir / "metrics.jsonl")
    k = max(1, round(0.1 * len(rows)))
    valid = {
        part: {
            t: sum(r[f"{t}/propose/valid_rate"] for r in sel) / len(sel)
            for t in TYPES
            if f"{t}/propose/valid_rate" in rows[0]
        }
        for part, sel in (("first", rows[:k]), ("last", rows[-k:]))
    }
    rates, proposed = [], 0
    for path in sorted((run_dir / "samples").glob("step_*.jsonl")):
        for line in path.read_text().splitlines():
            s = json.loads(line)
            if not s["group"].endswith("propose"):
                continue
            m = _RATE.search(s["verdict"])
            if s["verdict"].startswith("valid") and m:
                rates.append(float(m.group(1)))
            t = s["group"].split("/")[0]
            if t != "code_f":
                p = parse_proposer_response(TaskType(t), s["response"])
                if p.well_formed and normalize_program(p.program) in heldout_programs:
                    proposed += 1
    evals = [
        {"step": r["step"], "code_o": r["eval/cruxeval_o"], "code_i": r["eval/cruxeval_i"]}
        for r in rows
        if "eval/cruxeval_o" in r
    ]
    return {
        "valid_rate": valid,
        "learnable_fraction": (sum(0 < x < 1 for x in rates) / len(rates)) if rates else 0.0,
        "valid_proposals": len(rates),
        "distinct_programs": rows[-1].get("diversity/distinct_programs", 0.0),
        "heldout_proposed": proposed,
        "curve": evals,
        "valid_rate_by_step": [
            {t: r.get(f"{t}/propose/valid_rate") for t in TYPES} | {"step": r["step"]} for r in rows
        ],
        "accuracy_by_step": [
            {t: r.get(f"{t}/solve/accuracy") for t in TYPES} | {"step": r["step"]} for r in rows
        ],
        "steps": len(rows),
    }


def _plot(results: dict, initial: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, res in results.items():
        for t, style in (("code_o", "-"), ("code_i", "--")):
            xs = [0] + [c["step"] for c in res["curve"]]
            ys = [initial[t]] + [c[t] for c in res["curve"]]
            axes[0].plot(xs, ys, style, marker="o", label=f"{name} {t}")
        for t, style in (("code_o", "-"), ("code_i", "--"), ("code_f", ":")):
            rows = res["valid_rate_by_step"]
            axes[1].plot(
                [r["step"] for r in rows], [r[t] for r in rows], style, label=f"{name} {t}"
            )
    axes[0].set(title="held-out accuracy (greedy)", xlabel="self-play step", ylabel="accuracy")
    axes[1].set(title="valid-proposal rate", xlabel="self-play step", ylabel="rate")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.set_ylim(-0.02, 1.02)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    paths.write_atomic(path, png.getvalue())


def main(argv):
    del argv
    from azr_jax.executor.pool import ExecutorPool
    from azr_jax.run import trainer
    from azr_jax.run.config_checks import check_config
    from azr_jax.selfplay.diversity import normalize_program
    from azr_jax.warmstart import corpus
    from azr_jax.warmstart.train import DONE_FILE, Recipe, build_warmstart

    t0 = time.perf_counter()
    unknown = sorted(set(FLAGS.variants) - set(VARIANTS))
    if unknown:
        raise app.UsageError(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    base_config = _CONFIG.value
    out = paths.makedirs(FLAGS.out)  # a local directory or a gs:// URL
    if base_config.model_name:  # a built warm start: its own record says what its corpus was
        base_dir = Path(base_config.model_name)
        info = json.loads((base_dir / DONE_FILE).read_text())["recipe"]
        recipe = Recipe(**{**info, "banned_modules": tuple(info["banned_modules"])})
    else:
        recipe = trainer.warmstart_recipe(base_config)
        base_dir = build_warmstart(recipe, base_config.warmstart.cache_dir)
    with ExecutorPool(workers=2, timeout_s=5.0, memory_mb=512, hash_seeds=[101, 202]) as pool:
        train_tasks = corpus.build_tasks(pool, recipe.seed, recipe.n_programs, recipe.num_inputs)
        held = corpus.heldout_tasks(
            pool, FLAGS.heldout_seed, FLAGS.heldout_programs, recipe.num_inputs, train_tasks
        )
        heldout_path = out / "heldout.jsonl"
        _write_heldout(held, heldout_path)
        heldout_programs = {normalize_program(t.triplet.program) for t in held}

        def configured(name: str):
            c = copy.deepcopy(base_config)
            c.model_name = str(base_dir)
            c.output_dir = str(out / name)
            c.num_steps = FLAGS.steps
            c.rl.learning_rate = FLAGS.learning_rate
            c.azr.n_rollouts = FLAGS.n_rollouts
            c.eval.every_steps = FLAGS.every
            c.eval.cruxeval_path = str(heldout_path)
            c.eval.max_records = 0
            c.checkpoint.interval_steps = FLAGS.steps
            c.azr.diversity_penalty = FLAGS.diversity_penalty if name == "diversity" else 0.0
            c.azr.novelty_decay = FLAGS.novelty_decay if name == "novelty" else 0.0
            c.azr.novelty_penalty = FLAGS.novelty_penalty if name == "novelty" else 0.0
            return c

        first = configured(FLAGS.variants[0])
        check_config(first, num_devices=1)
        initial = _score(first, str(base_dir), None, held, pool)
        results = {}
        for name in FLAGS.variants:
            c = configured(name)
            tv = time.perf_counter()
            trainer.train_and_evaluate(c)
            res = _run_summary(out / name, FLAGS.steps, heldout_programs)
            last = res["curve"][-1] if res["curve"] else None
            known = None
            if last is not None and last["step"] == FLAGS.steps:
                known = {"code_o": last["code_o"], "code_i": last["code_i"]}
            final = _score(c, None, -1, held, pool, known)
            res["heldout_accuracy"] = {"initial": initial, "final": final}
            res["seconds"] = time.perf_counter() - tv
            results[name] = res
    _plot(results, initial, out / "curve.png")
    top = results[FLAGS.variants[0]]
    summary = {
        "valid_rate": top["valid_rate"],
        "heldout_accuracy": top["heldout_accuracy"],
        "learnable_fraction": top["learnable_fraction"],
        "distinct_programs": top["distinct_programs"],
        "heldout_proposed": top["heldout_proposed"],
        "steps": FLAGS.steps,
        "seconds": time.perf_counter() - t0,
        "seed": base_config.seed,
        "heldout_seed": FLAGS.heldout_seed,
        "heldout_n": len(held),
        "corpus_tasks": len(train_tasks),
        "base_model": str(base_dir),
        "png": str(out / "curve.png"),
        "variants": {
            name: {k: v for k, v in r.items() if k not in ("valid_rate_by_step",)}
            for name, r in results.items()
        },
    }
    paths.write_atomic(out / "curve.json", json.dumps(summary, indent=2).encode())
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
