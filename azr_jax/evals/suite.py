"""The paper's evaluation table: load the benchmarks, grade responses, summarise.

A response is graded as a *sample* of its problem: `sample = -1` is the greedy answer (pass@1,
the paper's figure), `0..n-1` are draws at a temperature (pass@k by the unbiased estimator).
Responses come from the model (`generation.py`) or from a file (`read_responses`, EvalPlus's
way: score outputs made anywhere). A problem with no response scores 0.

Multi-host: every host holds every response (generation is one SPMD program); `grade` takes
this host's share of the responses (`distributed.my_share` of a fixed shuffle, so that code
and math mix on every host), grades it and gathers every host's verdicts
(`distributed.gather_shares`), so each host returns the whole list, in order.
"""

from __future__ import annotations

import ast
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from azr_jax.evals import benchmarks as bm
from azr_jax.evals import code_grading, evalplus_grading, math_grading, paper_prompts, passk
from azr_jax.executor.pool import ExecutorPool
from azr_jax.parallel import distributed
from azr_jax.selfplay.parsing import parse_solver_response
from azr_jax.selfplay.tasks import TaskType

GREEDY = -1
_MAX_ANSWER = 2000


def load_suite(
    names: Sequence[str], data_dir: str | Path, max_problems: int = 0, lcb_dates: str = ""
) -> tuple[dict[str, list[dict]], dict[str, dict[str, Any]]]:
    """Each benchmark's records (every file is checked before anything is generated).

    Args:
      max_problems: keep the first N of each benchmark (0: all), after the date window.
      lcb_dates: LiveCodeBench's contest-date window (`benchmarks.within_dates`).

    Returns:
      (records per benchmark, what was read per benchmark: `file`, `sha256`, `read` (records
      read), `skipped` (unreadable records, `file:line: why` each), `kept` (after the date
      window and `max_problems`)), the second for `summarize`.
    """
    missing = []
    for name in names:
        try:
            bm.benchmark_path(name, data_dir)
        except FileNotFoundError as e:
            missing.append(str(e))
    if missing:
        raise FileNotFoundError("\n".join(missing))
    out, files = {}, {}
    for name in names:
        read = bm.load_file(name, data_dir)
        records = read.records
        if name == "livecodebench":
            records = bm.within_dates(records, lcb_dates)
            if not records:
                raise ValueError(f"livecodebench: no problem within {lcb_dates!r}")
        out[name] = records[:max_problems] if max_problems else records
        files[name] = {
            "file": read.path.name,
            "sha256": read.sha256,
            "read": len(read.records),
            "skipped": list(read.skipped),
            "kept": len(out[name]),
        }
    return out, files


def suite_prompts(suite: dict[str, list[dict]]) -> list[tuple[str, int, str]]:
    """(benchmark, record index, prompt) for every problem, benchmark by benchmark."""
    return [
        (name, i, paper_prompts.benchmark_prompt(name, bm.BENCHMARKS[name].kind, record))
        for name, records in suite.items()
        for i, record in enumerate(records)
    ]


