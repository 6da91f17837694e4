"""Grading solver answers (training rewards) and scoring benchmarks by their own rule.

Training (type-strict, no model text is ever run as code where a value is expected):
  deduction  `grade_deduction`: the answer is parsed with the literal parser in this process and
             compared with the gold output by `literals.strict_equal`. Nothing runs.
  abduction  `grade_abduction`: the answer must be a literal argument list (parsed here, and
             again by the literal parser inside the child); `f(answer)` runs in the sandbox and
             its output is compared here, type-strictly, with the gold output.
  induction  `grade_induction`: the answered program is checked like a proposal (bans, main
             renamed to `f`) and must give each hidden pair's output, type-strictly.

Evaluation (`crux_equal`, `score_cruxeval`): CRUXEval scores with Python `==`. Two literals are
compared here (safe on plain values); anything else is compared inside the sandbox.
"""

from __future__ import annotations

from collections.abc import Sequence

from azr_jax.executor.literals import (
    MAX_OUTPUT_CHARS,
    LiteralError,
    parse_call_args,
    parse_literal,
    strict_equal,
)
from azr_jax.executor.pool import ExecutorPool, Job
from azr_jax.executor.program import check_input, prepare_program


def grade_deduction(answer_text: str, gold_output_repr: str) -> bool:
    """True when the answer is a literal type-strictly equal to the gold output."""
    try:
        answer = parse_literal(answer_text, max_chars=MAX_OUTPUT_CHARS)
        gold = parse_literal(gold_output_repr)
    except LiteralError:
        return False
    return strict_equal(answer, gold)


def grade_abduction(
    pool: ExecutorPool, code: str, answer_input_text: str, gold_output_repr: str
) -> bool:
    """True when `f(answer)` (answer: literal arguments) gives the gold output."""
    return grade_abduction_many(pool, [(code, answer_input_text, gold_output_repr)])[0]


def grade_abduction_many(pool: ExecutorPool, items: Sequence[tuple[str, str, str]]) -> list[bool]:
    """Batch of (code, answer_input_text, gold_output_repr)."""
    verdicts = [False] * len(items)
    jobs, owners, golds = [], [], []
    for i, (code, answer, gold_text) in enumerate(items):
        try:
            args, kwargs = parse_call_args(answer, max_chars=MAX_OUTPUT_CHARS)
            gold = parse_literal(gold_text)
        except LiteralError:
            continue
        jobs.append(Job(code, _canonical_args(args, kwargs), literal_args=True))
        owners.append(i)
        golds.append(gold)
    for i, gold, result in zip(owners, golds, pool.run_many(jobs), strict=True):
        verdicts[i] = result.status == "ok" and strict_equal(result.value, gold)
    return verdicts


def grade_induction(pool: ExecutorPool, answer_code: str, pairs: Sequence[tuple[str, str]]) -> bool:
    """True when the answered program maps every hidden input to its output."""
    return grade_induction_many(pool, [(answer_code, pairs)])[0]


def grade_induction_many(
    pool: ExecutorPool, items: Sequence[tuple[str, Sequence[tuple[str, str]]]]
) -> list[bool]:
    """Batch of (answer_code, [(input_text, gold_output_repr), ...])."""
    verdicts = [False] * len(items)
    jobs, owners, golds = [], [], []
    for i, (code, pairs) in enumerate(items):
        prepared = prepare_program(code, pool.banned_modules, pool.banned_builtins)
        if prepared.error or not pairs:
            continue
        try:
            gold = [parse_literal(out) for _, out in pairs]
        except LiteralError:
            continue
        if any(check_input(inp, pool.banned_modules, pool.banned_builtins) for inp, _ in pairs):
            continue
        for (inp, _), g in zip(pairs, gold, strict=True):
            jobs.append(Job(prepared.code, inp))
            owners.append(i)
            golds.append(g)
    passed = [True] * len(items)
    for i, gold, result in zip(owners, golds, pool.run_many(jobs), strict=True):
        if not (result.status == "ok" and strict_equal(result.value, gold)):
            passed[i] = False
    for i in set(owners):
        verdicts[i] = passed[i]
    return verdicts


def crux_equal(answer_text: str, gold_text: str) -> bool | None:
    """CRUXEval's `==` on two literals, in this process; None if either is not a literal."""
    try:
        return bool(
            parse_literal(answer_text, max_chars=MAX_OUTPUT_CHARS) == parse_literal(gold_text)
        )
    except LiteralError:
        return None


def score_cruxeval(
    pool: ExecutorPool, records: Sequence[dict], answers: Sequence[str], task: str
) -> list[bool]:
    """CRUXEval-O (`task="output"`: answer predicts f(input)) or CRUXEval-I (`"input"`).

    Scored by CRUXEval's rule, `f(input) == answer` / `f(answer) == output`. A literal output
    answer is compared here; everything else runs in the sandbox, where `==` may call methods
    of model-made values. For training rewards use the type-strict graders above.
    """
    if task not in ("output", "input"):
        raise ValueError(f"task must be 'output' or 'input', got {task!r}")
    verdicts = [False] * len(records)
    jobs, owners = [], []
    for i, (record, answer) in enumerate(zip(records, answers, strict=True)):
        if task == "output":
            same = crux_equal(answer, record["output"])
            if same is not None:
                verdicts[i] = same
                continue
            jobs.append(Job(record["code"], record["input"], expect=answer))
        else:
            jobs.append(Job(record["code"], answer, expect=record["output"]))
        owners.append(i)
    for i, result in zip(owners, pool.run_many(jobs), strict=True):
        verdicts[i] = result.status == "ok" and result.value is True
    return verdicts


def _canonical_args(args: tuple, kwargs: dict) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return ", ".join(parts)
