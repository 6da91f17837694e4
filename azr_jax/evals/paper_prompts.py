"""Prompts for the paper's evaluation table, in the training conversation template.

Every prompt is `selfplay.prompts.wrap(task)`: the R1-style preamble (reasoning in <think>,
answer in <answer>), `User: {task}`, `Assistant: <think>`, the template AZR trains its base
models with, so a trained model is asked in the form it learned.

- Code (HumanEval+, MBPP+, LiveCodeBench): the answer is one ```python block inside <answer>
  (parsed like an induction answer; anything else is malformed and scores 0). HumanEval+ uses
  the project's HumanEval prompt (`prompts.humaneval_prompt`).
- Math: the problem, then the instruction the AZR authors' math evaluation gives base models:
  reason step by step and put the final answer in \\boxed{} (worded here in our own words); the
  grader reads the last \\boxed{} of the response, wherever it is.
"""

from __future__ import annotations

from azr_jax.selfplay import prompts

MATH_INSTRUCTION = "Reason step by step, and put your final answer within \\boxed{}."


def _block(language: str, body: str) -> str:
    return f"```{language}\n{body}\n```"


def math_prompt(problem: str) -> str:
    """A math problem, asking for the final answer in \\boxed{}."""
    return prompts.wrap(f"{problem.strip()}\n{MATH_INSTRUCTION}")


def humaneval_plus_prompt(record: dict) -> str:
    """HumanEval+: the function's signature and docstring (the prompt is placed before it)."""
    return prompts.humaneval_prompt(record["prompt"], record["entry_point"])


def mbpp_plus_prompt(record: dict) -> str:
    """MBPP+: the task description and its example test (EvalPlus's `prompt` docstring)."""
    description = record["prompt"].strip().strip('"').strip()
    name = record["entry_point"]
    task = (
        f"Write a Python function named `{name}` for the task below; the test shown must "
        "pass.\n\n"
        f"{description}\n\n"
        "Inside <answer> </answer>, give exactly one program block holding the complete "
        f"function `{name}` (plus any imports or helpers it needs), and nothing else:\n"
        f"{_block('python', f'def {name}(...):' + chr(10) + '    ...')}"
    )
    return prompts.wrap(task)


def livecodebench_prompt(record: dict) -> str:
    """LiveCodeBench: the problem statement, then the starter code (functional problems) or
    the standard-input rule (stdin problems)."""
    if record["func_name"]:
        how = (
            "Complete the class below (keep its name and the method's signature); your "
            "answer is the whole class:\n\n"
            f"{_block('python', record['starter_code'].strip())}"
        )
    else:
        how = (
            "Write a complete program: read the input from standard input and print the "
            "answer to standard output, in the format described."
        )
    task = (
        f"Solve this programming problem in Python.\n\n{record['question'].strip()}\n\n{how}\n\n"
        "Inside <answer> </answer>, give exactly one program block holding your solution, "
        "and nothing else."
    )
    return prompts.wrap(task)


PROMPTS = {
    "humaneval_plus": humaneval_plus_prompt,
    "mbpp_plus": mbpp_plus_prompt,
    "livecodebench": livecodebench_prompt,
}


def benchmark_prompt(name: str, kind: str, record: dict) -> str:
    """The prompt for one record of benchmark `name` (of kind "evalplus", "livecodebench" or
    "math")."""
    if kind == "math":
        return math_prompt(record["problem"])
    return PROMPTS[name](record)
