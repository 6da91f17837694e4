"""EvalPlus grading: canonical solutions pass and wrong ones fail (fixtures and real release
excerpts), EvalPlus's float rule, oracles, time limit and base/plus split hold, outputs that are
not literals compare as EvalPlus's `==`, and hostile solutions fail without harming the run."""

import shutil
from pathlib import Path

import pytest

from azr_jax.evals import benchmarks as bm
from azr_jax.evals import evalplus_grading as eg
from azr_jax.evals import evalplus_values
from tests.evals import publisher_files as pf
from tests.evals.hostile import ALWAYS_EQUAL, FORGE_RESULT

FIXTURES = Path(__file__).parent / "fixtures"  # the real release excerpts


@pytest.fixture(scope="module")
def expected(pool, data):
    return {
        n: eg.evalplus_expected(pool, data[n], benchmark=n) for n in ("humaneval_plus", "mbpp_plus")
    }


def _evalplus(pool, data, expected, bench, solutions):
    problems = data[bench]
    candidates = [(i, solutions[p["id"]]) for i, p in enumerate(problems)]
    return eg.grade_evalplus(pool, bench, problems, expected[bench], candidates)


def test_reference_outputs_come_from_the_sandbox(expected, data):
    he = expected["humaneval_plus"]
    assert [ref[0] for ref in he[0]] == [True] * 6
    assert [ref[1] for ref in he[0]] == [False, True, False, False, True, False]
    assert he[1][0][:2] == (True, 1.0) and 0 < he[1][0][2] < 1.5  # the run's seconds
    assert expected["mbpp_plus"][0][0][:2] == (True, (4, 5))  # a tuple stays a tuple


@pytest.mark.parametrize("bench", ["humaneval_plus", "mbpp_plus"])
def test_evalplus_canonical_pass_wrong_fail(pool, data, expected, bench):
    right = _evalplus(pool, data, expected, bench, pf.CANONICAL[bench])
    assert all(r["plus"] and r["base"] for r in right), right
    wrong = _evalplus(pool, data, expected, bench, pf.WRONG[bench])
    assert not any(r["plus"] for r in wrong), wrong
    if bench == "humaneval_plus":  # HumanEval/4's wrong answer is right on its base input
        assert [r["base"] for r in wrong] == [False, True, False]
        assert wrong[1]["verdict"].startswith("test 1: returned 0.0, expected 0.0666")


def test_evalplus_float_tolerance(pool, data, expected):
    close = "def mean_absolute_deviation(numbers):\n" + (
        "    m = sum(numbers) / len(numbers)\n"
        "    return sum(abs(x - m) for x in numbers) / len(numbers) + 1e-9\n"
    )
    far = close.replace("1e-9", "1e-4")
    as_int = "def mean_absolute_deviation(numbers):\n    return 1\n"  # 1 == 1.0 on base only
    problems = data["humaneval_plus"]
    got = eg.grade_evalplus(
        pool,
        "humaneval_plus",
        problems,
        expected["humaneval_plus"],
        [(1, close), (1, far), (1, as_int)],
    )
    assert [(g["base"], g["plus"]) for g in got] == [(True, True), (False, False), (True, False)]
    # the rule by hand: atol 0 becomes 1e-6 for float outputs; same type and length needed
    assert eg.evalplus_match(1.0 + 1e-7, 1.0, 0.0, None, [])
    assert not eg.evalplus_match(1.0 + 1e-5, 1.0, 0.0, None, [])
    assert eg.evalplus_match([1.0, 2.0 + 1e-4], [1.0, 2.0], 1e-3, None, [])
    assert not eg.evalplus_match((1.0, 2.0), [1.0, 2.0 + 1e-9], 1e-3, None, [])
    assert not eg.evalplus_match([1.0], [1.0, 2.0], 1e-3, None, [])
    assert eg.evalplus_match(0.6666, None, 1e-6, "poly_root", [[2, -3]]) is False
    assert eg.evalplus_match(2 / 3, None, 1e-6, "poly_root", [[2, -3]])


