"""Tests for azr_jax.selfplay.tasks: groups, task dataclasses, JSON round trips, seeds, no-JAX imports."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from azr_jax.selfplay import tasks
from azr_jax.selfplay.tasks import InductionTask, Role, TaskType, Triplet


def test_six_groups_in_fixed_order():
    assert tasks.NUM_GROUPS == 6
    assert tasks.GROUPS[0] == (TaskType.DEDUCTION, Role.PROPOSER)
    assert tasks.GROUPS[1] == (TaskType.DEDUCTION, Role.SOLVER)
    assert tasks.GROUPS[5] == (TaskType.INDUCTION, Role.SOLVER)
    assert len(set(tasks.GROUPS)) == 6
    for gid, (task_type, role) in enumerate(tasks.GROUPS):
        assert tasks.group_id(task_type, role) == gid
    assert tasks.group_id("code_i", "solve") == 3
    assert tasks.group_name(4) == "code_f/propose"


def test_task_type_values():
    assert TaskType.DEDUCTION.value == "code_o"
    assert TaskType.ABDUCTION.value == "code_i"
    assert TaskType.INDUCTION.value == "code_f"
    assert TaskType("code_f") is TaskType.INDUCTION


def test_triplet_json_round_trip():
    t = Triplet(program="def f(x):\n    return x + 1", input="1", output="2")
    data = json.loads(json.dumps(t.to_dict()))
    assert data == {"program": t.program, "input": "1", "output": "2"}
    assert Triplet.from_dict(data) == t
    assert tasks.task_from_dict(TaskType.DEDUCTION, data) == t


def test_induction_task_json_round_trip_and_split():
    inputs = tuple(str(i) for i in range(10))
    outputs = tuple(str(2 * i) for i in range(10))
    task = InductionTask("def f(x):\n    return 2 * x", inputs, outputs, "doubles")
    data = json.loads(json.dumps(task.to_dict()))
    assert isinstance(data["inputs"], list)
    back = tasks.task_from_dict(TaskType.INDUCTION, data)
    assert back == task and isinstance(back.inputs, tuple)
    assert task.visible_pairs == (("0", "0"), ("1", "2"), ("2", "4"), ("3", "6"), ("4", "8"))
    assert task.hidden_pairs[0] == ("5", "10") and len(task.hidden_pairs) == 5
    # Lists given directly become tuples, so the task stays hashable.
    assert hash(InductionTask("p", ["1"], ["1"], "m", num_visible=1))


def test_induction_task_rejects_bad_shapes():
    with pytest.raises(ValueError, match="one output per input"):
        InductionTask("p", ("1", "2"), ("1",), "m")
    with pytest.raises(ValueError, match="num_visible"):
        InductionTask("p", ("1", "2"), ("1", "2"), "m", num_visible=3)
    with pytest.raises(ValueError, match="num_visible"):
        InductionTask("p", ("1", "2"), ("1", "2"), "m", num_visible=0)


def test_seed_triplet_is_identity_on_hello_world():
    seed = tasks.seed_triplet()
    assert seed.program == "def f(a):\n    return a"
    assert seed.input == "'Hello world'" and seed.output == "'Hello world'"
    namespace: dict = {}
    exec(seed.program, namespace)  # Trusted constant; the executor is not needed for it.
    assert repr(namespace["f"](ast.literal_eval(seed.input))) == seed.output


def test_seed_induction_task_has_ten_typed_identity_pairs():
    seed = tasks.seed_induction_task()
    assert seed.program == tasks.identity_program()
    assert len(seed.inputs) == 10 and len(set(seed.inputs)) == 10
    assert seed.outputs == seed.inputs
    values = [ast.literal_eval(s) for s in seed.inputs]
    assert len({type(v) for v in values}) >= 6
    assert seed.message
    # Outputs are reprs: each evaluates back to its input's value.
    assert all(repr(v) == out for v, out in zip(values, seed.outputs, strict=True))


def test_task_key_is_program_and_inputs():
    a = Triplet("p", "1", "1")
    assert tasks.task_key(a) == tasks.task_key(Triplet("p", "1", "other"))
    assert tasks.task_key(a) != tasks.task_key(Triplet("p", "2", "2"))
    ind = InductionTask("p", ("1", "2"), ("1", "2"), "m", num_visible=1)
    assert tasks.task_key(ind) == tasks.task_key(InductionTask("p", ("1", "2"), ("a", "b"), "x", 1))


def test_host_modules_do_not_import_jax():
    code = (
        "import sys; import azr_jax.selfplay.tasks, azr_jax.selfplay.prompts, azr_jax.selfplay.parsing, "
        "azr_jax.selfplay.buffers, azr_jax.selfplay.rewards, azr_jax.selfplay.advantages; "
        "assert 'jax' not in sys.modules, 'a host module imported jax'; "
        "assert 'flax' not in sys.modules"
    )
    repo_root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root
    )
    assert result.returncode == 0, result.stderr