def read_responses(path: str | Path, suite_names: Sequence[str] = ()) -> list[dict]:
    """Responses from a JSONL file, one line per response.

    Each line: `benchmark` (a name from `benchmarks.PAPER_SUITE`), `task_id` (the record's id:
    EvalPlus `task_id`, LiveCodeBench `question_id`, the math file's id or line index) and
    either `response` (the model's full text, graded as the model's would be) or `solution`
    (code as is; for math, an answer text, \\boxed or bare). Several lines for one task are
    samples (pass@k); a task with one line is its greedy answer.

    Raises:
      FileNotFoundError, ValueError: the file is missing or a line is malformed (named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--responses: {path} not found (a JSONL file of responses)")
    rows = []
    with path.open(encoding="utf-8") as lines:
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(row, dict) or row.get("benchmark") not in bm.BENCHMARKS:
                raise ValueError(
                    f"{where}: needs a 'benchmark' field, one of {list(bm.PAPER_SUITE)}"
                )
            if "task_id" not in row or not any(
                isinstance(row.get(k), str) for k in ("response", "solution")
            ):
                raise ValueError(f"{where}: needs 'task_id' and a 'response' or 'solution' text")
            if suite_names and row["benchmark"] not in suite_names:
                continue
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no responses for the benchmarks asked for")
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        counts[row["benchmark"], str(row["task_id"])] += 1
    out, seen = [], defaultdict(int)
    for row in rows:
        key = (row["benchmark"], str(row["task_id"]))
        sample = GREEDY if counts[key] == 1 else seen[key]
        seen[key] += 1
        out.append(
            {
                "benchmark": key[0],
                "task_id": key[1],
                "sample": sample,
                "text": row.get("response", row.get("solution")),
                "raw": "solution" in row and "response" not in row,
            }
        )
    return out


def model_responses(
    prompts: Sequence[tuple[str, int, str]],
    texts: Sequence[Sequence[str]],
    suite: dict[str, list[dict]],
    sample_base: int,
) -> list[dict]:
    """Responses as `grade` takes them, from `generation.generate_responses` output.

    Args:
      sample_base: GREEDY for greedy texts (one per prompt), 0 for n sampled texts.
    """
    out = []
    for (name, i, _), group in zip(prompts, texts, strict=True):
        for j, text in enumerate(group):
            out.append(
                {
                    "benchmark": name,
                    "task_id": suite[name][i]["id"],
                    "sample": GREEDY if sample_base == GREEDY else j,
                    "text": text,
                    "raw": False,
                }
            )
    return out


def grade(
    suite: dict[str, list[dict]],
    responses: Sequence[dict],
    code_pool: ExecutorPool | None,
    *,
    math_timeout_s: int = 5,
    wave: int = 16,
    progress: Callable[[int], None] | None = None,
    min_time_limit_s: float = evalplus_grading.EVALPLUS_MIN_TIME_LIMIT_S,
    time_limit_factor: float = evalplus_grading.EVALPLUS_TIME_LIMIT_FACTOR,
    lcb_timeout_s: float | None = None,
) -> list[dict[str, Any]]:
    """Grades this host's share of `responses`; returns every host's verdicts, in order.

    `min_time_limit_s` and `time_limit_factor` make EvalPlus's per-test time limit
    (`evalplus_grading.time_limit_s`); `lcb_timeout_s` is LiveCodeBench's (None: the pool's).

    Each verdict: `benchmark`, `task_id`, `sample`, `correct`, `verdict`, `answer` (the code
    or boxed answer graded, capped), and `base` for EvalPlus (the base-tests-only result).

    Raises:
      ValueError: a response names a task the benchmark's file does not hold, or a code
        benchmark is asked for without a code pool.
    """
    index = {name: {r["id"]: i for i, r in enumerate(records)} for name, records in suite.items()}
    for r in responses:
        if r["benchmark"] not in suite:
            raise ValueError(f"a response is for {r['benchmark']}, which is not being evaluated")
        if r["task_id"] not in index[r["benchmark"]]:
            raise ValueError(
                f"{r['benchmark']}: no task {r['task_id']!r} in its file (ids look like "
                f"{next(iter(index[r['benchmark']]))!r})"
            )
    # A fixed shuffle before the split, so each host gets a mix of cheap (math) and dear (code)
    # responses; undone after the gather.
    order = np.random.default_rng(0).permutation(len(responses))
    mine = [responses[i] for i in order[distributed.my_share(len(responses))]]
    verdicts: list[dict | None] = [None] * len(mine)
    by_bench: dict[str, list[int]] = defaultdict(list)
    for k, r in enumerate(mine):
        by_bench[r["benchmark"]].append(k)
    math_items: list[tuple[int, dict, dict]] = []  # every math benchmark in one child
    for name, ks in by_bench.items():
        kind = bm.BENCHMARKS[name].kind
        records = suite[name]
        if kind == "math":
            math_items += [(k, records[index[name][mine[k]["task_id"]]], mine[k]) for k in ks]
            continue
        if code_pool is None:
            raise ValueError(f"{name} needs an executor pool (code_grading.code_pool())")
        items = [(index[name][mine[k]["task_id"]], mine[k]) for k in ks]
        limits = (min_time_limit_s, time_limit_factor, lcb_timeout_s)
        got = _grade_code(name, kind, records, items, code_pool, wave, progress, limits)
        verdicts = _place(verdicts, mine, ks, got)
    if math_items:
        got = _grade_math([(rec, r) for _, rec, r in math_items], math_timeout_s)
        verdicts = _place(verdicts, mine, [k for k, _, _ in math_items], got)
        if progress is not None:
            progress(len(math_items))
    gathered = distributed.gather_shares(verdicts)
    out: list[dict] = [None] * len(responses)  # type: ignore[list-item]
    for position, verdict in zip(order, gathered, strict=True):
        out[position] = verdict
    return out


def _place(verdicts: list, mine: Sequence[dict], ks: Sequence[int], got: Sequence[dict]) -> list:
    for k, v in zip(ks, got, strict=True):
        r = mine[k]
        verdicts[k] = {
            "benchmark": r["benchmark"],
            "task_id": r["task_id"],
            "sample": r["sample"],
            **v,
        }
    return verdicts


def _code_of(response: dict) -> tuple[str | None, str]:
    if response["raw"]:
        code = response["text"]
    else:
        parsed = parse_solver_response(TaskType.INDUCTION, response["text"])
        if not parsed.well_formed:
            return None, f"malformed: {parsed.error}"
        code = parsed.answer
    try:  # parsing only, in this process: a clear verdict without a run
        ast.parse(code)
    except Exception as e:
        return None, f"syntax error: {type(e).__name__}: {str(e)[:100]}"
    return code, ""


def _grade_code(name, kind, records, items, pool, wave, progress, limits) -> list[dict]:
    out: list[dict | None] = [None] * len(items)
    candidates, owners = [], []
    for j, (i, response) in enumerate(items):
        code, verdict = _code_of(response)
        if code is None:
            out[j] = {"correct": False, "verdict": verdict, "answer": None}
            if kind == "evalplus":
                out[j]["base"] = False
        else:
            candidates.append((i, code))
            owners.append(j)
    if kind == "evalplus":
        needed = sorted({i for i, _ in candidates})
        expected_of = dict(
            zip(
                needed,
                evalplus_grading.evalplus_expected(
                    pool, [records[i] for i in needed], progress, benchmark=name
                ),
                strict=True,
            )
        )
        problems = list(records)
        expected = [expected_of.get(i, []) for i in range(len(records))]
        got = evalplus_grading.grade_evalplus(
            pool, name, problems, expected, candidates, wave, progress, *limits[:2]
        )
        for j, (_, code), g in zip(owners, candidates, got, strict=True):
            out[j] = {
                "correct": g["plus"],
                "base": g["base"],
                "verdict": g["verdict"],
                "answer": code[:_MAX_ANSWER],
                "dropped_tests": g["dropped_tests"],
            }
    else:
        got = code_grading.grade_livecodebench(
            pool, records, candidates, wave, progress, timeout_s=limits[2]
        )
        for j, (_, code), g in zip(owners, candidates, got, strict=True):
            out[j] = {"correct": g["passed"], "verdict": g["verdict"], "answer": code[:_MAX_ANSWER]}
    return out  # type: ignore[return-value]


def _grade_math(items, timeout_s) -> list[dict]:
    """items: (record, response) pairs."""
    out: list[dict | None] = [None] * len(items)
    golds, answers, owners = [], [], []
    for j, (record, response) in enumerate(items):
        answer = math_grading.last_boxed(response["text"])
        if answer is None and response["raw"]:
            answer = response["text"].strip()
        if not answer:
            out[j] = {"correct": False, "verdict": "no \\boxed{} answer", "answer": None}
            continue
        golds.append(record["answer"])
        answers.append(answer)
        owners.append(j)
    for j, answer, v in zip(
        owners, answers, math_grading.verify_answers(golds, answers, timeout_s), strict=True
    ):
        verdict = "correct" if v["ok"] else v.get("error", "wrong")
        out[j] = {"correct": v["ok"], "verdict": verdict, "answer": answer[:_MAX_ANSWER]}
    return out  # type: ignore[return-value]


def summarize(
    suite: dict[str, list[dict]],
    verdicts: Sequence[dict],
    ks: Sequence[int] = (1,),
    files: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The report's numbers (fractions in [0, 1]) and what was evaluated.

    Keys: one per benchmark (greedy pass@1 when greedy answers were graded, else the sampled
    pass@1), `<name>/base` (EvalPlus base tests only), `<name>/dropped_tests` (EvalPlus tests
    left out because the canonical solution's run failed), `<name>/pass@k` for every k in `ks`
    that the sample count allows, `<name>/n` (problems scored), `code_avg`, `math_avg` (means
    over the benchmarks present) and `overall_avg` (the mean of the two averages, as the
    paper's AVG; one of them alone when only one kind was evaluated). With `files`
    (`load_suite`'s second value): `<name>/skipped` (unreadable records; the first 20 as
    `file:line: why` in `<name>/skipped_lines`), `<name>/file` and `<name>/sha256` (the file
    graded).
    """
    summary: dict[str, Any] = {}
    for name, records in suite.items():
        mine = [v for v in verdicts if v["benchmark"] == name]
        greedy = {v["task_id"]: v for v in mine if v["sample"] == GREEDY}
        sampled: dict[str, list[dict]] = defaultdict(list)
        for v in mine:
            if v["sample"] != GREEDY:
                sampled[v["task_id"]].append(v)
        ids = [r["id"] for r in records]
        summary[f"{name}/n"] = len(ids)
        if greedy or not sampled:
            summary[name] = sum(bool(greedy.get(i, {}).get("correct")) for i in ids) / len(ids)
            if bm.BENCHMARKS[name].kind == "evalplus":
                summary[f"{name}/base"] = sum(
                    bool(greedy.get(i, {}).get("base")) for i in ids
                ) / len(ids)
        if files and name in files:
            summary[f"{name}/skipped"] = len(files[name]["skipped"])
            summary[f"{name}/skipped_lines"] = files[name]["skipped"][:20]  # file:line: why
            summary[f"{name}/file"] = files[name]["file"]
            summary[f"{name}/sha256"] = files[name]["sha256"]
        if bm.BENCHMARKS[name].kind == "evalplus":  # tests whose reference run failed
            dropped: dict[str, int] = {}
            for v in mine:  # the same per problem; malformed answers carry none
                dropped[v["task_id"]] = max(dropped.get(v["task_id"], 0), v.get("dropped_tests", 0))
            summary[f"{name}/dropped_tests"] = sum(dropped.values())
        if sampled:
            counts = [
                (len(sampled.get(i, [])), sum(v["correct"] for v in sampled.get(i, [])))
                for i in ids
            ]
            n_min = min(n for n, _ in counts if n > 0)  # a problem with none scores 0
            for k in sorted(set(ks) | {1}):
                if 1 <= k <= n_min:
                    value = sum(passk.pass_at_k(n, c, k) if n else 0.0 for n, c in counts)
                    summary[f"{name}/pass@{k}"] = value / len(counts)
            summary.setdefault(name, summary[f"{name}/pass@1"])
    code = [summary[n] for n in bm.CODE_BENCHMARKS if n in summary]
    math = [summary[n] for n in bm.MATH_BENCHMARKS if n in summary]
    if code:
        summary["code_avg"] = sum(code) / len(code)
    if math:
        summary["math_avg"] = sum(math) / len(math)
    avgs = [summary[k] for k in ("code_avg", "math_avg") if k in summary]
    if avgs:
        summary["overall_avg"] = sum(avgs) / len(avgs)
    return summary
