"""Read model responses back into typed answers and proposals, or say why they are malformed.

This module only judges FORMAT. Whether an answer is right, or a proposed program is valid, is
decided later by the executor; a response that parses here is "well-formed" (a wrong one earns
-0.5), one that does not is "malformed" (-1).

Structure of a response. Prompts end with `Assistant: <think>`, so the response begins inside
the reasoning. The rules, checked in this order:

1. An optional `<think>` at the very start (after whitespace) is dropped: models often repeat
   the opening tag, and it is the same structure.
2. After that, the response must contain exactly one `</think>` and no other `<think>`: a
   reopened or nested think block is malformed.
3. It must contain exactly one `<answer>` and one `</answer>`, both after `</think>`, with only
   whitespace between `</think>` and `<answer>`. Several answer blocks are malformed rather than
   graded one by one: picking the first or last would let a model hedge across attempts.
   Tag-like text inside the reasoning counts too, so a model that writes `<answer>` while
   thinking is malformed.
4. Only whitespace may follow `</answer>`. Decode with special tokens skipped, so an end-of-text
   token does not count as trailing text.
5. The answer, stripped, must be non-empty and at most `max_answer_chars` long (a size cap, so
   a runaway answer is a format error and never reaches the executor).

Inside the answer, fenced blocks are written as ```lang ... ``` with the language on the
opening line. The set of blocks must be exactly what the task asks for (see the parse
functions); prose between blocks is ignored.
"""

from __future__ import annotations

import dataclasses
import re

from azr_jax.selfplay.tasks import TaskType

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"

# Size cap on the text inside <answer>: a long program plus ten inputs fits well within it.
MAX_ANSWER_CHARS = 12_000

# A fenced block: ``` + language tag + newline, body, closing ```. An unclosed fence matches
# nothing, so its block simply goes missing.
_FENCE = re.compile(r"```([^\n`]*)\n(.*?)```", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class SolverAnswer:
    """A parsed solver response: the answer text, or the reason the response is malformed."""

    answer: str | None  # Deduction: a literal. Abduction: arguments. Induction: the program.
    error: str | None = None

    @property
    def well_formed(self) -> bool:
        return self.error is None


@dataclasses.dataclass(frozen=True)
class Proposal:
    """A parsed proposer response, or the reason it is malformed (then all fields are empty)."""

    program: str | None  # Deduction/abduction only; induction programs come from the buffer.
    inputs: tuple[str, ...]  # One for deduction/abduction, N for induction.
    message: str | None  # Induction only.
    error: str | None = None

    @property
    def well_formed(self) -> bool:
        return self.error is None


def _malformed_answer(reason: str) -> SolverAnswer:
    return SolverAnswer(answer=None, error=reason)


def _malformed_proposal(reason: str) -> Proposal:
    return Proposal(program=None, inputs=(), message=None, error=reason)


def extract_answer(
    response: str, max_answer_chars: int = MAX_ANSWER_CHARS
) -> tuple[str | None, str | None]:
    """Check the think/answer structure (module docstring) and return (answer, error).

    Exactly one of the two is None. The answer is stripped of surrounding whitespace.
    """
    body = response.lstrip()
    if body.startswith(THINK_OPEN):
        body = body[len(THINK_OPEN) :]
    if THINK_OPEN in body:
        return None, "nested or reopened <think>"
    n_close = body.count(THINK_CLOSE)
    if n_close != 1:
        return None, "missing </think>" if n_close == 0 else "several </think>"
    n_open, n_end = body.count(ANSWER_OPEN), body.count(ANSWER_CLOSE)
    if n_open == 0 or n_end == 0:
        return None, "missing <answer> or </answer>"
    if n_open > 1 or n_end > 1:
        return None, "several <answer> blocks"
    think_end = body.index(THINK_CLOSE)
    start, end = body.index(ANSWER_OPEN), body.index(ANSWER_CLOSE)
    if not think_end < start < end:
        return None, "tags out of order"
    if body[think_end + len(THINK_CLOSE) : start].strip():
        return None, "text between </think> and <answer>"
    if body[end + len(ANSWER_CLOSE) :].strip():
        return None, "text after </answer>"
    answer = body[start + len(ANSWER_OPEN) : end].strip()
    if not answer:
        return None, "empty answer"
    if len(answer) > max_answer_chars:
        return None, f"answer longer than {max_answer_chars} characters"
    return answer, None


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """All closed fenced blocks in `text` as (language, body), language lower-cased.

    Bodies are stripped of surrounding whitespace.
    """
    return [(lang.strip().lower(), body.strip()) for lang, body in _FENCE.findall(text)]


def _blocks_by_language(
    answer: str, expected: dict[str, int]
) -> tuple[dict[str, list[str]] | None, str | None]:
    """Group the answer's blocks by language; exactly `expected[lang]` of each, nothing else."""
    found: dict[str, list[str]] = {lang: [] for lang in expected}
    for lang, body in fenced_blocks(answer):
        if lang not in found:
            return None, f"unexpected ```{lang or '(no language)'} block"
        found[lang].append(body)
    for lang, count in expected.items():
        if len(found[lang]) != count:
            return None, f"expected {count} ```{lang} block(s), found {len(found[lang])}"
        if any(not body for body in found[lang]):
            return None, f"empty ```{lang} block"
    return found, None


def parse_solver_response(
    task_type: TaskType, response: str, max_answer_chars: int = MAX_ANSWER_CHARS
) -> SolverAnswer:
    """Parse a solver response for a task of `task_type`.

    Deduction and abduction answers are bare text (a literal, or the arguments of `f`); a code
    fence in them is malformed, since the prompt asks for the bare value. An induction answer
    must hold exactly one ```python block and no other block; its body is the answer.
    Evaluation on CRUXEval-O/I parses with DEDUCTION/ABDUCTION.
    """
    answer, error = extract_answer(response, max_answer_chars)
    if error is not None:
        return _malformed_answer(error)
    if TaskType(task_type) is TaskType.INDUCTION:
        blocks, error = _blocks_by_language(answer, {"python": 1})
        if error is not None:
            return _malformed_answer(error)
        return SolverAnswer(answer=blocks["python"][0])
    if "```" in answer:
        return _malformed_answer("code fence in a bare-value answer")
    return SolverAnswer(answer=answer)


def parse_proposer_response(
    task_type: TaskType,
    response: str,
    num_inputs: int = 10,
    max_answer_chars: int = MAX_ANSWER_CHARS,
) -> Proposal:
    """Parse a proposer response for a task of `task_type`.

    Deduction/abduction: exactly one ```python block (the program) and one ```input block.
    Induction: exactly `num_inputs` ```input blocks, all different, and one ```message block;
    fewer inputs are malformed rather than padded, so every proposal has the same split.
    Any other block (e.g. ```output, or a program in an induction proposal) is malformed.
    """
    answer, error = extract_answer(response, max_answer_chars)
    if error is not None:
        return _malformed_proposal(error)
    if TaskType(task_type) is TaskType.INDUCTION:
        blocks, error = _blocks_by_language(answer, {"input": num_inputs, "message": 1})
        if error is not None:
            return _malformed_proposal(error)
        inputs = tuple(blocks["input"])
        if len(set(inputs)) != len(inputs):
            return _malformed_proposal("duplicate inputs")
        return Proposal(program=None, inputs=inputs, message=blocks["message"][0])
    blocks, error = _blocks_by_language(answer, {"python": 1, "input": 1})
    if error is not None:
        return _malformed_proposal(error)
    return Proposal(program=blocks["python"][0], inputs=(blocks["input"][0],), message=None)
