"""Prompt text for the three task types in both roles, plus benchmark evaluation prompts.

Every prompt is a plain-text R1-style conversation: a short preamble asking for reasoning in
`<think>...</think>` and a final answer in `<answer>...</answer>`, then `User: {task}`, then
`Assistant: <think>`, so the model's response starts inside its reasoning. `parsing.py` reads
the responses back; the answer formats described here and parsed there must stay in step:

- deduction solver: the returned value as a Python literal, bare.
- abduction solver: the arguments of `f` as Python literals, bare (`'abc', 3`).
- induction solver, and HumanEval: one ```python block with the program.
- deduction/abduction proposer: one ```python block and one ```input block.
- induction proposer: N ```input blocks and one ```message block.

All wording here is our own; only the structure follows the AZR paper.
"""

from __future__ import annotations

from collections.abc import Sequence

from azr_jax.selfplay.tasks import InductionTask, Task, TaskType, Triplet

PREAMBLE = (
    "The following is a conversation between a User and an Assistant. The User sets a task. "
    "The Assistant first works through the problem step by step inside <think> </think> "
    "tags, and then states its final answer inside <answer> </answer> tags, like this: "
    "<think> step-by-step reasoning </think> <answer> final answer </answer>."
)


def wrap(task: str) -> str:
    """Put a task into the conversation template; the response continues inside <think>."""
    return f"{PREAMBLE}\nUser: {task}\nAssistant: <think>"


def _block(language: str, body: str) -> str:
    return f"```{language}\n{body}\n```"


def _requirements(banned_modules: Sequence[str]) -> str:
    banned = ", ".join(banned_modules) if banned_modules else "(none)"
    return (
        "Rules for the program:\n"
        "- The main function is named `f`. Helper functions and classes are allowed, "
        "nested or at the top level.\n"
        "- `f` must return a value.\n"
        "- It must be deterministic: the same input always gives the same result. No random "
        "numbers, no clock or date, no reading or writing files, network or console, and no "
        "printing.\n"
        "- It must finish quickly (well under a second).\n"
        "- Put every import at the top of the program.\n"
        f"- Do not use these modules: {banned}.\n"
    )


_INPUT_RULE = (
    "An input is the Python source of the arguments of `f`, written as literals exactly as "
    "they would appear between the parentheses of a call: for `f('abc', [1, 2])` write "
    "`'abc', [1, 2]`."
)


_PROGRAM_TEMPLATE = _block("python", "def f(...):\n    ...")


def _reference_snippets(references: Sequence[Triplet]) -> str:
    parts = []
    for i, ref in enumerate(references, start=1):
        parts.append(
            f"Reference {i}:\n"
            f"{_block('python', ref.program)}\n"
            f"{_block('input', ref.input)}\n"
            f"{_block('output', ref.output)}"
        )
    return "\n\n".join(parts)


_TRIPLET_PROPOSER_GOAL = {
    TaskType.DEDUCTION: (
        "Invent a new Python program together with one input for it. A solver will be shown "
        "the program and the input, and will have to work out the value the program returns. "
        "Make the task demand careful step-by-step reasoning about the code, while staying "
        "solvable by reasoning alone."
    ),
    TaskType.ABDUCTION: (
        "Invent a new Python program together with one input for it. A solver will be shown "
        "the program and the value it returns on your input, and will have to find an input "
        "that produces that value. Make working backwards from the output demand careful "
        "reasoning about the code, while staying solvable by reasoning alone."
    ),
}


def triplet_proposer_prompt(
    task_type: TaskType, references: Sequence[Triplet], banned_modules: Sequence[str]
) -> str:
    """Ask for a new program and input (deduction or abduction), shown K reference triplets.

    Args:
      task_type: `TaskType.DEDUCTION` or `TaskType.ABDUCTION`.
      references: past triplets from that type's buffer (AZR: K=6, fewer early on).
      banned_modules: module names the program may not import, listed in the prompt.
    """
    goal = _TRIPLET_PROPOSER_GOAL[TaskType(task_type)]
    if references:
        refs = (
            "Earlier tasks for reference. Your program must be clearly different from every "
            "one of them.\n\n" + _reference_snippets(references) + "\n\n"
        )
    else:
        refs = ""
    task = (
        f"{goal}\n\n{_requirements(banned_modules)}\n{_INPUT_RULE}\n\n{refs}"
        "Answer format: inside <answer> </answer>, give exactly one program block and exactly "
        "one input block, and nothing else:\n"
        f"{_PROGRAM_TEMPLATE}\n"
        f"{_block('input', 'arguments of f')}"
    )
    return wrap(task)


def deduction_proposer_prompt(references: Sequence[Triplet], banned_modules: Sequence[str]) -> str:
    """Proposer prompt for a deduction task (the solver will predict the output)."""
    return triplet_proposer_prompt(TaskType.DEDUCTION, references, banned_modules)


def abduction_proposer_prompt(references: Sequence[Triplet], banned_modules: Sequence[str]) -> str:
    """Proposer prompt for an abduction task (the solver will find an input)."""
    return triplet_proposer_prompt(TaskType.ABDUCTION, references, banned_modules)


