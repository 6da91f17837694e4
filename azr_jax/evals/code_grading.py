"""Code grading as EvalPlus and LiveCodeBench grade: every test is one sandboxed run.

One run per test, each with its own wall-clock limit (LiveCodeBench: `eval.test_timeout_s`,
its harness's default 6 s; EvalPlus: its limit from the canonical run, below), so no test sees
another's state; the pool's limit is only the cap (and the canonical solutions' limit). A
candidate stops at its first failing test: tests go out in waves (`wave` tests per candidate),
and only candidates that passed every earlier test get the next wave.

The expected answer never enters a candidate's run. A run returns the candidate's output (a
literal, re-parsed here by the trusted literal parser: an object with a lying `__eq__` cannot
come back) or, for stdin programs, a digest of its normalised stdout; the comparison is made
here. So a candidate cannot grade itself by reading or patching the harness.

- EvalPlus (HumanEval+, MBPP+), as EvalPlus 0.3.1 grades: the expected outputs are the
  canonical solution's (`prompt + canonical_solution`, as EvalPlus builds its ground truth) on
  the same inputs (MBPP+'s restored to tuples and sets, `mbpp_inputs.py`), computed in the
  sandbox too. Each test's time limit is EvalPlus's `max(min_time_limit_s, time_limit_factor *
  t_ref)` (1 s and 4 by default), with `t_ref` the canonical solution's time on that test;
  both times are the zygote's wall clock of the whole run (fork, argument parsing and the
  call, the same overhead on both sides; a program cannot touch that clock); the run is
  killed at its limit (`Job.timeout_s`, never above the pool's). A test failed on time alone
  is run once more and judged on that run (EvalPlus runs it once; on a loaded machine one
  slow run is noise, and a solution really over the limit is over it twice). A test whose reference run fails or returns a non-literal is
  dropped (counted; a problem with none left never passes; EvalPlus has none to drop: on the
  release files the count is 0). Base passes when every base input matches; plus when every
  base and plus input does. A match is EvalPlus's: `out == expected`, else, when the atol is
  set (the record's, or 1e-6 from the first float expected output of the base or plus group
  on, as EvalPlus's loop carries it) same type, same length and `np.allclose(out, exp,
  rtol=1e-7, atol)`. EvalPlus's special oracles, all of them: HumanEval `find_zero`
  (|poly(x)| <= atol), MBPP `are_equivalent` (any output), `sum_div` (0 accepted),
  `surface_Area` and `digit_distance_nums` (their reference formulas), the set-equality tasks
  (`MBPP_SET_EQUAL`) and the not-None tasks (`MBPP_NOT_NONE`: a bool output is compared, any
  other output counts as `out is not None`).
- LiveCodeBench functional: `Solution().<func_name>(*args)`, args one JSON value per input
  line; right when the output (a tuple read as a list) `==` the JSON expected output.
- LiveCodeBench stdin: the program runs as `__main__` with the input on `sys.stdin` (text, and
  `.buffer`) and `sys.stdout` captured; `exit()` ends it normally. Right when, line by line
  after stripping, each line equals the expected line or both are the same list of decimals
  (LiveCodeBench's `grade_stdio`). LiveCodeBench's usual imports are in scope (its prelude).

Bans. Candidates need more than HumanEval's extras: stdin programs read `sys.stdin`
(`sys`, `io`), and solutions use `time`, `datetime` and `input()`; the harness needs `exec`.
`CODE_BANNED_MODULES` / `CODE_BANNED_BUILTINS` are the evaluation lists less those; `os`,
`subprocess`, sockets, `open` and the rest stay banned. The import bans are a speed bump (with
`sys` allowed, `sys.modules` reaches loaded modules); the kernel layers of the executor
(seccomp, Landlock, namespaces, rlimits) are the boundary.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from azr_jax.evals import evalplus_values
from azr_jax.evals.evaluation import EVAL_BANNED_BUILTINS, EVAL_BANNED_MODULES
from azr_jax.executor.pool import DEFAULT_PRELOAD, ExecutorPool, Job, RunResult

CODE_MODULES = ("sys", "io", "time", "datetime", "_datetime", "calendar")
CODE_BUILTINS = ("exec", "compile", "input")
CODE_BANNED_MODULES = tuple(m for m in EVAL_BANNED_MODULES if m not in CODE_MODULES)
CODE_BANNED_BUILTINS = tuple(b for b in EVAL_BANNED_BUILTINS if b not in CODE_BUILTINS)
CODE_MAX_OUTPUT_CHARS = 100_000  # longest output repr a test may return (pipe stays <= 1 MiB)
LCB_PRELUDE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\n"
    "from functools import *\nfrom operator import *\nfrom typing import *\n"
    "import string, re, datetime, collections, heapq, bisect, copy, math, random, statistics\n"
    "import itertools, functools, operator, io, sys, json\nsys.setrecursionlimit(50000)\n"
)
# Loaded once in the zygotes: benchmark programs import these (HumanEval+ prompts `typing`,
# LiveCodeBench's prelude all of them), and a module a zygote holds costs a fork ~0.2 ms while
# importing it in every run costs a few ms.
CODE_PRELOAD = tuple(
    dict.fromkeys(
        DEFAULT_PRELOAD
        + ("typing", "copy", "decimal", "hashlib", "json", "random", "statistics", "datetime")
    )
)
LCB_CALL = "__azr_lcb_call__"
LCB_STDIO = "__azr_lcb_stdio__"
_MAX_VERDICT = 200
EVALPLUS_CALL = "__azr_evalplus_call__"
# EvalPlus's special oracles (evalplus/eval/_special_oracle.py): MBPP entry points whose outputs
# are compared as sets, and those whose output only counts as "not None" (a regex match).
MBPP_SET_EQUAL = (
    "similar_elements",
    "find_char_long",
    "common_in_nested_lists",
    "extract_singly",
    "larg_nnum",
    "intersection_array",
    "find_dissimilar",
    "Diff",
)
MBPP_NOT_NONE = ("check_str", "text_match_three", "text_starta_endb")
# (benchmark, entry point) -> rule.
_ORACLES = {
    ("humaneval_plus", "find_zero"): "poly_root",
    ("mbpp_plus", "are_equivalent"): "any",
    ("mbpp_plus", "sum_div"): "or_zero",
    ("mbpp_plus", "surface_Area"): "surface_area",
    ("mbpp_plus", "digit_distance_nums"): "digit_distance",
    **{("mbpp_plus", name): "set_equal" for name in MBPP_SET_EQUAL},
    **{("mbpp_plus", name): "not_none" for name in MBPP_NOT_NONE},
}
EVALPLUS_MIN_TIME_LIMIT_S = 1.0  # EvalPlus's DEFAULT_MIN_TIME_LIMIT
EVALPLUS_TIME_LIMIT_FACTOR = 4.0  # EvalPlus's DEFAULT_GT_TIME_LIMIT_FACTOR
EVALPLUS_MEMORY_MB = 4096  # EvalPlus's memory limit per run (EVALPLUS_MAX_MEMORY_BYTES, 4 GiB)


def code_pool(workers: int = 2, test_timeout_s: float = 6.0, memory_mb: int = 1024) -> ExecutorPool:
    """An executor pool for code benchmarks (the bans above; `test_timeout_s` per test)."""
    return ExecutorPool(
        workers=workers,
        timeout_s=test_timeout_s,
        memory_mb=memory_mb,
        banned_modules=CODE_BANNED_MODULES,
        banned_builtins=CODE_BANNED_BUILTINS,
        max_output_chars=CODE_MAX_OUTPUT_CHARS,
        preload=CODE_PRELOAD,
    )


def check_code_pool(pool: ExecutorPool) -> None:
    """Raises ValueError when `pool` bans what code benchmarks need (use `code_pool`)."""
    banned = [m for m in CODE_MODULES if m in pool.banned_modules]
    banned += [b for b in CODE_BUILTINS if b in pool.banned_builtins]
    if banned or pool.max_output_chars < CODE_MAX_OUTPUT_CHARS:
        raise ValueError(
            f"this executor pool bans {banned} or caps outputs at {pool.max_output_chars} "
            "characters; code benchmarks need code_grading.code_pool()"
        )


def py_source(value: Any) -> str:
    """Python source that rebuilds an input value: JSON's (non-finite floats included), and the
    tuples, sets and complex numbers EvalPlus's MBPP+ inputs may hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, list):
        return "[" + ", ".join(py_source(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(py_source(v) + ", " for v in value) + ")"
    if isinstance(value, (set, frozenset)):
        body = ", ".join(py_source(v) for v in value)
        text = "{" + body + "}" if value else "set()"
        return text if isinstance(value, set) else f"frozenset({text})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_source(k)}: {py_source(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _args_source(args: Sequence[Any]) -> str:
    return ", ".join(py_source(a) for a in args)


# --------------------------------------------------------------------------------- the waves


def run_until_failure(
    pool: ExecutorPool,
    num_tests: Sequence[int],
    job_for: Callable[[int, int], Job | None],
    check: Callable[[int, int, RunResult], str | None],
    wave: int = 16,
    progress: Callable[[int], None] | None = None,
    retry: Callable[[int, int, RunResult], bool] | None = None,
) -> list[tuple[int | None, str]]:
    """Runs candidate c's tests 0..num_tests[c]-1 in waves until its first failure.

    Args:
      job_for: (c, t) -> the run of test t for candidate c, or None to skip the test.
      check: (c, t, result) -> None when the test passed, else a verdict.
      progress: called with the number of runs finished after each wave.
      retry: (c, t, result) -> whether to run the test once more (all of a wave's together)
        and check that second run instead.

    Returns:
      Per candidate: (index of the first failing test or None, verdict).
    """
    done: list[tuple[int | None, str] | None] = [None] * len(num_tests)
    next_test = [0] * len(num_tests)
    while True:
        batch: list[tuple[int, int]] = []
        jobs: list[Job] = []
        for c, n in enumerate(num_tests):
            if done[c] is not None:
                continue
            if next_test[c] >= n:
                done[c] = (None, "passed")
                continue
            taken = 0
            while next_test[c] < n and taken < wave:
                t = next_test[c]
                next_test[c] += 1
                job = job_for(c, t)
                if job is not None:
                    batch.append((c, t))
                    jobs.append(job)
                    taken += 1
        if not jobs:
            if all(d is not None for d in done):
                return done  # type: ignore[return-value]
            continue
        results = pool.run_many(jobs)
        if retry is not None:
            again = [k for k, (c, t) in enumerate(batch) if retry(c, t, results[k])]
            for k, run in zip(again, pool.run_many([jobs[k] for k in again]), strict=True):
                results[k] = run
        for (c, t), run in zip(batch, results, strict=True):
            if done[c] is not None:
                continue
            verdict = check(c, t, run)
            if verdict is not None:
                done[c] = (t, verdict[:_MAX_VERDICT])
        if progress is not None:
            progress(len(jobs))


def run_verdict(run: RunResult) -> str:
    """A failed run as text: status, error type, message."""
    if run.status == "ok":
        return f"returned {run.output_repr}"
    return ": ".join(str(x) for x in (run.status, run.error_type, run.error_message) if x)


# ------------------------------------------------------------------------------------ EvalPlus


def evalplus_oracle(benchmark: str, entry_point: str) -> str | None:
    """The EvalPlus special oracle of a problem (see the module docstring), or None."""
    return _ORACLES.get((benchmark, entry_point))


def evalplus_program(problem: dict, code: str, oracle: str | None = None) -> str:
    """What a candidate's run executes: the problem's prompt (imports, helpers), the code, and
    the caller `EVALPLUS_CALL`, which packs the output (`evalplus_values`); for a not-None task
    it first turns a non-bool output into `out is not None`."""
    entry = problem["entry_point"]
    if oracle == "not_none":
        body = (
            f"    out = {entry}(*args)\n    return out if type(out) is bool else out is not None\n"
        )
    else:
        body = f"    return {evalplus_values.PACK}({entry}(*args))\n"
    return (
        f"{problem['prompt']}\n\n{code}\n\n{evalplus_values.PACK_SOURCE}\n\n"
        f"def {EVALPLUS_CALL}(*args):\n{body}"
    )


def _reference_program(problem: dict, oracle: str | None) -> str:
    entry = problem["entry_point"]
    if oracle == "not_none":  # EvalPlus keeps only `out is not None` of the reference
        body = f"    return {entry}(*args) is not None\n"
    else:
        body = f"    return {evalplus_values.PACK}({entry}(*args))\n"
    return (
        f"{problem['prompt']}{problem['canonical_solution']}\n\n{evalplus_values.PACK_SOURCE}"
        f"\n\ndef {EVALPLUS_CALL}(*args):\n{body}"
    )


def _value(run: RunResult) -> tuple[bool, Any]:
    """(True, the run's output unpacked) or (False, why it is unusable)."""
    try:
        return True, evalplus_values.unpack(run.value)
    except ValueError as e:
        return False, str(e)


def evalplus_tests(problem: dict) -> list[Sequence]:
    """The problem's inputs: base then plus (sequences of arguments)."""
    return list(problem["base_input"]) + list(problem["plus_input"])


def evalplus_expected(
    pool: ExecutorPool,
    problems: Sequence[dict],
    progress: Callable[[int], None] | None = None,
    benchmark: str = "",
) -> list[list[tuple[bool, Any, float]]]:
    """The canonical solution's output on every input, from sandboxed runs.

    Args:
      benchmark: the problems' benchmark (picks the not-None oracle's reference caller).

    Returns:
      Per problem, per test: (True, value, seconds) or (False, why the reference run failed,
      seconds); seconds is the run's wall clock (the time limit's reference).
    """
    check_code_pool(pool)
    out = []
    for problem in problems:
        oracle = evalplus_oracle(benchmark, problem["entry_point"])
        code = _reference_program(problem, oracle)
        jobs = [
            Job(code, _args_source(args), entry=EVALPLUS_CALL) for args in evalplus_tests(problem)
        ]
        refs = []
        for r in pool.run_many(jobs):
            ok, value = _value(r) if r.status == "ok" else (False, run_verdict(r))
            refs.append((ok, value, r.seconds))
        out.append(refs)
        if progress is not None:
            progress(len(jobs))
    return out


def is_floats(x: Any) -> bool:
    """EvalPlus's test for a float output: a float, or a non-empty list/tuple of floats."""
    if isinstance(x, float):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x)


def effective_atols(
    atol: float, expected: Sequence[tuple[bool, Any, float]], n_base: int
) -> list[float]:
    """The atol EvalPlus's loop uses at each test: the record's, or from the first float
    expected output of the base (tests `< n_base`) or plus group on, 1e-6 (EvalPlus sets it
    when it meets a float expected value and keeps it for the rest of that group's loop)."""
    out = []
    current = atol
    for t, (ok, value, _) in enumerate(expected):
        if t == n_base:
            current = atol  # the plus inputs are a second call of EvalPlus's checker
        if ok and current == 0 and is_floats(value):
            current = 1e-6
        out.append(current)
    return out


def _poly(xs: Sequence[float], x: float) -> float:
    return sum(c * math.pow(x, i) for i, c in enumerate(xs))


def _surface_area(base_edge: float, height: float) -> int:
    # Mbpp/581's reference: the height is the apex's distance from the base.
    slant = math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant) / 2)


