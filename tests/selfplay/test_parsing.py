"""Tests for azr_jax.selfplay.parsing: well-formed responses, and adversarial text for every rule."""

import pytest

from azr_jax.selfplay import parsing
from azr_jax.selfplay.parsing import parse_proposer_response, parse_solver_response
from azr_jax.selfplay.tasks import TaskType

D, A, IND = TaskType.DEDUCTION, TaskType.ABDUCTION, TaskType.INDUCTION
PROGRAM = "def f(x):\n    return x * 2"


def respond(answer: str, thought: str = "Let me trace it.") -> str:
    """A response as the model writes it: it starts inside <think> (the prompt opened it)."""
    return f" {thought}\n</think>\n<answer>{answer}</answer>"


def fence(lang: str, body: str) -> str:
    return f"```{lang}\n{body}\n```"


def induction_proposal(inputs, message="doubles its argument"):
    blocks = "\n".join(fence("input", x) for x in inputs)
    return respond(f"\n{blocks}\n{fence('message', message)}\n")


# --- structure -----------------------------------------------------------------------------


def test_well_formed_deduction_answer():
    got = parse_solver_response(D, respond(" [1, 'a'] \n"))
    assert got.well_formed and got.answer == "[1, 'a']" and got.error is None


def test_repeated_opening_think_tag_is_accepted():
    got = parse_solver_response(D, "\n<think>hmm</think><answer>3</answer>")
    assert got.well_formed and got.answer == "3"


def test_empty_thought_is_accepted_and_trailing_whitespace_is_ignored():
    got = parse_solver_response(A, "</think> <answer>'abc', 3</answer>\n\n  ")
    assert got.answer == "'abc', 3"


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ("I think it is 3. <answer>3</answer>", "missing </think>"),  # Never closed thinking.
        ("a</think> b </think><answer>3</answer>", "several </think>"),
        ("a <think> b </think><answer>3</answer>", "nested or reopened <think>"),
        ("<think><think>a</think></think><answer>3</answer>", "nested"),
        ("a</think><think>b</think><answer>3</answer>", "nested or reopened <think>"),
        ("a</think> The answer is 3.", "missing <answer>"),
        ("a</think><answer>3", "missing <answer> or </answer>"),  # Unclosed answer.
        ("a</think>3</answer>", "missing <answer> or </answer>"),
        ("a</think><answer>3</answer><answer>4</answer>", "several <answer>"),
        ("a</think><answer>3<answer>4</answer></answer>", "several <answer>"),  # Nested.
        ("maybe <answer>2</answer></think><answer>3</answer>", "several <answer>"),
        ("a <answer>3</answer></think>", "tags out of order"),
        ("a</think></answer>3<answer>", "tags out of order"),
        ("a</think>So: <answer>3</answer>", "text between"),
        ("a</think><answer>3</answer> or maybe 4", "text after </answer>"),
        ("a</think><answer>   \n </answer>", "empty answer"),
        ("a</think><answer></answer>", "empty answer"),
        ("", "missing </think>"),
    ],
)
def test_malformed_structure(response, reason):
    for task_type in (D, A, IND):
        got = parse_solver_response(task_type, response)
        assert not got.well_formed and got.answer is None
        assert reason in got.error
    proposal = parse_proposer_response(D, response)
    assert not proposal.well_formed and reason in proposal.error


def test_size_cap_is_a_format_error():
    huge = "[" + "1, " * 10_000 + "1]"
    got = parse_solver_response(D, respond(huge))
    assert not got.well_formed and "longer than" in got.error
    assert parse_solver_response(D, respond(huge), max_answer_chars=len(huge)).well_formed
    big_program = "def f(x):\n" + "    x += 1\n" * 2_000 + "    return x"
    proposal = parse_proposer_response(
        D, respond(fence("python", big_program) + fence("input", "1"))
    )
    assert not proposal.well_formed and "longer than" in proposal.error


def test_tags_are_case_sensitive():
    got = parse_solver_response(D, "a</THINK><ANSWER>3</ANSWER>")
    assert not got.well_formed and "missing </think>" in got.error


# --- solver answers ------------------------------------------------------------------------


def test_bare_value_answer_with_a_code_fence_is_malformed():
    got = parse_solver_response(D, respond(fence("python", "[1, 2]")))
    assert not got.well_formed and "code fence" in got.error
    assert not parse_solver_response(A, respond("```\n'x'\n```")).well_formed