def test_hostile_evalplus_solutions_fail_harmlessly(pool, data, expected):
    problems = data["humaneval_plus"]
    hostile = [
        "def has_close_elements(numbers, threshold):\n    while True:\n        pass\n",
        ALWAYS_EQUAL + "def has_close_elements(numbers, threshold):\n    return Yes()\n",
        ALWAYS_EQUAL + "def has_close_elements(numbers, threshold):\n    return YesInt(0)\n",
        FORGE_RESULT.format(name="has_close_elements"),
        "import sys\nsys.modules['os']._exit(0)\n",  # no result at all
        "raise SystemExit(0)\n",
    ]
    got = eg.grade_evalplus(
        pool, "humaneval_plus", problems, expected["humaneval_plus"], [(0, h) for h in hostile]
    )
    assert not any(g["plus"] or g["base"] for g in got), got
    assert "over its time limit" in got[0]["verdict"]
    assert "InvalidOutput" in got[1]["verdict"] and "InvalidOutput" in got[2]["verdict"]
    assert "returned True, expected False" in got[3]["verdict"]
    # the run goes on: the same pool still grades an honest solution right
    again = _evalplus(pool, data, expected, "humaneval_plus", pf.CANONICAL["humaneval_plus"])
    assert all(r["plus"] for r in again)


def test_failed_reference_runs_drop_tests_and_never_pass_vacuously(pool):
    problem = {
        "id": "X/0",
        "prompt": "",
        "entry_point": "g",
        # a set output travels; a generator does not (its test is dropped); 0 raises
        "canonical_solution": (
            "def g(x):\n    if x == 1:\n        return (i for i in range(2))\n"
            "    return {x, 1 / x}\n"
        ),
        "base_input": [[2], [1]],
        "plus_input": [[0]],
        "atol": 0.0,
    }
    expected = eg.evalplus_expected(pool, [problem])
    assert [ref[0] for ref in expected[0]] == [True, False, False]
    right = "def g(x):\n    return {x, 1 / x}\n"
    got = eg.grade_evalplus(pool, "humaneval_plus", [problem], expected, [(0, right)])
    assert got[0]["base"] and got[0]["dropped_tests"] == 2
    assert not got[0]["plus"] and got[0]["verdict"] == "no plus test could be graded"
    broken = dict(problem, canonical_solution="def g(x):\n    raise ValueError\n")
    expected = eg.evalplus_expected(pool, [broken])
    got = eg.grade_evalplus(pool, "humaneval_plus", [broken], expected, [(0, right)])
    assert not got[0]["base"] and got[0]["verdict"] == "no base test could be graded"


def test_restored_mbpp_inputs_reach_the_programs(pool, tmp_path):
    """The real Mbpp/2 record: its lists arrive as tuples, as EvalPlus passes them."""
    shutil.copy(FIXTURES / "MbppPlus-v0.2.0.excerpt.jsonl", tmp_path / "MbppPlus.jsonl")
    record = bm.load("mbpp_plus", tmp_path, max_records=1)[0]
    assert record["id"] == "Mbpp/2"
    kinds = "def similar_elements(a, b):\n    return [type(a).__name__, type(b).__name__]\n"
    problem = dict(record, prompt="", canonical_solution=kinds, plus_input=[])
    expected = eg.evalplus_expected(pool, [problem], benchmark="mbpp_plus")
    assert expected[0][0][:2] == (True, ["tuple", "tuple"])


def test_real_release_excerpts_canonical_one_return_none_zero(pool, tmp_path):
    """Real HumanEval+ and MBPP+ records (the odd ones, every special oracle and input rule):
    canonical solutions pass base and plus, `return None` fails both, nothing is dropped."""
    shutil.copy(FIXTURES / "MbppPlus-v0.2.0.excerpt.jsonl", tmp_path / "MbppPlus.jsonl")
    shutil.copy(FIXTURES / "HumanEvalPlus-v0.1.10.excerpt.jsonl", tmp_path / "HumanEvalPlus.jsonl")
    for bench in ("mbpp_plus", "humaneval_plus"):
        problems = bm.load(bench, tmp_path)
        expected = eg.evalplus_expected(pool, problems, benchmark=bench)
        right = [(i, p["prompt"] + p["canonical_solution"]) for i, p in enumerate(problems)]
        none = [
            (i, f"def {p['entry_point']}(*a):\n    return None\n") for i, p in enumerate(problems)
        ]
        got = eg.grade_evalplus(pool, bench, problems, expected, right + none, wave=64)
        assert all(g["base"] and g["plus"] and g["dropped_tests"] == 0 for g in got[: len(right)])
        assert not any(g["base"] or g["plus"] for g in got[len(right) :]), bench