def _digit_distance(a: int, b: int) -> int:
    # Mbpp/558's reference: the shorter number is padded with leading zeros.
    x, y = str(a), str(b)
    width = max(len(x), len(y))
    return sum(abs(int(p) - int(q)) for p, q in zip(x.zfill(width), y.zfill(width), strict=True))


def evalplus_match(
    out: Any, expected: Any, atol: float, oracle: str | None, args: Sequence
) -> bool:
    """EvalPlus's rule for one test (see the module docstring); `out` is a trusted literal and
    `atol` the test's (`effective_atols`; the float rule's 1e-6 is applied here as well)."""
    try:
        if oracle == "poly_root":
            return abs(_poly(args[0], out)) <= atol
        exact = out == expected
        if oracle == "any":
            exact = True
        elif oracle == "or_zero":
            exact = exact or out == 0
        elif oracle == "surface_area":
            exact = exact or abs(out - _surface_area(*args)) <= atol
        elif oracle == "digit_distance":
            exact = exact or out == _digit_distance(*args)
        elif oracle == "set_equal":
            exact = set(out) == set(expected)
        elif oracle == "not_none":
            exact = out == expected  # both are bools here (see `evalplus_program`)
        if atol == 0 and is_floats(expected):
            atol = 1e-6
        if exact:
            return True
        if atol == 0 or type(out) is not type(expected):
            return False
        if isinstance(expected, (list, tuple)) and len(out) != len(expected):
            return False
        return bool(np.allclose(out, expected, rtol=1e-07, atol=atol))
    except Exception:
        return False


