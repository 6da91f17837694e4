"""Code grading's shared parts and LiveCodeBench: canonical solutions pass and wrong ones fail,
LiveCodeBench's stdout rule matches a reference written from its grader (and a real record's
hand-checked solutions), and hostile solutions fail without harming the run."""

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from azr_jax.evals import benchmarks as bm
from azr_jax.evals import code_grading as cg
from tests.evals import publisher_files as pf
from tests.evals.hostile import ALWAYS_EQUAL, FORGE_RESULT

FIXTURES = Path(__file__).parent / "fixtures"  # the real release excerpts


def lcb_grade_stdio(prediction: str, gt: str) -> bool:
    """LiveCodeBench's `grade_stdio` comparison, written here from its algorithm."""

    def lines(text):
        return [line.strip() for line in text.strip().split("\n")]

    def decimals(line):
        try:
            return True, [Decimal(x) for x in line.split()]
        except Exception:
            return False, []

    p, g = lines(prediction), lines(gt)
    if len(p) != len(g):
        return False
    for a, b in zip(p, g, strict=True):
        if a == b:
            continue
        ok_a, da = decimals(a)
        ok_b, db = decimals(b)
        if not (ok_a and ok_b) or da != db:
            return False
    return True


@pytest.mark.parametrize(
    "prediction,gt",
    [
        ("6\n2\n", "6\n2.0"),
        ("1 2 3\n", "1 2 3"),
        ("1 2 3", "1 2 4"),
        ("  YES \n", "YES"),
        ("YES", "yes"),
        ("0.50 1e2", ".5 100"),
        ("-0", "0"),
        ("1\n\n2", "1\n2"),
        ("", ""),
        ("1.000000001", "1"),
        ("3 a", "3.0 a"),
        ("50000000000000000", "50000000000000001"),
    ],
)
def test_stdout_digest_matches_livecodebench_rule(prediction, gt):
    same = cg.stdout_digest(prediction) == cg.stdout_digest(gt)
    assert same == lcb_grade_stdio(prediction, gt)


def _lcb(pool, data, solutions):
    problems = data["livecodebench"]
    return cg.grade_livecodebench(
        pool, problems, [(i, solutions[p["id"]]) for i, p in enumerate(problems)]
    )


def test_livecodebench_canonical_pass_wrong_fail(pool, data):
    assert [g["passed"] for g in _lcb(pool, data, pf.CANONICAL["livecodebench"])] == [True, True]
    wrong = _lcb(pool, data, pf.WRONG["livecodebench"])
    assert [g["passed"] for g in wrong] == [False, False]
    assert wrong[0]["verdict"].startswith("test 1: returned [0, 1], expected [1, 2]")
    assert wrong[1]["verdict"] == "test 0: printed '3\\n'"


def test_hostile_livecodebench_solutions_fail_harmlessly(pool, data):
    problems = data["livecodebench"]
    stdin_hostile = [
        "while True:\n    pass\n",
        # patch the harness's digest (it never sees the expected output, so it must guess)
        "import sys\nsys._getframe(1).f_globals['stdout_digest'] = lambda text: '0' * 64\n",
        "import sys\nsys.stdout = sys.__stdout__\nprint(6)\n",
        "import sys\nsys.modules['os']._exit(0)\n",
    ]
    functional_hostile = [
        ALWAYS_EQUAL
        + "class Solution:\n    def twoSum(self, nums, target):\n        return Yes()\n",
        FORGE_RESULT.format(name="helper") + "class Solution:\n    def twoSum(self, n, t):\n"
        "        return helper()\n",
    ]
    got = cg.grade_livecodebench(
        pool,
        problems,
        [(1, h) for h in stdin_hostile] + [(0, h) for h in functional_hostile],
    )
    assert not any(g["passed"] for g in got), got
    assert "timeout" in got[0]["verdict"]
    assert "InvalidOutput" in got[4]["verdict"]
    assert [g["passed"] for g in _lcb(pool, data, pf.CANONICAL["livecodebench"])] == [True, True]


def test_code_benchmarks_refuse_a_training_pool():
    from azr_jax.evals import evaluation

    with evaluation.evaluation_pool(workers=1) as p:
        with pytest.raises(ValueError, match="code_grading.code_pool"):
            cg.check_code_pool(p)


def test_py_source_round_trips_inputs():
    values = [[1, [2.5, "a"]], (1,), (), {1, 2}, set(), frozenset({3}), {"k": (1, 2)}, 1 + 2j]
    values += [float("inf"), [float("-inf")], (float("nan"),)]
    for v in values:
        back = eval(cg.py_source(v))  # our own source text of test inputs, checked here
        assert type(back) is type(v) and repr(back) == repr(v)


def test_real_livecodebench_record_public_then_private(pool, tmp_path):
    """Codeforces 1873A from LiveCodeBench's release (its compressed private tests as released):
    hand-checked solutions, graded on public then private tests as LiveCodeBench's grader
    does, line by line and case-sensitive (its `grade_stdio`)."""
    shutil.copy(FIXTURES / "livecodebench-1873_A.jsonl", tmp_path / "livecodebench.jsonl")
    (problem,) = bm.load("livecodebench", tmp_path)
    assert problem["public"] == 1 and len(problem["tests"]) == 5  # 4 private, decoded
    assert problem["func_name"] is None and problem["contest_date"].startswith("2023-08-21")
    solve = (
        "t = int(input())\nfor _ in range(t):\n    s = input().strip()\n"
        "    wrong = sum(a != b for a, b in zip(s, 'abc'))\n"
        "    print({answer})\n"
    )
    accepted = [
        solve.format(answer="'YES' if wrong != 3 else 'NO'"),
        solve.format(answer="('YES' if wrong != 3 else 'NO') + '  '"),  # trailing spaces
    ]
    rejected = [
        solve.format(answer="'yes' if wrong != 3 else 'no'"),  # Codeforces takes it; LCB not
        solve.format(answer="'YES' if wrong == 0 else 'NO'"),  # wrong on the public test
        solve.replace("range(t)", "range(6)").format(answer="'YES' if wrong != 3 else 'NO'"),
    ]
    got = cg.grade_livecodebench(pool, [problem], [(0, c) for c in accepted + rejected])
    assert [g["passed"] for g in got] == [True, True, False, False, False], got
    assert got[3]["verdict"].startswith("test 0:")
    assert got[4]["verdict"].startswith("test 1: error")  # right on public, reads past private 1
