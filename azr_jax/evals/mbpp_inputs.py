"""MBPP+ test inputs as EvalPlus restores them: which JSON lists become tuples, sets, complex.

JSON has no tuple, set or complex number, so the MBPP+ release stores them as lists (and
complex numbers as text). EvalPlus undoes that per task when it reads the file
(`evalplus.data.mbpp.mbpp_deserialize_inputs`, EvalPlus 0.3.1 / MBPP+ v0.2.0), and both the
canonical solution and every candidate get the restored values; a solution that calls
`hash()` on an argument, or returns it, behaves differently on a list. This module writes the
same facts down as a table, task number -> rule, so that grading needs no `evalplus` package
(it pulls in API clients). `tests/evals/test_mbpp_inputs.py` compares the table with the
package's own function where that is installed, on the real release's records.

A test input is the list of a call's arguments. The rules (`a0`, `a1`, ... are the arguments):

| rule | the call's arguments become |
|---|---|
| `args_tuple` | every argument (a list) a tuple |
| `args_items_tuple` | every argument a list whose items (lists) are tuples |
| `args_items_tuple_args_tuple` | every argument a tuple whose items (lists) are tuples |
| `a0_items_tuple_a1` | `[a0 with its items as tuples, a1]` |
| `a0_tuple_a1` | `[tuple(a0), a1]` |
| `a0_tuple_a1_a2` | `[tuple(a0), a1, a2]` |
| `a0_a1_tuple` | `[a0, tuple(a1)]` |
| `a0_items_set` | `[a0 with each non-empty list item a set, any other item `{}`]` (EvalPlus writes `{}`, an empty dict, for an empty set) |
| `float_complex` | the tuple `(float(a0), complex(a1))` |
| `complex` | `[complex(a0)]` |
| `a0_lists_items_tuple` | `[tuple(a0 with its list items as tuples)]` |
| `a0_values_tuple` | `[a0 with each value a tuple] + the rest` |
| `deep_tuple` | every list at every depth a tuple, the argument list itself included |

Arguments beyond those a rule names are dropped, as EvalPlus's rule drops them (no MBPP+ task
has any).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RULE_TASKS: dict[str, tuple[int, ...]] = {
    "args_tuple": (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579)
    + (596, 616, 630, 726, 740, 744, 809),
    "args_items_tuple": (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780),
    "args_items_tuple_args_tuple": (259, 401, 445),
    "a0_items_tuple_a1": (75, 413, 444, 753),
    "a0_tuple_a1": (250, 405, 446, 617, 720, 763, 808),
    "a0_tuple_a1_a2": (307,),
    "a0_a1_tuple": (106, 750),
    "a0_items_set": (115,),
    "float_complex": (124,),
    "complex": (252,),
    "a0_lists_items_tuple": (278,),
    "a0_values_tuple": (722,),
    "deep_tuple": (580, 615, 791),
}


def _deep_tuple(x: Any) -> Any:
    return tuple(_deep_tuple(i) for i in x) if isinstance(x, list) else x


def _items_tuple(a: list) -> list:
    return [tuple(i) for i in a]


_RULES: dict[str, Callable[[list], Any]] = {
    "args_tuple": lambda a: [tuple(x) for x in a],
    "args_items_tuple": lambda a: [_items_tuple(x) for x in a],
    "args_items_tuple_args_tuple": lambda a: [tuple(_items_tuple(x)) for x in a],
    "a0_items_tuple_a1": lambda a: [_items_tuple(a[0]), a[1]],
    "a0_tuple_a1": lambda a: [tuple(a[0]), a[1]],
    "a0_tuple_a1_a2": lambda a: [tuple(a[0]), a[1], a[2]],
    "a0_a1_tuple": lambda a: [a[0], tuple(a[1])],
    "a0_items_set": lambda a: [[set(i) if isinstance(i, list) and i else {} for i in a[0]]],
    "float_complex": lambda a: (float(a[0]), complex(a[1])),
    "complex": lambda a: [complex(a[0])],
    "a0_lists_items_tuple": lambda a: [tuple(tuple(i) if isinstance(i, list) else i for i in a[0])],
    "a0_values_tuple": lambda a: [{k: tuple(v) for k, v in a[0].items()}, *a[1:]],
    "deep_tuple": _deep_tuple,
}

RULE_OF_TASK: dict[int, str] = {t: rule for rule, tasks in RULE_TASKS.items() for t in tasks}


def task_number(task_id: str) -> int:
    """`"Mbpp/124"` -> 124.

    Raises:
      ValueError: the id does not end in a task number.
    """
    try:
        return int(str(task_id).rsplit("/", 1)[-1])
    except ValueError:
        raise ValueError(f"MBPP+ task id {task_id!r} does not end in a task number") from None


def restore(task_id: str, inputs: list[list]) -> list:
    """A task's test inputs (each a list of arguments, as JSON decodes them) as EvalPlus
    restores them; tasks without a rule keep theirs (the same list is returned).

    Raises:
      ValueError, TypeError, IndexError, KeyError, AttributeError: an input that does not
        have the shape its task's rule expects.
    """
    rule = RULE_OF_TASK.get(task_number(task_id))
    if rule is None:
        return inputs
    return [_RULES[rule](args) for args in inputs]
