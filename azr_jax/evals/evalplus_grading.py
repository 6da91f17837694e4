"""EvalPlus grading (HumanEval+, MBPP+) as EvalPlus 0.3.1 grades, on `code_grading`'s waves.

Expected outputs: the canonical solution's (`prompt + canonical_solution`, as EvalPlus builds
its ground truth) on the same inputs (MBPP+'s restored to tuples and sets, `mbpp_inputs.py`),
computed in the sandbox too; the expected output never enters a candidate's run, the
comparison is made here. Outputs that are not literals (Counter, nan, complex, ...; megabytes
of output) travel packed (`evalplus_values.py`). A test whose reference run fails is dropped
(counted; a problem with none left never passes). EvalPlus drops none; on the release files
one MBPP+ test is left out here, Mbpp/255's 1.3 GB output (BENCHMARKS.md).

Time: each test's limit is EvalPlus's `max(min_time_limit_s, time_limit_factor * t_ref)` (1 s
and 4 by default), `t_ref` the canonical solution's time on that test. Both times are the
zygote's wall clock of the whole run (fork, argument parsing and the call: the same overhead
on both sides; a program cannot touch that clock), and the run is killed at its limit
(`Job.timeout_s`, never above the pool's). A test failed on time alone is run once more and
judged on that run (EvalPlus runs it once; on a loaded machine one slow run is noise, and a
solution really over its limit is over it twice).

Verdicts: base passes when every base input matches; plus when every base and plus input
does. A match is EvalPlus's: `out == expected`, else, when the atol is set (the record's, or
1e-6 from the first float expected output of the base or plus group on, as EvalPlus's loop
carries it) same type, same length and `np.allclose(out, exp, rtol=1e-7, atol)`. EvalPlus's
special oracles, all of them: HumanEval `find_zero` (|poly(x)| <= atol), MBPP
`are_equivalent` (any output), `sum_div` (0 accepted), `surface_Area` and
`digit_distance_nums` (their reference formulas), the set-equality tasks (`MBPP_SET_EQUAL`)
and the not-None tasks (`MBPP_NOT_NONE`: a bool output is compared, any other output counts
as `out is not None`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from azr_jax.evals import evalplus_values
from azr_jax.evals.code_grading import args_source, check_code_pool, run_until_failure, run_verdict
from azr_jax.executor.pool import ExecutorPool, Job, RunResult

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
            Job(code, args_source(args), entry=EVALPLUS_CALL) for args in evalplus_tests(problem)
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


def _shown(value: Any) -> str:
    """The start of a value's repr, for a verdict (an int too long for repr is described)."""
    try:
        return repr(value)[:80]
    except ValueError:
        return f"<a {type(value).__name__} too long to show>"


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
        args = args_source(tests[i][t])
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
        return f"test {t}: returned {run.output_repr[:80]}, expected {_shown(want)}"

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
