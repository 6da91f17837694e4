"""mbpp_inputs: the MBPP+ input-restoring table gives what EvalPlus's own deserializer gives
(compared directly where `evalplus` is installed), on the real release's records."""

import copy
import json
from pathlib import Path

import pytest

from azr_jax.evals import mbpp_inputs as mi

EXCERPT = Path(__file__).parent / "fixtures" / "MbppPlus-v0.2.0.excerpt.jsonl"


@pytest.fixture(scope="module")
def records():
    rows = [json.loads(line) for line in EXCERPT.read_text().splitlines()]
    return {r["task_id"]: r for r in rows}


def _types(value):
    """A value's shape as nested type names (what a solution can tell apart)."""
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [type(value).__name__, *(_types(v) for v in items)]
    if isinstance(value, dict):
        return ["dict", *(_types(v) for v in value.values())]
    return type(value).__name__


def test_every_task_has_one_rule():
    tasks = [t for ts in mi.RULE_TASKS.values() for t in ts]
    assert len(tasks) == len(set(tasks)) == len(mi.RULE_OF_TASK) == 62


def test_restored_shapes_on_real_records(records):
    """Hand-checked against EvalPlus 0.3.1's `mbpp_deserialize_inputs` on these records."""
    first = {tid: mi.restore(tid, r["base_input"])[0] for tid, r in records.items()}
    assert _types(first["Mbpp/2"]) == [
        "list",
        ["tuple", "int", "int", "int", "int"],
        ["tuple", "int", "int", "int", "int"],
    ]
    assert _types(first["Mbpp/124"]) == ["tuple", "float", "complex"]
    assert _types(first["Mbpp/252"]) == ["list", "complex"]
    assert _types(first["Mbpp/106"])[:2] == ["list", ["list", "int", "int", "int"]]
    assert _types(first["Mbpp/106"])[2][0] == "tuple"
    assert _types(first["Mbpp/580"])[0] == "tuple" and _types(first["Mbpp/580"])[1][0] == "tuple"
    assert _types(first["Mbpp/722"])[1][0] == "dict"
    assert all(v[0] == "tuple" for v in _types(first["Mbpp/722"])[1][1:])
    assert (
        _types(first["Mbpp/259"])[1][0] == "tuple" and _types(first["Mbpp/259"])[1][1][0] == "tuple"
    )
    plain = records["Mbpp/793"]["base_input"]  # no rule: the same inputs come back
    assert mi.restore("Mbpp/793", plain) is plain
    sets = mi.restore("Mbpp/115", [[[[1, 2], [], 3]]])  # EvalPlus writes {} (a dict) for empty
    assert sets == [[[{1, 2}, {}, {}]]] and type(sets[0][0][1]) is dict


def test_bad_shapes_and_ids_raise():
    with pytest.raises(ValueError, match="does not end in a task number"):
        mi.restore("Mbpp/x", [])
    with pytest.raises(TypeError):
        mi.restore("Mbpp/2", [[1, 2]])  # ints where the rule expects lists


def test_table_matches_evalplus_where_installed(records):
    """The package's own function, when importable (it is not a dependency)."""
    evalplus_mbpp = pytest.importorskip("evalplus.data.mbpp")
    for tid, r in records.items():
        for key in ("base_input", "plus_input"):
            inputs = r[key] or []
            want = evalplus_mbpp.mbpp_deserialize_inputs(tid, copy.deepcopy(inputs))
            got = mi.restore(tid, copy.deepcopy(inputs))
            assert repr(list(got)) == repr(list(want)), (tid, key)