def test_induction_solver_program_is_the_python_block():
    got = parse_solver_response(IND, respond(f"Here it is:\n{fence('python', PROGRAM)}\nDone."))
    assert got.well_formed and got.answer == PROGRAM


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (PROGRAM, "expected 1 ```python block(s), found 0"),  # Bare code, no fence.
        (fence("input", PROGRAM), "unexpected ```input block"),  # Code in the wrong block.
        (fence("", PROGRAM), "unexpected ```(no language) block"),
        (fence("python", PROGRAM) + fence("python", PROGRAM), "found 2"),
        (f"```python\n{PROGRAM}\n", "found 0"),  # Unclosed fence.
        (fence("python", "  \n"), "empty ```python block"),
    ],
)
def test_induction_solver_malformed_blocks(answer, reason):
    got = parse_solver_response(IND, respond(answer))
    assert not got.well_formed and reason in got.error


def test_python_language_tag_is_case_insensitive():
    got = parse_solver_response(IND, respond(fence("Python ", PROGRAM)))
    assert got.answer == PROGRAM


# --- proposer responses --------------------------------------------------------------------


@pytest.mark.parametrize("task_type", [D, A])
def test_triplet_proposal(task_type):
    text = respond(f"{fence('python', PROGRAM)}\n{fence('input', '[1, 2], 3')}")
    got = parse_proposer_response(task_type, text)
    assert got.well_formed
    assert got.program == PROGRAM and got.inputs == ("[1, 2], 3",) and got.message is None


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (fence("python", PROGRAM), "expected 1 ```input block(s), found 0"),
        (fence("input", "1"), "expected 1 ```python block(s), found 0"),
        (fence("python", PROGRAM) + fence("input", "1") + fence("input", "2"), "found 2"),
        (fence("python", PROGRAM) + fence("input", "1") + fence("output", "2"), "```output"),
        (fence("input", PROGRAM) + fence("python", "1"), None),  # Swapped: graded later.
        (fence("python", PROGRAM) + "```input\n1", "found 0"),  # Unclosed input block.
        (fence("python", PROGRAM) + fence("input", " "), "empty ```input block"),
    ],
)
def test_triplet_proposal_malformed(answer, reason):
    got = parse_proposer_response(D, respond(answer))
    if reason is None:
        # Swapped blocks are structurally fine; the executor rejects the program as invalid.
        assert got.well_formed and got.program == "1"
    else:
        assert not got.well_formed and reason in got.error
        assert got.program is None and got.inputs == () and got.message is None


def test_induction_proposal():
    inputs = [str(i) for i in range(10)]
    got = parse_proposer_response(IND, induction_proposal(inputs))
    assert got.well_formed and got.program is None
    assert got.inputs == tuple(inputs) and got.message == "doubles its argument"


@pytest.mark.parametrize(
    ("inputs", "message", "reason"),
    [
        ([str(i) for i in range(9)], "m", "expected 10 ```input block(s), found 9"),
        ([str(i) for i in range(11)], "m", "found 11"),
        (["1"] * 10, "m", "duplicate inputs"),
        ([str(i) for i in range(10)], "", "empty ```message block"),
    ],
)
def test_induction_proposal_malformed(inputs, message, reason):
    got = parse_proposer_response(IND, induction_proposal(inputs, message))
    assert not got.well_formed and reason in got.error


def test_induction_proposal_rejects_extra_program_and_honours_num_inputs():
    inputs = [str(i) for i in range(4)]
    text = induction_proposal(inputs)
    assert parse_proposer_response(IND, text, num_inputs=4).well_formed
    with_program = text.replace("<answer>", "<answer>" + fence("python", PROGRAM))
    got = parse_proposer_response(IND, with_program, num_inputs=4)
    assert not got.well_formed and "```python" in got.error
    two_messages = text.replace("</answer>", fence("message", "again") + "</answer>")
    assert "found 2" in parse_proposer_response(IND, two_messages, num_inputs=4).error


def test_fenced_blocks_reads_language_and_body():
    text = "x " + fence("python", PROGRAM) + " y " + fence("INPUT", " 1 ") + " ```input\nopen"
    assert parsing.fenced_blocks(text) == [("python", PROGRAM), ("input", "1")]
