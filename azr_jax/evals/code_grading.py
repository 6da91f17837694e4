"""Code grading as EvalPlus and LiveCodeBench grade: every test is one sandboxed run.

One run per test, each with its own wall-clock limit (LiveCodeBench: `eval.test_timeout_s`,
its harness's default 6 s; EvalPlus: its limit from the canonical run, below), so no test sees
another's state; the pool's limit is only the cap (and the canonical solutions' limit). A
candidate stops at its first failing test: tests go out in waves (`wave` tests per candidate),
and only candidates that passed every earlier test get the next wave.

The expected answer never enters a candidate's run. A run returns the candidate's output (a
literal, re-parsed here by the trusted literal parser: an object with a lying `__eq__` cannot
come back; EvalPlus's other types are rebuilt here from literals) or, for stdin programs, a digest of its normalised stdout; the comparison is made
here. So a candidate cannot grade itself by reading or patching the harness.

- EvalPlus (HumanEval+, MBPP+): `evalplus_grading.py`, on these waves.
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


def args_source(args: Sequence[Any]) -> str:
    """A call's arguments as source text (`py_source` of each, comma-separated)."""
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
    return args_source([json.loads(line) for line in text.split("\n")])


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