def time_limit_s(
    reference_s: float,
    min_time_limit_s: float = EVALPLUS_MIN_TIME_LIMIT_S,
    time_limit_factor: float = EVALPLUS_TIME_LIMIT_FACTOR,
) -> float:
    """EvalPlus's limit for one test: `max(min_time_limit_s, time_limit_factor * reference_s)`."""
    return max(min_time_limit_s, time_limit_factor * reference_s)


def grade_evalplus(
    pool: ExecutorPool,
    benchmark: str,
    problems: Sequence[dict],
    expected: Sequence[list[tuple[bool, Any, float]]],
    candidates: Sequence[tuple[int, str]],
    wave: int = 16,
    progress: Callable[[int], None] | None = None,
    min_time_limit_s: float = EVALPLUS_MIN_TIME_LIMIT_S,
    time_limit_factor: float = EVALPLUS_TIME_LIMIT_FACTOR,
) -> list[dict[str, Any]]:
    """Grades candidates `(problem index, code)` against base and plus inputs.

    Args:
      expected: `evalplus_expected(pool, problems, benchmark=benchmark)`.
      min_time_limit_s, time_limit_factor: EvalPlus's per-test time limit (`time_limit_s`).

    Returns:
      Per candidate: `base` (bool), `plus` (bool), `verdict`, `dropped_tests` (tests whose
      reference run failed, left out).
    """
    check_code_pool(pool)
    tests = [evalplus_tests(p) for p in problems]
    oracles = [evalplus_oracle(benchmark, p["entry_point"]) for p in problems]
    programs = [evalplus_program(problems[i], code, oracles[i]) for i, code in candidates]
    atols: dict[int, list[float]] = {
        i: effective_atols(problems[i]["atol"], expected[i], len(problems[i]["base_input"]))
        for i in {i for i, _ in candidates}
    }

    def limit(i: int, t: int) -> float:
        return time_limit_s(expected[i][t][2], min_time_limit_s, time_limit_factor)

    def job_for(c: int, t: int) -> Job | None:
        i = candidates[c][0]
        if not expected[i][t][0]:
            return None
        args = _args_source(tests[i][t])
        return Job(programs[c], args, entry=EVALPLUS_CALL, timeout_s=limit(i, t))

    def too_slow(run: RunResult, seconds: float) -> bool:
        return run.status == "timeout" or (run.status == "ok" and run.seconds > seconds)

    def slow(c: int, t: int, run: RunResult) -> bool:  # machine noise? once more (`retry`)
        return too_slow(run, limit(candidates[c][0], t))

    def check(c: int, t: int, run: RunResult) -> str | None:
        i = candidates[c][0]
        if too_slow(run, limit(i, t)):
            return f"test {t}: over its time limit of {limit(i, t):.2f} s (twice)"
        if run.status != "ok":
            return f"test {t}: {run_verdict(run)}"
        want = expected[i][t][1]
        ok, got = _value(run)
        if ok and evalplus_match(got, want, atols[i][t], oracles[i], tests[i][t]):
            return None
        return f"test {t}: returned {run.output_repr[:80]}, expected {repr(want)[:80]}"

    firsts = run_until_failure(
        pool, [len(tests[i]) for i, _ in candidates], job_for, check, wave, progress, slow
    )
    out = []
    for (i, _), (first, verdict) in zip(candidates, firsts, strict=True):
        n_base = len(problems[i]["base_input"])
        gradable = [ref[0] for ref in expected[i]]
        result = {
            "base": first is None or first >= n_base,
            "plus": first is None,
            "verdict": "correct" if first is None else verdict,
            "dropped_tests": gradable.count(False),
        }
        # Never a vacuous pass: a part whose every reference run failed grades nothing.
        if not any(gradable[:n_base]):
            result.update(base=False, plus=False, verdict="no base test could be graded")
        elif not any(gradable[n_base:]) and gradable[n_base:]:
            result.update(plus=False, verdict="no plus test could be graded")
        out.append(result)
    return out


