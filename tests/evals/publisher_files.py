"""Benchmark files in their publishers' formats, a few records each, written by the tests.

`write_all(data_dir)` lays out a data directory as `azr_jax/evals/benchmarks.py` documents
it; `CANONICAL` and `WRONG` give, per benchmark and task id, a right and a wrong solution (code,
or a math answer) for `--responses`-style grading. The records are our own, in the fields and
encodings each publisher releases (EvalPlus JSONL; LiveCodeBench with JSON-string test fields
and a base64(zlib(pickle(JSON))) private field; the usual math releases' field names).
"""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from pathlib import Path

HUMANEVAL_PLUS = [
    {
        "task_id": "HumanEval/0",
        "prompt": (
            "from typing import List\n\n\n"
            "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
            '    """Check if any two numbers are closer to each other than threshold.\n'
            "    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)\n    False\n"
            '    """\n'
        ),
        "entry_point": "has_close_elements",
        "canonical_solution": (
            "    for i, a in enumerate(numbers):\n"
            "        for j, b in enumerate(numbers):\n"
            "            if i != j and abs(a - b) < threshold:\n"
            "                return True\n"
            "    return False\n"
        ),
        "test": "def check(candidate):\n    assert candidate([1.0, 2.0], 0.5) is False\n",
        "contract": "",
        "base_input": [[[1.0, 2.0, 3.0], 0.5], [[1.0, 2.8, 3.0, 4.0], 0.3]],
        "plus_input": [[[], 1.0], [[1.0], 0.0], [[5.0, 5.0], 0.1], [[1.0, 1.5], 0.5]],
        "atol": 0,
    },
    {
        "task_id": "HumanEval/4",
        "prompt": (
            "from typing import List\n\n\n"
            "def mean_absolute_deviation(numbers: List[float]) -> float:\n"
            '    """Mean absolute deviation around the mean of the numbers."""\n'
        ),
        "entry_point": "mean_absolute_deviation",
        "canonical_solution": (
            "    mean = sum(numbers) / len(numbers)\n"
            "    return sum(abs(x - mean) for x in numbers) / len(numbers)\n"
        ),
        "test": "",
        "contract": "",
        "base_input": [[[1.0, 2.0, 3.0, 4.0]]],
        "plus_input": [[[0.1, 0.2, 0.3]], [[1e-3, 2.5, -7.25, 3.3]]],
        "atol": 0,
    },
    {
        "task_id": "HumanEval/32",
        "prompt": (
            "import math\n\n\n"
            "def poly(xs: list, x: float):\n"
            "    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])\n\n\n"
            "def find_zero(xs: list):\n"
            '    """A zero of the polynomial with coefficients xs (even length)."""\n'
        ),
        "entry_point": "find_zero",
        "canonical_solution": (
            "    begin, end = -1.0, 1.0\n"
            "    while poly(xs, begin) * poly(xs, end) > 0:\n"
            "        begin *= 2.0\n        end *= 2.0\n"
            "    while end - begin > 1e-10:\n"
            "        center = (begin + end) / 2.0\n"
            "        if poly(xs, center) * poly(xs, begin) > 0:\n"
            "            begin = center\n"
            "        else:\n            end = center\n"
            "    return begin\n"
        ),
        "test": "",
        "contract": "",
        "base_input": [[[1, 2]], [[-6, 11, -6, 1]]],
        "plus_input": [[[2, -3]]],
        "atol": 1e-06,
    },
]

MBPP_PLUS = [
    {
        "task_id": "Mbpp/2",
        "prompt": (
            '"""\nWrite a function to find the shared elements from the given two lists.\n'
            "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"
            '"""\n'
        ),
        "entry_point": "similar_elements",
        "canonical_solution": (
            "\ndef similar_elements(test_tup1, test_tup2):\n"
            "  return tuple(sorted(set(test_tup1) & set(test_tup2)))\n"
        ),
        "base_input": [[[3, 4, 5, 6], [5, 7, 4, 10]], [[1, 2, 3, 4], [5, 4, 3, 7]]],
        "plus_input": [[[], []], [[1, 1, 2], [2, 2, 1]]],
        "atol": 0,
        "test": "",
        "assertion": "",
    },
    {
        "task_id": "Mbpp/17",
        "prompt": (
            '"""\nWrite a function that returns the perimeter of a square given its side '
            "length as input.\nassert square_perimeter(10)==40\n"
            '"""\n'
        ),
        "entry_point": "square_perimeter",
        "canonical_solution": "\ndef square_perimeter(a):\n  return 4*a\n",
        "base_input": [[10], [5], [4]],
        "plus_input": [[0.1], [1e9], [2.5]],
        "atol": 0,
        "test": "",
        "assertion": "",
    },
]