def induction_proposer_prompt(
    program: str,
    banned_modules: Sequence[str],
    num_inputs: int = 10,
    num_visible: int = 5,
) -> str:
    """Ask for `num_inputs` inputs to a given program plus a message (induction).

    Args:
      program: a program drawn from the deduction/abduction buffers.
      banned_modules: listed so the proposer knows what the checked program may not do.
      num_inputs: how many input blocks to write (AZR: 10).
      num_visible: how many of the resulting pairs the solver will see (AZR: 5).
    """
    banned = ", ".join(banned_modules) if banned_modules else "(none)"
    task = (
        f"Below is a Python program. Write {num_inputs} different inputs for it and a short "
        f"message. A solver will see the message and {num_visible} of the input/output pairs, "
        "but not the program, and will have to write a program that also gives the right "
        "outputs on the remaining inputs.\n\n"
        "Choose inputs that together reveal what the program does: cover ordinary cases and "
        "edge cases, and vary them enough that a lucky guess does not pass. Every input must "
        "run without error. The message should hint at what the program does in a sentence "
        "or two, without writing out the code.\n\n"
        f"{_INPUT_RULE}\n"
        f"(Programs in this game may not use these modules: {banned}.)\n\n"
        f"{_block('python', program)}\n\n"
        f"Answer format: inside <answer> </answer>, give exactly {num_inputs} input blocks "
        "followed by one message block, and nothing else:\n"
        f"{_block('input', 'arguments of f')}\n"
        "...\n"
        f"{_block('message', 'your hint')}"
    )
    return wrap(task)


def deduction_solver_prompt(program: str, input: str) -> str:
    """Show program and input; ask for the returned value as a bare Python literal."""
    task = (
        "Work out the value the following Python program returns when `f` is called with "
        "the given input.\n\n"
        f"{_block('python', program)}\n"
        f"{_block('input', input)}\n\n"
        "Trace the execution carefully. Inside <answer> </answer>, give only the returned "
        "value as a Python literal (for example `[1, 'a']` or `{'k': (2, None)}`): no code "
        "block, no `f(...)` call, no other words."
    )
    return wrap(task)


def abduction_solver_prompt(program: str, output: str) -> str:
    """Show program and output; ask for an input (bare arguments) that produces it."""
    task = (
        "Find an input for which `f` in the following Python program returns the given "
        "output. Any input that produces this output is accepted.\n\n"
        f"{_block('python', program)}\n"
        f"{_block('output', output)}\n\n"
        "Reason about the code carefully. Inside <answer> </answer>, give only the arguments "
        "of `f` as Python literals, exactly as they would appear between the parentheses of "
        "the call (for `f('abc', 3)` write `'abc', 3`): no code block, no other words."
    )
    return wrap(task)


def induction_solver_prompt(message: str, pairs: Sequence[tuple[str, str]]) -> str:
    """Show the message and visible input/output pairs; ask for the program."""
    examples = "\n\n".join(
        f"Example {i}:\n{_block('input', inp)}\n{_block('output', out)}"
        for i, (inp, out) in enumerate(pairs, start=1)
    )
    task = (
        "A hidden Python function `f` is described by the message below and by some inputs "
        "together with the values it returns. Write a program whose function `f` returns "
        "these outputs, and the right outputs on further inputs of the same kind.\n\n"
        f"Message: {message}\n\n{examples}\n\n"
        "The program must be deterministic, must not print, and must put its imports at the "
        "top. Inside <answer> </answer>, give exactly one program block and nothing else:\n"
        f"{_PROGRAM_TEMPLATE}"
    )
    return wrap(task)


def solver_prompt(task_type: TaskType, task: Task) -> str:
    """Solver prompt for a buffer task of any type (induction shows only the visible pairs)."""
    task_type = TaskType(task_type)
    if task_type is TaskType.INDUCTION:
        if not isinstance(task, InductionTask):
            raise TypeError(f"induction needs an InductionTask, got {type(task).__name__}")
        return induction_solver_prompt(task.message, task.visible_pairs)
    if not isinstance(task, Triplet):
        raise TypeError(f"{task_type.value} needs a Triplet, got {type(task).__name__}")
    if task_type is TaskType.DEDUCTION:
        return deduction_solver_prompt(task.program, task.input)
    return abduction_solver_prompt(task.program, task.output)


# Benchmarks whose samples are (code, input, output) with main function `f`, and the task
# type whose solver prompt and answer format they use.
EVAL_TASK_TYPES: dict[str, TaskType] = {
    "cruxeval_o": TaskType.DEDUCTION,
    "cruxeval_i": TaskType.ABDUCTION,
}


def evaluation_prompt(benchmark: str, code: str, input: str, output: str) -> str:
    """Prompt for one CRUXEval sample, in the same format as the matching solver prompt.

    Args:
      benchmark: `"cruxeval_o"` (predict the output) or `"cruxeval_i"` (predict an input).
      code, input, output: the sample's fields, as in the CRUXEval jsonl.
    """
    if benchmark not in EVAL_TASK_TYPES:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {sorted(EVAL_TASK_TYPES)}")
    return solver_prompt(EVAL_TASK_TYPES[benchmark], Triplet(code, input, output))


def humaneval_prompt(prompt: str, entry_point: str) -> str:
    """Prompt for one HumanEval problem; the answer is one ```python block (as induction).

    Args:
      prompt: the problem's code: imports, any helper functions, and the signature and
        docstring of the function to write.
      entry_point: the name of the function to write.
    """
    template = f"def {entry_point}(...):\n    ..."
    task = (
        f"Write the Python function `{entry_point}` described by the signature and docstring "
        "below. The code shown (imports and helper functions included) will be placed before "
        "your answer, so you may use it without repeating it.\n\n"
        f"{_block('python', prompt.strip())}\n\n"
        "Reason about the specification and its examples carefully. Inside <answer> </answer>, "
        f"give exactly one program block holding the complete function `{entry_point}` (its "
        "`def` line and body, plus any imports or helpers it needs), and nothing else:\n"
        f"{_block('python', template)}"
    )
    return wrap(task)
