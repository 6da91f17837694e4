"""Grading: right answers score, wrong ones do not; CRUXEval's own == rule for evaluation."""

import pytest

from azr_jax.executor.grading import (
    crux_equal,
    grade_abduction,
    grade_abduction_many,
    grade_deduction,
    grade_induction,
    score_cruxeval,
)
from azr_jax.executor.pool import ExecutorPool
from tests.executor.data import cruxeval_records


@pytest.fixture(scope="module")
def pool():
    with ExecutorPool(workers=2, timeout_s=5.0, memory_mb=512) as p:
        yield p


def test_deduction_on_cruxeval():
    records = cruxeval_records()
    assert all(grade_deduction(r["output"], r["output"]) for r in records)
    assert not any(grade_deduction(r["output"] + " + 0", r["output"]) for r in records)
    assert not any(grade_deduction(r["input"] + ", 'x'", r["output"]) for r in records)


def test_abduction_on_cruxeval(pool):
    # The gold input is a right answer whenever it is a literal (7 of 500 are expressions,
    # which a training answer may not be); a wrong input is wrong (or rejected).
    records = cruxeval_records()[:120]
    right = grade_abduction_many(pool, [(r["code"], r["input"], r["output"]) for r in records])
    literal = [
        crux_equal(r["input"].join("[]"), r["input"].join("[]")) is not None for r in records
    ]
    assert [ok for ok, lit in zip(right, literal, strict=True) if lit] == [True] * sum(literal)
    wrong_out = grade_abduction_many(
        pool, [(r["code"], r["input"], repr(("not", r["output"]))) for r in records]
    )
    assert not any(wrong_out)


def test_abduction_examples(pool):
    code = "def f(s):\n    return s[::-1]"
    assert grade_abduction(pool, code, "'cba'", "'abc'")
    assert not grade_abduction(pool, code, "'abc'", "'abc'")
    assert not grade_abduction(pool, code, "'cb' + 'a'", "'abc'")  # not a literal


def test_induction(pool):
    pairs = [("1", "2"), ("5", "10"), ("'a'", "'aa'")]
    assert grade_induction(pool, "def double(x):\n    return x * 2", pairs)
    assert grade_induction(pool, "def f(x):\n    return x + x", pairs)
    assert not grade_induction(pool, "def f(x):\n    return x * 2 if x != 5 else 11", pairs)
    assert not grade_induction(pool, "def f(x):\n    return 2.0 * x", pairs[:2])  # 2.0 is not 2
    assert not grade_induction(pool, "def f(x):\n    while True:\n        pass", pairs[:1])
    assert not grade_induction(pool, "nonsense(", pairs)
    assert not grade_induction(pool, "def f(x):\n    return x", [])


def test_crux_rule_for_evaluation(pool):
    assert crux_equal("True", "1") is True  # == is not type-strict; training uses strict
    assert crux_equal("1.0", "1") is True
    assert crux_equal("x", "1") is None
    records = cruxeval_records()[:40]
    outputs = score_cruxeval(pool, records, [r["output"] for r in records], "output")
    assert all(outputs)
    inputs = score_cruxeval(pool, records, [r["input"] for r in records], "input")
    assert all(inputs)
    wrong = score_cruxeval(pool, records, ["'nope', 'no'" for _ in records], "input")
    assert sum(wrong) < len(records) // 4  # a few programs map anything to their output
    expr = score_cruxeval(pool, records[:1], [records[0]["output"] + " + type(1)()"], "output")
    assert expr in ([True], [False])  # evaluated in the sandbox, not here
