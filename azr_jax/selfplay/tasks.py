"""Typed task data for self-play: task types, roles, the six training groups and the tasks.

Everything here is plain data that round-trips through JSON-able dicts, so tasks can travel
between the host phases and sit in checkpointed buffers. Programs, inputs and outputs are kept
as Python source strings:

- `program`: source code whose main function is named `f`.
- `input`: source of the call arguments, as written between the parentheses of `f(...)`,
  e.g. `"'abc', 3"` for `f('abc', 3)`.
- `output`: `repr` of the value `f` returned (computed by the executor, never by the model).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


class TaskType(str, enum.Enum):
    """The three task types; the values are the names the AZR code and logs use."""

    DEDUCTION = "code_o"  # Solver predicts the output from program + input.
    ABDUCTION = "code_i"  # Solver predicts an input from program + output.
    INDUCTION = "code_f"  # Solver writes the program from input/output pairs + a message.


class Role(str, enum.Enum):
    """The two roles the single policy plays."""

    PROPOSER = "propose"
    SOLVER = "solve"


# The six (task type, role) groups in a fixed order; a group id is an index into this tuple.
# Advantages are normalised within each group, and metrics are logged per group.
GROUPS: tuple[tuple[TaskType, Role], ...] = tuple(
    (task_type, role) for task_type in TaskType for role in Role
)
NUM_GROUPS = len(GROUPS)


def group_id(task_type: TaskType, role: Role) -> int:
    """Index of the (task type, role) pair in `GROUPS`."""
    return GROUPS.index((TaskType(task_type), Role(role)))


def group_name(gid: int) -> str:
    """Readable name of a group id, e.g. `code_o/propose`, for logs and metrics."""
    task_type, role = GROUPS[gid]
    return f"{task_type.value}/{role.value}"


@dataclasses.dataclass(frozen=True)
class Triplet:
    """A deduction or abduction task: running `program` on `input` gives `output`."""

    program: str  # Source with main function `f`.
    input: str  # Source of the arguments of `f`.
    output: str  # repr of the returned value.

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Triplet:
        return cls(program=data["program"], input=data["input"], output=data["output"])


@dataclasses.dataclass(frozen=True)
class InductionTask:
    """An induction task: a program, its input/output pairs, and a message hinting at it.

    The first `num_visible` pairs are shown to the solver, the rest are hidden and used to
    check the solver's program (AZR: 10 inputs, 5 visible, 5 hidden). The proposer's inputs
    are kept in the order it wrote them.
    """

    program: str  # The buffer program the proposer was given (never shown to the solver).
    inputs: tuple[str, ...]  # [N] argument sources.
    outputs: tuple[str, ...]  # [N] reprs, outputs[i] = repr(f(inputs[i])).
    message: str  # The proposer's hint to the solver.
    num_visible: int = 5

    def __post_init__(self) -> None:
        # Lists from JSON become tuples, so tasks stay hashable and compare equal.
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if len(self.inputs) != len(self.outputs):
            raise ValueError(
                f"InductionTask needs one output per input, got {len(self.inputs)} inputs "
                f"and {len(self.outputs)} outputs"
            )
        if not 0 < self.num_visible <= len(self.inputs):
            raise ValueError(
                f"num_visible={self.num_visible} must be in [1, {len(self.inputs)}] "
                "(the number of input/output pairs)"
            )

    @property
    def visible_pairs(self) -> tuple[tuple[str, str], ...]:
        """(input, output) pairs shown to the solver."""
        return tuple(
            zip(self.inputs[: self.num_visible], self.outputs[: self.num_visible], strict=True)
        )

    @property
    def hidden_pairs(self) -> tuple[tuple[str, str], ...]:
        """(input, output) pairs held back to check the solver's program."""
        return tuple(
            zip(self.inputs[self.num_visible :], self.outputs[self.num_visible :], strict=True)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "message": self.message,
            "num_visible": self.num_visible,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InductionTask:
        return cls(
            program=data["program"],
            inputs=tuple(data["inputs"]),
            outputs=tuple(data["outputs"]),
            message=data["message"],
            num_visible=data.get("num_visible", 5),
        )


Task = Triplet | InductionTask


def task_from_dict(task_type: TaskType, data: dict[str, Any]) -> Task:
    """Rebuild a task of the given type from its `to_dict()` form."""
    if TaskType(task_type) is TaskType.INDUCTION:
        return InductionTask.from_dict(data)
    return Triplet.from_dict(data)


def task_key(task: Task) -> tuple[str, ...]:
    """What makes two tasks the same for de-duplication: the program and its input(s)."""
    if isinstance(task, InductionTask):
        return (task.program, *task.inputs)
    return (task.program, task.input)


def identity_program() -> str:
    """The seed program of every buffer: returns its single argument unchanged."""
    return "def f(a):\n    return a"


def seed_triplet() -> Triplet:
    """The seed of the deduction and abduction buffers: identity on 'Hello world'."""
    return Triplet(program=identity_program(), input="'Hello world'", output="'Hello world'")


# Inputs of the identity induction seed: ten values of different types, so that the visible
# half and the hidden half each cover several types. For identity the output repr is the input.
_SEED_INDUCTION_INPUTS: tuple[str, ...] = (
    "'Hello world'",
    "42",
    "[1, 2, 3]",
    "{'key': 'value'}",
    "(1.5, None)",
    "True",
    "''",
    "-7",
    "[[0], 'x']",
    "{3, 4}",
)


def seed_induction_task() -> InductionTask:
    """The seed of the induction buffer: the identity program on ten typed inputs."""
    return InductionTask(
        program=identity_program(),
        inputs=_SEED_INDUCTION_INPUTS,
        outputs=_SEED_INDUCTION_INPUTS,
        message="Whatever goes in comes back out unchanged.",
    )