# ------------------------------------------------------------------------------- LiveCodeBench


def stdout_digest(text: str) -> str:
    """LiveCodeBench's stdout equality as a digest: two outputs match by `grade_stdio` exactly
    when their digests are equal. Lines are stripped (after stripping the whole text); a line
    that is a list of finite decimals becomes their normalised values, any other line stays as
    text. Runs here and, by its source, inside the sandbox (stdlib only, self-contained)."""
    import decimal
    import hashlib as _hashlib

    canon = []
    for line in text.strip().split("\n"):
        line = line.strip()
        try:
            numbers = [decimal.Decimal(token) for token in line.split()]
        except Exception:
            numbers = []
        if numbers and all(n.is_finite() for n in numbers):
            canon.append("#" + " ".join(str(n.normalize()) if n else "0" for n in numbers))
        else:
            canon.append("=" + line)
    return _hashlib.sha256("\n".join(canon).encode("utf-8", "surrogatepass")).hexdigest()


# The stdin harness: the solution runs as __main__ with stdin/stdout redirected, in its own
# globals; the run returns [digest, the first 100 characters of stdout].
LCB_STDIO_HARNESS = (
    "import sys as __azr_sys, io as __azr_io\n\n"
    + inspect.getsource(stdout_digest)
    + f"""

def {LCB_STDIO}(source, stdin_text):
    def _exit(code=None):
        raise SystemExit(code)

    out = __azr_io.TextIOWrapper(__azr_io.BytesIO(), encoding="utf-8", newline="\\n")
    __azr_sys.stdin = __azr_io.TextIOWrapper(
        __azr_io.BytesIO(stdin_text.encode("utf-8")), encoding="utf-8"
    )
    __azr_sys.stdout = out
    g = {{"__name__": "__main__", "__builtins__": __builtins__, "exit": _exit, "quit": _exit}}
    try:
        exec(compile(source, "<solution>", "exec"), g)
    except SystemExit:
        pass
    out.flush()
    text = out.buffer.getvalue().decode("utf-8", "replace")
    return [stdout_digest(text), text[:100]]
"""
)


