"""The paper's evaluation table for a policy or a responses file, from the run's config.

`config.eval.suite="paper"` (or `config.eval.benchmarks="humaneval_plus,aime24,..."`) picks the
benchmarks, read from `config.eval.data_dir` (file names: `azr_jax/evals/benchmarks.py`).
Greedy pass@1 when `eval.greedy`; with `eval.num_samples=n`, n samples per problem at
`eval.temperature` / `eval.top_p` give pass@k for every k of `eval.pass_k` up to n. Code runs in
a code-benchmark executor pool (LiveCodeBench: `eval.test_timeout_s` per test; EvalPlus: its
own limit per test, `eval.evalplus_*`; canonical solutions: `eval.reference_timeout_s`; 4 GiB
of memory per run at least, EvalPlus's limit), math is graded in a
math-verify child process (`eval.math_timeout_s`). `write_outputs` lays the results out under
`OUTPUT_DIR/eval/`: per-sample verdicts (JSONL), the summary (JSON), the Markdown table and,
given another run's summary, the PNG comparing the two.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import tqdm

from azr_jax.evals import benchmarks as bm
from azr_jax.evals import code_grading, evalplus_grading, generation, report, suite
from azr_jax.parallel import distributed as dist
from azr_jax.storage import paths, staging


def selected(config) -> tuple[str, ...]:
    """The paper benchmarks the config asks for (empty: none)."""
    return bm.select(config.eval.suite, config.eval.benchmarks)


def pass_ks(config) -> tuple[int, ...]:
    """`eval.pass_k` ("1,5,10") as integers."""
    return tuple(int(k) for k in str(config.eval.pass_k).split(",") if k.strip())


def evaluate_paper(
    config, generator=None, params=None, settings=None, responses_path: str | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Generates (or reads) the responses, grades them, summarises (every host returns all).

    Args:
      generator, params, settings: the policy (`trainer.make_generator`); unused with
        `responses_path`.
      responses_path: score this JSONL file of responses instead (`suite.read_responses`);
        with no benchmark selected, every benchmark named in the file is scored.
    """
    names = selected(config)
    rows = None
    if responses_path:
        rows = suite.read_responses(staging.stage(responses_path), names)
        names = names or tuple(n for n in bm.PAPER_SUITE if any(r["benchmark"] == n for r in rows))
    if not names:
        raise ValueError(
            "no benchmarks: set --config.eval.suite=paper or --config.eval.benchmarks=..."
        )
    benches, files = suite.load_suite(
        names,
        staging.stage(config.eval.data_dir),  # a gs:// directory: copied once per host
        config.eval.max_problems,
        config.eval.livecodebench_dates,
    )
    show = dist.is_writer()
    if rows is None:
        rows = _generate(config, benches, generator, params, settings, show)
    needs_code = any(bm.BENCHMARKS[r["benchmark"]].kind != "math" for r in rows)
    pool = (
        code_grading.code_pool(
            workers=max(2, config.executor.workers),
            # the cap, and the canonical solutions' limit; each test run sets its own below
            test_timeout_s=max(config.eval.test_timeout_s, config.eval.reference_timeout_s),
            memory_mb=max(evalplus_grading.EVALPLUS_MEMORY_MB, config.executor.memory_mb),
        )
        if needs_code
        else None
    )
    bar = tqdm.tqdm(desc="grading (runs)", unit="run", disable=not show, dynamic_ncols=True)
    try:
        verdicts = suite.grade(
            benches,
            rows,
            pool,
            math_timeout_s=config.eval.math_timeout_s,
            progress=bar.update,
            min_time_limit_s=config.eval.evalplus_min_time_limit_s,
            time_limit_factor=config.eval.evalplus_time_limit_factor,
            lcb_timeout_s=config.eval.test_timeout_s,
        )
    finally:
        bar.close()
        if pool is not None:
            pool.close()
    return suite.summarize(benches, verdicts, pass_ks(config), files), verdicts


def _generate(config, benches, generator, params, settings, show) -> list[dict]:
    if generator is None:
        raise ValueError("evaluate_paper needs a policy (generator, params) or --responses")
    prompts = suite.suite_prompts(benches)
    texts = [p for _, _, p in prompts]
    settings = settings.replace(max_new_tokens=config.eval.max_new_tokens)
    runs = []
    if config.eval.greedy:
        runs.append((suite.GREEDY, settings.replace(greedy=True, n=1)))
    if config.eval.num_samples > 0:
        sampled = settings.replace(
            greedy=False,
            n=config.eval.num_samples,
            temperature=config.eval.temperature,
            top_p=config.eval.top_p,
        )
        runs.append((0, sampled))
    rows = []
    for base, s in runs:
        what = "greedy" if base == suite.GREEDY else f"{s.n} samples"
        with tqdm.tqdm(
            total=len(texts), desc=f"generating ({what})", unit="prompt", disable=not show
        ) as bar:
            out = generation.generate_responses(
                generator,
                params,
                s,
                texts,
                config.sampling.batch_size,
                seed=config.seed,
                progress=bar.update,
            )
        rows += suite.model_responses(prompts, out, benches, base)
    return rows


def write_outputs(
    out_dir: str | Path,
    name: str,
    summary: dict[str, Any],
    verdicts: list[dict],
    label: str,
    compare_with: str | None = None,
) -> str:
    """Writes NAME.paper.jsonl, NAME.summary.json, NAME.md (and NAME.compare.png); returns the
    Markdown tables (this run's row, after `compare_with`'s when given; then what each row
    evaluated). `out_dir` and `compare_with` may be gs:// URLs."""
    out_dir = paths.run_path(out_dir)
    paths.write_atomic(
        out_dir / f"{name}.paper.jsonl", "".join(json.dumps(v) + "\n" for v in verdicts).encode()
    )
    paths.write_atomic(out_dir / f"{name}.summary.json", (json.dumps(summary) + "\n").encode())
    rows = {label: summary}
    if compare_with:
        other = report.load_summary(staging.stage(compare_with))
        other_label = str(other.get("model") or Path(compare_with).name.split(".")[0])
        if other_label == label:
            other_label += " (compared)"
        rows = {other_label: other, label: summary}
        with tempfile.TemporaryDirectory() as tmp:
            report.plot_comparison(rows, Path(tmp) / "compare.png")
            paths.upload(Path(tmp) / "compare.png", out_dir / f"{name}.compare.png")
    table = report.markdown_table(rows) + "\n\n" + report.evaluated_table(rows)
    paths.write_atomic(out_dir / f"{name}.md", (table + "\n").encode())
    return table
