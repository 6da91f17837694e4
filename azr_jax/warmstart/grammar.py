"""A grammar of small typed Python functions: the warm start's programs and the held-out tasks.

`draw_program(rng)` returns a `Program`: the source of one function `f` of one or two arguments
of type int, str or list of ints, a one-sentence description of what it does (the induction
message), and the argument types, so `draw_input(rng, arg_types)` can write inputs for it.
Programs are one of four shapes: a chain of one to three typed operations (inline or through a
local variable), a binary operation on two arguments, an if/else on a condition, or a loop that
accumulates. Names are drawn from small pools, so the same function comes in several spellings.
Everything is a pure function of the numpy Generator: same seed, same programs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

INT, STR, LIST = "int", "str", "list"
NAMES = {
    INT: ("x", "n", "a", "k", "num", "val"),
    STR: ("s", "text", "word", "t", "name"),
    LIST: ("xs", "nums", "items", "values", "arr", "lst"),
}
LOCALS = ("y", "r", "tmp", "out", "res", "z")
LETTERS = "abcde"


@dataclasses.dataclass(frozen=True)
class Program:
    source: str  # `def f(...):` and its body
    message: str  # one sentence saying what f does (the induction hint)
    arg_types: tuple[str, ...]  # INT | STR | LIST per argument


# One typed operation: (input type, output type, expression template over `{v}`, description).
# Templates may use {c} (a small int), {d} (an int >= 2), {a}/{b} (letters), {w} (a short word).
OPS: tuple[tuple[str, str, str, str], ...] = (
    (INT, INT, "{v} + {c}", "adds {c}"),
    (INT, INT, "{v} - {c}", "subtracts {c}"),
    (INT, INT, "{v} * {c}", "multiplies by {c}"),
    (INT, INT, "{v} // {d}", "floor-divides by {d}"),
    (INT, INT, "{v} % {d}", "takes the remainder modulo {d}"),
    (INT, INT, "abs({v})", "takes the absolute value"),
    (INT, INT, "max({v}, {c})", "takes the larger of it and {c}"),
    (INT, INT, "min({v}, {c})", "takes the smaller of it and {c}"),
    (INT, INT, "{v} * {v}", "squares it"),
    (INT, STR, "str({v})", "turns it into a string"),
    (INT, LIST, "list(range({v} % 6))", "lists the numbers below it modulo 6"),
    (STR, STR, "{v}.upper()", "upper-cases it"),
    (STR, STR, "{v}[::-1]", "reverses it"),
    (STR, STR, "{v} + '{w}'", "appends '{w}'"),
    (STR, STR, "'{w}' + {v}", "prepends '{w}'"),
    (STR, STR, "{v} * 2", "repeats it twice"),
    (STR, STR, "{v}[1:]", "drops the first character"),
    (STR, STR, "{v}[:{d}]", "keeps the first {d} characters"),
    (STR, STR, "{v}.replace('{a}', '{b}')", "replaces '{a}' with '{b}'"),
    (STR, INT, "len({v})", "counts its characters"),
    (STR, INT, "{v}.count('{a}')", "counts the letter '{a}'"),
    (STR, INT, "{v}.find('{a}')", "finds the first '{a}'"),
    (STR, LIST, "sorted({v})", "sorts its characters into a list"),
    (LIST, LIST, "sorted({v})", "sorts the list"),
    (LIST, LIST, "{v}[::-1]", "reverses the list"),
    (LIST, LIST, "{v} + [{c}]", "appends {c}"),
    (LIST, LIST, "[e * {c} for e in {v}]", "multiplies every element by {c}"),
    (LIST, LIST, "[e + {c} for e in {v}]", "adds {c} to every element"),
    (LIST, LIST, "[e for e in {v} if e > {c}]", "keeps the elements above {c}"),
    (LIST, LIST, "[e for e in {v} if e % 2 == 0]", "keeps the even elements"),
    (LIST, LIST, "{v}[1:]", "drops the first element"),
    (LIST, LIST, "sorted({v}, reverse=True)", "sorts the list in decreasing order"),
    (LIST, INT, "len({v})", "counts the elements"),
    (LIST, INT, "sum({v})", "sums the elements"),
    (LIST, INT, "max({v})", "takes the largest element"),
    (LIST, INT, "min({v})", "takes the smallest element"),
    (LIST, INT, "{v}[0]", "takes the first element"),
    (LIST, INT, "{v}[-1]", "takes the last element"),
    (LIST, INT, "{v}.count({c})", "counts the elements equal to {c}"),
)
BINARY: dict[str, tuple[tuple[str, str, str], ...]] = {
    INT: (
        ("{p} + {q}", INT, "adds the two numbers"),
        ("{p} * {q}", INT, "multiplies the two numbers"),
        ("{p} - {q}", INT, "subtracts the second number from the first"),
        ("max({p}, {q})", INT, "takes the larger number"),
        ("[{p}, {q}]", LIST, "puts the two numbers in a list"),
    ),
    STR: (
        ("{p} + {q}", STR, "joins the two strings"),
        ("{q} + {p}", STR, "joins the second string and the first"),
        ("len({p}) + len({q})", INT, "adds the lengths of the two strings"),
        ("{p} + '-' + {q}", STR, "joins the two strings with a dash"),
    ),
    LIST: (
        ("{p} + {q}", LIST, "concatenates the two lists"),
        ("sum({p}) + sum({q})", INT, "sums both lists"),
        (
            "[e for e in {p} if e in {q}]",
            LIST,
            "keeps the elements of the first list found in the second",
        ),
    ),
}
CONDITIONS = {
    INT: (("{v} > {c}", "is above {c}"), ("{v} % 2 == 0", "is even")),
    STR: (("len({v}) > {d}", "is longer than {d}"), ("'{a}' in {v}", "contains '{a}'")),
    LIST: (("len({v}) > {d}", "has more than {d} elements"), ("{c} in {v}", "contains {c}")),
}
ARTICLE = {INT: "a number", STR: "a string", LIST: "a list of numbers"}


def _word(rng: np.random.Generator, lo: int = 1, hi: int = 3) -> str:
    return "".join(rng.choice(list(LETTERS), size=int(rng.integers(lo, hi + 1))))


def _fill(rng: np.random.Generator, template: str, **names: str) -> tuple[str, dict]:
    values = {
        "c": str(int(rng.integers(1, 10))),
        "d": str(int(rng.integers(2, 5))),
        "a": str(rng.choice(list(LETTERS))),
        "b": str(rng.choice(list(LETTERS))),
        "w": _word(rng),
    }
    values.update(names)
    return template.format(**values), values


def _ops_from(t: str, list_ok: bool = True) -> list[int]:
    return [i for i, op in enumerate(OPS) if op[0] == t and (list_ok or op[1] != LIST)]


def _chain(rng: np.random.Generator) -> Program:
    t = str(rng.choice([INT, STR, LIST]))
    arg = str(rng.choice(NAMES[t]))
    n_ops = int(rng.choice([1, 2, 2, 3]))
    inline = bool(rng.integers(0, 2))
    local = str(rng.choice(LOCALS))
    expr, lines, parts, cur = arg, [], [], t
    for k in range(n_ops):
        op = OPS[int(rng.choice(_ops_from(cur)))]
        if inline or k == n_ops - 1:
            v = f"({expr})" if (" " in expr and not expr.startswith("[")) else expr
            text, vals = _fill(rng, op[2], v=v)
            expr = text
        else:
            text, vals = _fill(rng, op[2], v=expr)
            lines.append(f"    {local} = {text}")
            expr = local
        parts.append(op[3].format(**vals))
        cur = op[1]
    body = "\n".join([*lines, f"    return {expr}"])
    message = f"Takes {ARTICLE[t]}, " + ", then ".join(parts) + "."
    return Program(f"def f({arg}):\n{body}", message, (t,))


def _binary(rng: np.random.Generator) -> Program:
    t = str(rng.choice([INT, STR, LIST]))
    p, q = (str(n) for n in rng.choice(NAMES[t], size=2, replace=False))
    template, out_t, text = BINARY[t][int(rng.integers(len(BINARY[t])))]
    expr = template.format(p=p, q=q)
    message = f"Takes two arguments ({ARTICLE[t]} each) and {text}."
    if rng.integers(0, 2):
        op = OPS[int(rng.choice(_ops_from(out_t, list_ok=False)))]
        local = str(rng.choice(LOCALS))
        then, vals = _fill(rng, op[2], v=local)
        body = f"    {local} = {expr}\n    return {then}"
        message = message[:-1] + ", then " + op[3].format(**vals) + "."
    else:
        body = f"    return {expr}"
    return Program(f"def f({p}, {q}):\n{body}", message, (t, t))


def _branch(rng: np.random.Generator) -> Program:
    t = str(rng.choice([INT, STR, LIST]))
    arg = str(rng.choice(NAMES[t]))
    cond, cond_text = CONDITIONS[t][int(rng.integers(len(CONDITIONS[t])))]
    cond, cvals = _fill(rng, cond, v=arg)
    # Both branches return the same type.
    yes = OPS[int(rng.choice(_ops_from(t)))]
    no_choices = [i for i in _ops_from(t) if OPS[i][1] == yes[1] and OPS[i] is not yes]
    no = OPS[int(rng.choice(no_choices))] if no_choices else yes
    yes_text, yvals = _fill(rng, yes[2], v=arg)
    no_text, nvals = _fill(rng, no[2], v=arg)
    body = f"    if {cond}:\n        return {yes_text}\n    return {no_text}"
    message = (
        f"Takes {ARTICLE[t]}; if it {cond_text.format(**cvals)}, it {yes[3].format(**yvals)}, "
        f"otherwise it {no[3].format(**nvals)}."
    )
    return Program(f"def f({arg}):\n{body}", message, (t,))


def _loop(rng: np.random.Generator) -> Program:
    t = str(rng.choice([STR, LIST]))
    arg = str(rng.choice(NAMES[t]))
    acc = str(rng.choice(("total", "count", "acc", "result")))
    c = int(rng.integers(1, 10))
    if t == LIST:
        kind = int(rng.integers(3))
        if kind == 0:
            step, text = f"{acc} += e * {c}", f"sums the elements times {c}"
        elif kind == 1:
            step, text = f"{acc} += 1 if e > {c} else 0", f"counts the elements above {c}"
        else:
            step, text = f"{acc} = {acc} * 2 + e", "folds the elements as a base-2 number"
        body = f"    {acc} = 0\n    for e in {arg}:\n        {step}\n    return {acc}"
    else:
        a = str(rng.choice(list(LETTERS)))
        if rng.integers(2):
            body = (
                f"    {acc} = ''\n    for ch in {arg}:\n        if ch != '{a}':\n"
                f"            {acc} = ch + {acc}\n    return {acc}"
            )
            text = f"reverses it without the letter '{a}'"
        else:
            body = (
                f"    {acc} = 0\n    for ch in {arg}:\n        if ch == '{a}':\n"
                f"            {acc} += {c}\n    return {acc}"
            )
            text = f"scores {c} for every '{a}'"
    return Program(f"def f({arg}):\n{body}", f"Takes {ARTICLE[t]} and {text}.", (t,))


SHAPES = (_chain, _chain, _chain, _binary, _branch, _loop)


def draw_program(rng: np.random.Generator) -> Program:
    """One program of the grammar (shapes weighted: chains 1/2, the others 1/6 each)."""
    return SHAPES[int(rng.integers(len(SHAPES)))](rng)


def draw_value(rng: np.random.Generator, t: str) -> str:
    """The Python literal of one argument of type `t`."""
    if t == INT:
        return str(int(rng.integers(-5, 20)))
    if t == STR:
        return repr(_word(rng, 1, 5))
    return repr([int(v) for v in rng.integers(0, 10, size=int(rng.integers(1, 5)))])


def draw_input(rng: np.random.Generator, arg_types: tuple[str, ...]) -> str:
    """The argument list of one call, as the prompts write inputs: `'abc', [1, 2]`."""
    return ", ".join(draw_value(rng, t) for t in arg_types)
