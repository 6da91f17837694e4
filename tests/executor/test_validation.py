"""AZR validation: CRUXEval reproduces exactly, altered outputs mismatch, bad proposals fail."""

import pytest

from azr_jax.executor.literals import parse_literal, strict_equal
from azr_jax.executor.pool import ExecutorPool
from azr_jax.executor.validation import Proposal, validate_many, validate_proposal
from tests.executor.data import cruxeval_records


@pytest.fixture(scope="module")
def pool():
    with ExecutorPool(workers=2, timeout_s=5.0, memory_mb=512) as p:
        yield p


@pytest.fixture(scope="module")
def crux_verdicts(pool):
    records = cruxeval_records()
    return records, validate_many(pool, [Proposal(r["code"], [r["input"]]) for r in records])


def test_cruxeval_every_record_valid_and_reproduced(crux_verdicts):
    records, verdicts = crux_verdicts
    assert len(records) == 500
    bad = [(r["id"], v.reason) for r, v in zip(records, verdicts, strict=True) if not v.valid]
    assert bad == []
    wrong = [
        r["id"]
        for r, v in zip(records, verdicts, strict=True)
        if not strict_equal(parse_literal(v.outputs[0]), parse_literal(r["output"]))
    ]
    assert wrong == []


def _alter(text: str) -> str:
    value = parse_literal(text)
    altered = {
        bool: lambda v: not v,
        int: lambda v: v + 1,
        float: lambda v: v + 1.5,
        str: lambda v: v + "x",
        list: lambda v: v + [0],
        tuple: lambda v: v + (0,),
        dict: lambda v: {**v, "__x": 0},
        set: lambda v: v | {"__x"},
        bytes: lambda v: v + b"x",
        type(None): lambda v: 0,
    }[type(value)](value)
    return repr(altered)


def test_cruxeval_altered_outputs_all_mismatch(crux_verdicts):
    records, verdicts = crux_verdicts
    matches = [
        strict_equal(parse_literal(v.outputs[0]), parse_literal(_alter(r["output"])))
        for r, v in zip(records, verdicts, strict=True)
    ]
    assert not any(matches)


def test_renamed_program_is_returned(pool):
    got = validate_proposal(
        pool, "def helper(a):\n    return a * 2\ndef main(a):\n    return helper(a)", ["3"]
    )
    assert got.valid and got.outputs == ["6"] and "def f(a)" in got.code


def test_induction_needs_every_input_and_a_message(pool):
    code = "def f(x):\n    return 10 // x"
    ok = validate_proposal(pool, code, ["1", "2", "5"], message="divides ten", induction=True)
    assert ok.valid and ok.outputs == ["10", "5", "2"]
    one_fails = validate_proposal(pool, code, ["1", "0"], message="m", induction=True)
    assert not one_fails.valid and "input 1" in one_fails.reason
    no_message = validate_proposal(pool, code, ["1"], message="  ", induction=True)
    assert not no_message.valid and "message" in no_message.reason


def test_rejections_come_with_reasons(pool):
    cases = {
        "import random\ndef f(x):\n    return random.random()": "banned",
        "def f(x):\n    return x[": "syntax",
        "def f(x):\n    return hash(str(x))": "nondeterministic",
        "def f(x):\n    raise ValueError('no')": "ValueError",
        "def f(x):\n    return object()": "InvalidOutput",
    }
    for code, reason in cases.items():
        got = validate_proposal(pool, code, ["'abc'"])
        assert not got.valid and reason in got.reason and got.outputs == [], (code, got)
    assert (
        "input" in validate_proposal(pool, "def f(x):\n    return x", ["__import__('os')"]).reason
    )
    assert validate_proposal(pool, "def f(x):\n    return x", []).reason == "no input"


def test_validation_needs_two_hash_seeds():
    with ExecutorPool(workers=1, timeout_s=1.0) as single:
        with pytest.raises(ValueError, match="workers >= 2"):
            validate_proposal(single, "def f(x):\n    return x", ["1"])
