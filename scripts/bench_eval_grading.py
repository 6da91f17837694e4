"""Grading cost of the paper's table: code tests per second and math answers per second.

    python scripts/bench_eval_grading.py [--problems 20] [--tests 100] [--answers 200] [--workers 2]

Code, side by side on the same EvalPlus-format problems (the fixtures' three HumanEval+
problems, repeated to `--problems`, each with `--tests` inputs):
- `per_test`: the project's grading, one sandboxed run per test (`evalplus_grading.grade_evalplus`,
  the canonical solution as the candidate: every test runs);
- `batched` (the reference): one sandboxed run per problem that calls the solution on every
  input in a loop and returns all outputs (what a harness without per-test limits would do);
- `per_test_default_preload`: the per-test runs again in a pool with the executor's default
  preload (no `typing`), against `code_grading.CODE_PRELOAD` (alternating, best of 3 each).
Math, side by side on `--answers` (gold, answer) pairs: `child` is `math_grading.verify_answers`
(math-verify in a child process, its start-up included); `in_process` calls math-verify here
(the reference; unsafe for model text, see math_grading.py).
The last line is JSON: tests/s and answers/s of each, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from azr_jax.evals import code_grading as cg  # noqa: E402
from azr_jax.evals import evalplus_grading as eg  # noqa: E402
from azr_jax.evals import math_grading  # noqa: E402
from azr_jax.executor.pool import DEFAULT_PRELOAD, ExecutorPool, Job  # noqa: E402
from tests.evals import publisher_files as pf  # noqa: E402


def problems(n: int, tests: int) -> list[dict]:
    base = pf.HUMANEVAL_PLUS
    out = []
    for i in range(n):
        p = dict(base[i % len(base)])
        inputs = (p["base_input"] + p["plus_input"]) * (tests // 2 + 1)
        p = {
            "id": f"{p['task_id']}#{i}",
            "prompt": p["prompt"],
            "entry_point": p["entry_point"],
            "canonical_solution": p["canonical_solution"],
            "base_input": inputs[: tests // 2],
            "plus_input": inputs[tests // 2 : tests],
            "atol": float(p["atol"]),
        }
        out.append(p)
    return out


def batched(pool, probs: list[dict]) -> int:
    """One run per problem; returns how many problems came back with every output."""
    jobs = []
    for p in probs:
        code = (
            p["prompt"]
            + p["canonical_solution"]
            + f"\n\ndef __azr_all__(inputs):\n    return [{p['entry_point']}(*a) for a in inputs]\n"
        )
        args = cg.py_source(eg.evalplus_tests(p))
        jobs.append(Job(code, args, entry="__azr_all__"))
    return sum(r.status == "ok" for r in pool.run_many(jobs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=20)
    ap.add_argument("--tests", type=int, default=100)
    ap.add_argument("--answers", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    probs = problems(args.problems, args.tests)
    n_tests = sum(len(eg.evalplus_tests(p)) for p in probs)
    with cg.code_pool(workers=args.workers, test_timeout_s=6.0) as pool:
        pool.run_many([Job("def f():\n    return 1\n", "")] * 8)  # warm up
        t = time.perf_counter()
        expected = eg.evalplus_expected(pool, probs)
        t_ref = time.perf_counter() - t
        t = time.perf_counter()
        graded = eg.grade_evalplus(
            pool,
            "humaneval_plus",
            probs,
            expected,
            [(i, p["prompt"] + p["canonical_solution"]) for i, p in enumerate(probs)],
        )
        t_per_test = time.perf_counter() - t
        assert all(g["plus"] for g in graded), "the canonical solutions must pass"
        t = time.perf_counter()
        ok = batched(pool, probs)
        t_batched = time.perf_counter() - t
        assert ok == len(probs)

    per_test_jobs = [
        Job(p["prompt"] + p["canonical_solution"], cg.py_source(a)[1:-1], entry=p["entry_point"])
        for p in probs
        for a in eg.evalplus_tests(p)
    ]
    preload_ab = {}
    pools = {
        name: ExecutorPool(
            workers=args.workers,
            timeout_s=6.0,
            banned_modules=cg.CODE_BANNED_MODULES,
            banned_builtins=cg.CODE_BANNED_BUILTINS,
            max_output_chars=cg.CODE_MAX_OUTPUT_CHARS,
            preload=preload,
        )
        for name, preload in (("default", DEFAULT_PRELOAD), ("code", cg.CODE_PRELOAD))
    }
    try:
        for _ in range(3):
            for name, p in pools.items():
                t = time.perf_counter()
                assert all(r.status == "ok" for r in p.run_many(per_test_jobs))
                rate = len(per_test_jobs) / (time.perf_counter() - t)
                preload_ab[name] = max(preload_ab.get(name, 0.0), rate)
    finally:
        for p in pools.values():
            p.close()

    pairs = [
        ("\\frac{1}{2}", "0.5"),
        ("2\\sqrt{3}", "\\sqrt{12}"),
        ("204", "205"),
        ("x^2+1", "1+x^2"),
    ]
    golds = [pairs[i % len(pairs)][0] for i in range(args.answers)]
    answers = [pairs[i % len(pairs)][1] for i in range(args.answers)]
    t = time.perf_counter()
    child = math_grading.verify_answers(golds, answers, timeout_s=5)
    t_child = time.perf_counter() - t
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    t = time.perf_counter()
    here = [
        bool(verify(parse("$" + g + "$", configs), parse("$" + a + "$", configs)))
        for g, a in zip(golds, answers, strict=True)
    ]
    t_here = time.perf_counter() - t
    assert [v["ok"] for v in child] == here

    print(
        json.dumps(
            {
                "problems": len(probs),
                "tests": n_tests,
                "workers": args.workers,
                "reference_outputs_tests_per_s": n_tests / t_ref,
                "per_test_tests_per_s": n_tests / t_per_test,
                "batched_tests_per_s": n_tests / t_batched,
                "per_test_over_batched_time": t_per_test / t_batched,
                "per_test_default_preload_tests_per_s": preload_ab["default"],
                "per_test_code_preload_tests_per_s": preload_ab["code"],
                "code_preload_speedup": preload_ab["code"] / preload_ab["default"],
                "answers": args.answers,
                "math_child_answers_per_s": args.answers / t_child,
                "math_in_process_answers_per_s": args.answers / t_here,
                "math_child_over_in_process_time": t_child / t_here,
                "load_avg_1m": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
