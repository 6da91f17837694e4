"""Tests for azr_jax.selfplay.prompts: wrapper structure, what each prompt shows and hides, formats."""

import pytest

from azr_jax.selfplay import prompts
from azr_jax.selfplay.parsing import parse_proposer_response, parse_solver_response
from azr_jax.selfplay.tasks import InductionTask, TaskType, Triplet, seed_induction_task

BANNED = ("random", "time", "os.sys", "subprocess")
REFS = [Triplet(f"def f(x):\n    return x + {i}  # ref{i}", f"{i}00", f"{i}0{i}") for i in range(6)]


def all_prompts() -> list[str]:
    task = InductionTask("def f(x):\n    return -x", tuple("12"), ("-1", "-2"), "negates", 1)
    return [
        prompts.deduction_proposer_prompt(REFS, BANNED),
        prompts.abduction_proposer_prompt(REFS, BANNED),
        prompts.induction_proposer_prompt("def f(x):\n    return x", BANNED),
        prompts.deduction_solver_prompt("def f(x):\n    return x", "1"),
        prompts.abduction_solver_prompt("def f(x):\n    return x", "1"),
        prompts.solver_prompt(TaskType.INDUCTION, task),
        prompts.evaluation_prompt("cruxeval_o", "def f(x):\n    return x", "1", "1"),
    ]


def test_r1_wrapper_structure():
    for text in all_prompts():
        assert text.startswith(prompts.PREAMBLE + "\nUser: ")
        assert text.endswith("\nAssistant: <think>")
        assert text.count("Assistant: <think>") == 1
    assert "<think>" in prompts.PREAMBLE and "</answer>" in prompts.PREAMBLE
    assert prompts.wrap("TASK") == f"{prompts.PREAMBLE}\nUser: TASK\nAssistant: <think>"


@pytest.mark.parametrize("task_type", [TaskType.DEDUCTION, TaskType.ABDUCTION])
def test_triplet_proposer_prompt_states_rules_format_and_references(task_type):
    text = prompts.triplet_proposer_prompt(task_type, REFS, BANNED)
    for module in BANNED:
        assert module in text
    for phrase in ("named `f`", "return a value", "deterministic", "random", "printing"):
        assert phrase in text
    assert "quickly" in text and "import at the top" in text
    for ref in REFS:
        assert ref.program in text and f"```input\n{ref.input}\n```" in text
        assert f"```output\n{ref.output}\n```" in text
    assert "```python" in text and "exactly one input block" in text


def test_deduction_and_abduction_proposers_differ_in_goal():
    ded = prompts.deduction_proposer_prompt(REFS[:2], BANNED)
    abd = prompts.abduction_proposer_prompt(REFS[:2], BANNED)
    assert ded != abd
    assert "work out the value" in ded and "find an input" in abd


def test_proposer_prompt_without_references():
    text = prompts.deduction_proposer_prompt([], [])
    assert "Reference 1" not in text and "(none)" in text


def test_induction_proposer_prompt():
    program = "def f(s):\n    return s[::-1]  # unique-marker"
    text = prompts.induction_proposer_prompt(program, BANNED, num_inputs=10, num_visible=5)
    assert program in text
    assert "10 different inputs" in text and "exactly 10 input blocks" in text
    assert "5 of the input/output pairs" in text and "```message" in text
    assert "subprocess" in text


def test_deduction_solver_shows_program_and_input_not_output():
    t = Triplet("def f(x):\n    return x * 3", "'in-marker'", "'out-marker'")
    text = prompts.solver_prompt(TaskType.DEDUCTION, t)
    assert t.program in text and "'in-marker'" in text and "out-marker" not in text
    assert text == prompts.deduction_solver_prompt(t.program, t.input)


def test_abduction_solver_shows_program_and_output_not_input():
    t = Triplet("def f(x):\n    return x * 3", "'in-marker'", "'out-marker'")
    text = prompts.solver_prompt(TaskType.ABDUCTION, t)
    assert t.program in text and "'out-marker'" in text and "in-marker" not in text


def test_induction_solver_shows_message_and_visible_pairs_only():
    inputs = tuple(f"'in{i}'" for i in range(10))
    outputs = tuple(f"'out{i}'" for i in range(10))
    task = InductionTask("def f(x):\n    return 'secret'", inputs, outputs, "a hint")
    text = prompts.solver_prompt(TaskType.INDUCTION, task)
    assert "a hint" in text and "secret" not in text
    for i in range(5):
        assert f"```input\n'in{i}'\n```\n```output\n'out{i}'\n```" in text
    for i in range(5, 10):
        assert f"in{i}" not in text and f"out{i}" not in text
    assert "exactly one program block" in text


def test_solver_prompt_checks_task_kind():
    with pytest.raises(TypeError, match="InductionTask"):
        prompts.solver_prompt(TaskType.INDUCTION, REFS[0])
    with pytest.raises(TypeError, match="Triplet"):
        prompts.solver_prompt(TaskType.DEDUCTION, seed_induction_task())


def test_evaluation_prompt_uses_solver_format():
    code, inp, out = "def f(nums):\n    return sorted(nums)", "[3, 1]", "[1, 3]"
    assert prompts.evaluation_prompt("cruxeval_o", code, inp, out) == (
        prompts.deduction_solver_prompt(code, inp)
    )
    assert prompts.evaluation_prompt("cruxeval_i", code, inp, out) == (
        prompts.abduction_solver_prompt(code, out)
    )
    assert prompts.EVAL_TASK_TYPES == {
        "cruxeval_o": TaskType.DEDUCTION,
        "cruxeval_i": TaskType.ABDUCTION,
    }
    with pytest.raises(ValueError, match="unknown benchmark"):
        prompts.evaluation_prompt("humaneval", code, inp, out)


def test_answers_in_the_described_formats_parse():
    # A response that follows each prompt's format instructions is well-formed.
    solver = parse_solver_response(TaskType.DEDUCTION, "trace</think>\n<answer>[1, 3]</answer>")
    assert solver.answer == "[1, 3]"
    program = "def f(x):\n    return x"
    proposal = parse_proposer_response(
        TaskType.ABDUCTION,
        f"plan</think>\n<answer>\n```python\n{program}\n```\n```input\n'a', 2\n```\n</answer>",
    )
    assert proposal.program == program and proposal.inputs == ("'a', 2",)