def _problem(canonical: str, inputs: list) -> dict:
    return {"id": "X/1", "prompt": "", "entry_point": "g", "canonical_solution": canonical,
            "base_input": inputs, "plus_input": [], "atol": 0.0}  # fmt: skip


def test_evalplus_time_limit_is_from_the_reference_run(pool):
    problem = _problem("def g(x):\n    return x\n", [[1], [2]])
    expected = eg.evalplus_expected(pool, [problem])
    slow = "import time\n\ndef g(x):\n    time.sleep(0.4)\n    return x\n"
    got = eg.grade_evalplus(pool, "humaneval_plus", [problem], expected, [(0, slow)] * 2)
    assert got[0]["plus"]  # EvalPlus's floor: 1 s
    tight = eg.grade_evalplus(
        pool, "humaneval_plus", [problem], expected, [(0, slow)], min_time_limit_s=0.2
    )
    assert not tight[0]["base"] and "over its time limit of 0.20 s (twice)" in tight[0]["verdict"]
    assert eg.time_limit_s(0.5) == 2.0 and eg.time_limit_s(0.01) == 1.0


def test_outputs_that_are_not_literals_travel_packed(pool):
    """Counter, OrderedDict, nan, complex, frozenset, a huge output and an int too long for repr
    compare as EvalPlus's ==."""
    canonical = (
        "import collections\n\ndef g(k):\n"
        "    if k == 0:\n        return collections.Counter('abca')\n"
        "    if k == 1:\n        return [float('nan'), 1j + 2, frozenset({1})]\n"
        "    if k == 2:\n        return list(range(40000))\n"
        "    if k == 4:\n        return 7**20000\n"
        "    return collections.OrderedDict([(2, 'b'), (1, 'a')])\n"
    )
    problem = _problem(canonical, [[0], [1], [2], [3]])
    expected = eg.evalplus_expected(pool, [problem])
    assert all(ref[0] for ref in expected[0]), expected
    assert type(expected[0][0][1]).__name__ == "Counter"
    assert isinstance(expected[0][2][1], evalplus_values.Digest)
    as_dict = canonical.replace("collections.Counter('abca')", "{'a': 2, 'b': 1, 'c': 1}")
    off_by_one = canonical.replace("range(40000)", "range(1, 40001)")
    reordered = canonical.replace("[(2, 'b'), (1, 'a')]", "[(1, 'a'), (2, 'b')]")
    got = eg.grade_evalplus(
        pool, "humaneval_plus", [problem], expected,
        [(0, canonical), (0, as_dict), (0, off_by_one), (0, reordered)],
    )  # fmt: skip
    # nan != nan, as in EvalPlus: the canonical solution itself fails test 1 there too
    assert [g["verdict"][:7] for g in got] == ["test 1:"] * 4
    just_counter = dict(problem, base_input=[[0], [2], [3], [4]])
    expected = eg.evalplus_expected(pool, [just_counter])
    assert expected[0][3][1] == 7**20000  # 16,900 digits: more than repr allows
    got = eg.grade_evalplus(
        pool, "humaneval_plus", [just_counter], expected,
        [(0, canonical), (0, as_dict), (0, off_by_one), (0, reordered)],
    )  # fmt: skip
    assert [g["base"] for g in got] == [True, True, False, False]


def test_effective_atols_follow_evalplus_loop():
    refs = [(True, 1, 0.0), (True, 0.5, 0.0), (True, 2, 0.0), (True, 3, 0.0), (True, [1.0], 0.0)]
    assert eg.effective_atols(0.0, refs, n_base=3) == [0, 1e-6, 1e-6, 0, 1e-6]
    assert eg.effective_atols(1e-4, refs, n_base=3) == [1e-4] * 5
    assert eg.evalplus_match([1, 2], [1, 2.0000000001], 1e-6, None, [])  # carried atol
    assert not eg.evalplus_match([1, 2], [1, 2.0000000001], 0.0, None, [])
    assert eg.evalplus_match((3, 1), (1, 3), 0.0, "set_equal", [])
    assert eg.evalplus_match(False, False, 0.0, "not_none", [])
    assert eg.evalplus_match(24, 0, 0.0, "surface_area", [2, 2]) is False
    assert eg.evalplus_match(13, 0, 0.0, "surface_area", [2, 2])  # round(4 + 4 * sqrt(5))