def _compressed(tests: list[dict]) -> str:
    """LiveCodeBench's private-test encoding: base64(zlib(pickle(JSON text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


_LCB_TWO_SUM_TESTS = [
    {"input": "[2,7,11,15]\n9", "output": "[0,1]", "testtype": "functional"},
    {"input": "[3,2,4]\n6", "output": "[1,2]", "testtype": "functional"},
]
_LCB_TWO_SUM_PRIVATE = [
    {"input": "[3,3]\n6", "output": "[0,1]", "testtype": "functional"},
    {"input": "[1,5,9,2]\n11", "output": "[2,3]", "testtype": "functional"},
]
_LCB_STDIN_PUBLIC = [
    {"input": "3\n1 2 3\n", "output": "6\n2\n", "testtype": "stdin"},
]
_LCB_STDIN_PRIVATE = [
    {"input": "2\n10 -4\n", "output": "6\n3.000\n", "testtype": "stdin"},
    {"input": "1\n7\n", "output": "7\n   7\n", "testtype": "stdin"},
]

LIVECODEBENCH = [
    {
        "question_title": "two-sum",
        "question_content": "Given nums and target, return the indices of the two numbers "
        "that add up to target.",
        "platform": "leetcode",
        "question_id": "1",
        "contest_id": "weekly-contest-0",
        "contest_date": "2024-08-01T00:00:00",
        "starter_code": "class Solution:\n    def twoSum(self, nums: List[int], target: int) "
        "-> List[int]:\n        ",
        "difficulty": "easy",
        "public_test_cases": json.dumps(_LCB_TWO_SUM_TESTS),
        "private_test_cases": _compressed(_LCB_TWO_SUM_PRIVATE),
        "metadata": json.dumps({"func_name": "twoSum"}),
    },
    {
        "question_title": "Sum and Mean",
        "question_content": "Read N and N integers. Print their sum, then their mean.",
        "platform": "atcoder",
        "question_id": "abc000_a",
        "contest_id": "abc000",
        "contest_date": "2024-09-01T00:00:00",
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps(_LCB_STDIN_PUBLIC),
        "private_test_cases": json.dumps(_LCB_STDIN_PRIVATE),
        "metadata": "{}",
    },
]

MATH = {
    # HuggingFaceH4/aime_2024: id, problem, solution, answer, url, year
    "aime24": [
        {"id": 60, "problem": "What is $2^{10} - 820$?", "solution": "...", "answer": "204"},
        {"id": 61, "problem": "Compute $7 \\cdot 11$.", "solution": "...", "answer": "77"},
    ],
    # opencompass/AIME2025: question, answer
    "aime25": [
        {"question": "What is $10 + 11$?", "answer": "21"},
        {"question": "What is $3^3$?", "answer": "27"},
    ],
    # AI-MO/aimo-validation-amc: id, problem, answer (a float), url
    "amc23": [
        {"id": 0, "problem": "Half of 27?", "answer": 13.5, "url": ""},
        {"id": 1, "problem": "What is $6 \\cdot 6$?", "answer": 36.0, "url": ""},
    ],
    # HuggingFaceH4/MATH-500: problem, solution, answer, subject, level, unique_id
    "math500": [
        {
            "problem": "Simplify $\\frac{2}{4}$.",
            "solution": "It is $\\boxed{\\frac{1}{2}}$.",
            "answer": "\\frac{1}{2}",
            "subject": "Algebra",
            "level": 1,
            "unique_id": "test/algebra/1.json",
        },
        {
            "problem": "What is $\\sqrt{12}$ in simplest form?",
            "solution": "$\\boxed{2\\sqrt{3}}$",
            "answer": "2\\sqrt{3}",
            "subject": "Algebra",
            "level": 2,
            "unique_id": "test/algebra/2.json",
        },
    ],
    # Qwen2.5-Math's minerva_math copy: problem, solution (answer boxed), type, idx
    "minerva": [
        {"problem": "What is 1/4 as a decimal?", "solution": "So $\\boxed{0.25}$.", "idx": 0},
        {"problem": "What is $9 - 10$?", "solution": "Thus \\boxed{-1}.", "idx": 1},
    ],
    # Hothan/OlympiadBench: id, question, final_answer (a list of $...$ strings), ...
    "olympiadbench": [
        {"id": 1606, "question": "Find $x$ if $2x = 3$.", "final_answer": ["$\\frac{3}{2}$"]},
        {
            "id": 1607,
            "question": "Find $\\pi/2$ in radians.",
            "final_answer": ["$\\frac{\\pi}{2}$"],
        },
    ],
}

MATH_FILES = {
    "aime24": "aime24.jsonl",
    "aime25": "aime25.jsonl",
    "amc23": "amc23.jsonl",
    "math500": "math500.jsonl",
    "minerva": "minerva.jsonl",
    "olympiadbench": "olympiadbench.jsonl",
}


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def write_all(data_dir: Path) -> Path:
    """Every benchmark file of the paper suite in `data_dir`; returns `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _write(data_dir / "HumanEvalPlus.jsonl", HUMANEVAL_PLUS)
    _write(data_dir / "MbppPlus.jsonl", MBPP_PLUS)
    _write(data_dir / "livecodebench.jsonl", LIVECODEBENCH)
    for name, records in MATH.items():
        _write(data_dir / MATH_FILES[name], records)
    return data_dir


LCB_TWO_SUM = (
    "class Solution:\n"
    "    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
    "        seen = {}\n"
    "        for i, x in enumerate(nums):\n"
    "            if target - x in seen:\n"
    "                return (seen[target - x], i)\n"  # a tuple: read as a list, as LCB does
    "            seen[x] = i\n"
)
LCB_SUM_MEAN = (
    "import sys\n"
    "data = sys.stdin.buffer.read().split()\n"
    "n = int(data[0])\n"
    "xs = list(map(int, data[1 : n + 1]))\n"
    "print(sum(xs))\n"
    "print(f'{sum(xs) / n:.1f}')\n"
    "exit()\n"
    "print('never')\n"
)

CANONICAL = {
    "humaneval_plus": {r["task_id"]: r["prompt"] + r["canonical_solution"] for r in HUMANEVAL_PLUS},
    "mbpp_plus": {r["task_id"]: r["canonical_solution"] for r in MBPP_PLUS},
    "livecodebench": {"1": LCB_TWO_SUM, "abc000_a": LCB_SUM_MEAN},
    "aime24": {"60": "\\boxed{204}", "61": "\\boxed{77}"},
    "aime25": {"0": "\\boxed{21}", "1": "\\boxed{27}"},
    "amc23": {"0": "\\boxed{\\frac{27}{2}}", "1": "\\boxed{36}"},
    "math500": {
        "test/algebra/1.json": "\\boxed{0.5}",
        "test/algebra/2.json": "\\boxed{\\sqrt{12}}",
    },
    "minerva": {"0": "\\boxed{\\frac14}", "1": "\\boxed{ -1 }"},
    "olympiadbench": {"1606": "\\boxed{1.5}", "1607": "\\boxed{\\frac{1}{2}\\pi}"},
}

WRONG = {
    "humaneval_plus": {
        "HumanEval/0": "def has_close_elements(numbers, threshold):\n    return False\n",
        # right on the base input, wrong on a plus one (base passes, plus fails)
        "HumanEval/4": (
            "def mean_absolute_deviation(numbers):\n"
            "    if len(numbers) == 4:\n        return 1.0\n"
            "    return 0.0\n"
        ),
        "HumanEval/32": "def find_zero(xs):\n    return 0.5\n",
    },
    "mbpp_plus": {
        "Mbpp/2": "def similar_elements(a, b):\n    return tuple(set(a) | set(b))\n",
        "Mbpp/17": "def square_perimeter(a):\n    return a * a\n",
    },
    "livecodebench": {
        "1": "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n",
        "abc000_a": "n = int(input())\nprint(n)\n",
    },
    "aime24": {"60": "\\boxed{205}", "61": "\\boxed{78}"},
    "aime25": {"0": "\\boxed{12}", "1": "\\boxed{9}"},
    "amc23": {"0": "\\boxed{13}", "1": "\\boxed{35.9}"},
    "math500": {"test/algebra/1.json": "\\boxed{2}", "test/algebra/2.json": "\\boxed{3\\sqrt{2}}"},
    "minerva": {"0": "\\boxed{0.24}", "1": "\\boxed{1}"},
    "olympiadbench": {"1606": "\\boxed{2/3}", "1607": "\\boxed{\\pi}"},
}


def responses_file(path: Path, solutions: dict[str, dict[str, str]]) -> Path:
    """A `--responses` file with one `solution` per task."""
    rows = [
        {"benchmark": bench, "task_id": task_id, "solution": text}
        for bench, tasks in solutions.items()
        for task_id, text in tasks.items()
    ]
    _write(path, rows)
    return path