def lcb_functional_program(problem: dict, code: str) -> str:
    """The prelude, the candidate's `class Solution`, and a caller of its method."""
    return (
        f"{LCB_PRELUDE}\n{code}\n\n"
        f"def {LCB_CALL}(*args):\n"
        f"    return getattr(Solution(), {problem['func_name']!r})(*args)\n"
    )


def _functional_args(text: str) -> str:
    return _args_source([json.loads(line) for line in text.split("\n")])


def grade_livecodebench(
    pool: ExecutorPool,
    problems: Sequence[dict],
    candidates: Sequence[tuple[int, str]],
    wave: int = 16,
    progress: Callable[[int], None] | None = None,
    timeout_s: float | None = None,
) -> list[dict[str, Any]]:
    """Grades candidates `(problem index, code)` on every public and private test, in
    LiveCodeBench's order (public, then private; its grader runs them all as one list).

    Args:
      timeout_s: each test's wall-clock limit (None: the pool's).

    Returns:
      Per candidate: `passed` (bool), `verdict`.
    """
    check_code_pool(pool)
    programs = [
        lcb_functional_program(problems[i], code)
        if problems[i]["func_name"]
        else f"{LCB_PRELUDE}\n{code}\n"
        for i, code in candidates
    ]
    expected_cache: dict[tuple[int, int], Any] = {}

    def expected(i: int, t: int) -> Any:
        if (i, t) not in expected_cache:
            test = problems[i]["tests"][t]
            if problems[i]["func_name"]:
                expected_cache[i, t] = json.loads(test["output"])
            else:
                expected_cache[i, t] = stdout_digest(test["output"])
        return expected_cache[i, t]

    def job_for(c: int, t: int) -> Job | None:
        i = candidates[c][0]
        test = problems[i]["tests"][t]
        if problems[i]["func_name"]:
            args = _functional_args(test["input"])
            return Job(programs[c], args, entry=LCB_CALL, timeout_s=timeout_s)
        args = f"{programs[c]!r}, {test['input']!r}"
        return Job(LCB_STDIO_HARNESS, args, entry=LCB_STDIO, timeout_s=timeout_s)

    def check(c: int, t: int, run: RunResult) -> str | None:
        i = candidates[c][0]
        if run.status != "ok":
            return f"test {t}: {run_verdict(run)}"
        want = expected(i, t)
        if problems[i]["func_name"]:
            got = list(run.value) if isinstance(run.value, tuple) else run.value
            if got == want:
                return None
            return f"test {t}: returned {run.output_repr[:80]}, expected {repr(want)[:80]}"
        got = run.value
        if isinstance(got, list) and len(got) == 2 and got[0] == want:
            return None
        shown = got[1] if isinstance(got, list) and len(got) == 2 else got
        return f"test {t}: printed {str(shown)[:80]!r}"

    firsts = run_until_failure(
        pool, [len(problems[i]["tests"]) for i, _ in candidates], job_for, check, wave, progress
    )
    return [
        {"passed": first is None, "verdict": "correct" if first is None else verdict}
        for first, verdict in firsts
    ]
