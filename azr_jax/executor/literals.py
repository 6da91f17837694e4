"""Literal values: a literal-only parser with caps, the allowed-output check, strict equality.

Model text is never `eval`ed outside the sandbox. Answers, outputs reported by a child and
inputs are read by `parse_literal`/`parse_call_args`, which build values only from literal
syntax nodes (no names, no calls except `set()`, no operators except a sign on a number), under
a size cap and a depth cap.

The same module runs inside the sandboxed child (it is loaded into the zygote), where
`output_repr` checks a program's return value on EXACT types (so str/int subclasses with a
lying `__repr__`/`__eq__` are refused, not trusted), builds its repr and checks the round trip.
The parent then parses that text again with `parse_literal`: the child's word is never taken.

Equality for rewards is `strict_equal`: type-strict and structural (True is not 1, 1.0 is not
1, -0.0 is not 0.0), order-free for dict and set like Python's own `==`.

Stdlib only, and light: this file is imported by the zygote, which never sees the rest of the
package, so it uses the C `_ast` module directly (importing `ast` pulls in `enum` and more,
and every page the zygote maps costs each fork).
"""

from __future__ import annotations

import _ast
import math

MAX_TEXT_CHARS = 100_000  # longest text the parser accepts at all
MAX_OUTPUT_CHARS = 10_000  # longest repr a program's output (or an answer) may have
MAX_DEPTH = 32  # deepest nesting of containers in a value

_SCALARS = (type(None), bool, int, float, str, bytes)
_CONTAINERS = (list, tuple, dict, set)


class LiteralError(ValueError):
    """The text is not an allowed literal, or a value is not an allowed output."""


def parse_literal(
    text: str, *, max_chars: int = MAX_TEXT_CHARS, max_depth: int = MAX_DEPTH
) -> object:
    """Parses one literal value (None, bool, int, float, str, bytes, list, tuple, dict, set).

    Raises:
      LiteralError: if the text is too long, not valid syntax or not a plain literal, or holds
        a non-finite float, an unhashable set element or dict key, or nests too deeply.
    """
    if type(text) is not str:
        raise LiteralError("not a string")
    if len(text) > max_chars:
        raise LiteralError(f"longer than {max_chars} characters")
    try:
        tree = compile(text.strip(), "<literal>", "eval", _ast.PyCF_ONLY_AST)
    except Exception as e:  # SyntaxError, MemoryError, RecursionError, ValueError (digits)
        raise LiteralError(f"does not parse: {type(e).__name__}") from None
    return _build(tree.body, 0, max_depth)


def parse_call_args(
    text: str, *, max_chars: int = MAX_TEXT_CHARS, max_depth: int = MAX_DEPTH
) -> tuple[tuple[object, ...], dict[str, object]]:
    """Parses an argument list such as `[1, 2], 'a', k=3` into (args, kwargs), literals only."""
    if type(text) is not str:
        raise LiteralError("not a string")
    if len(text) > max_chars:
        raise LiteralError(f"longer than {max_chars} characters")
    try:
        # The newline ends a trailing comment; the shape check below refuses `1), g(2`.
        tree = compile(f"f({text}\n)", "<literal>", "eval", _ast.PyCF_ONLY_AST)
    except Exception as e:
        raise LiteralError(f"does not parse: {type(e).__name__}") from None
    call = tree.body
    if not (
        isinstance(call, _ast.Call) and isinstance(call.func, _ast.Name) and call.func.id == "f"
    ):
        raise LiteralError("not an argument list")
    args = tuple(_build(a, 1, max_depth) for a in call.args)
    kwargs = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise LiteralError("** is not a literal")
        kwargs[kw.arg] = _build(kw.value, 1, max_depth)
    return args, kwargs


def _build(node: _ast.AST, depth: int, max_depth: int) -> object:
    if depth > max_depth:
        raise LiteralError(f"nested deeper than {max_depth}")
    if isinstance(node, _ast.Constant):
        value = node.value
        if type(value) not in _SCALARS:
            raise LiteralError(f"{type(value).__name__} is not an allowed literal")
        if type(value) is float and not math.isfinite(value):
            raise LiteralError("non-finite float")
        return value
    if isinstance(node, _ast.UnaryOp) and isinstance(node.op, (_ast.USub, _ast.UAdd)):
        operand = node.operand
        if isinstance(operand, _ast.Constant) and type(operand.value) in (int, float):
            value = -operand.value if isinstance(node.op, _ast.USub) else operand.value
            if type(value) is float and not math.isfinite(value):
                raise LiteralError("non-finite float")
            return value
        raise LiteralError("a sign applies only to a number")
    if isinstance(node, _ast.Tuple):
        return tuple(_build(e, depth + 1, max_depth) for e in node.elts)
    if isinstance(node, _ast.List):
        return [_build(e, depth + 1, max_depth) for e in node.elts]
    try:
        if isinstance(node, _ast.Set):
            return {_build(e, depth + 1, max_depth) for e in node.elts}
        if isinstance(node, _ast.Dict):
            if any(k is None for k in node.keys):
                raise LiteralError("** is not a literal")
            return {
                _build(k, depth + 1, max_depth): _build(v, depth + 1, max_depth)
                for k, v in zip(node.keys, node.values, strict=True)
            }
    except TypeError:
        raise LiteralError("unhashable set element or dict key") from None
    if (
        isinstance(node, _ast.Call)
        and isinstance(node.func, _ast.Name)
        and node.func.id == "set"
        and not node.args
        and not node.keywords
    ):
        return set()
    raise LiteralError(f"{type(node).__name__} is not a literal")


def output_repr(
    value: object,
    *,
    max_chars: int = MAX_OUTPUT_CHARS,
    max_depth: int = MAX_DEPTH,
    round_trip: bool = True,
) -> str:
    """The repr of an allowed output value, checked to round-trip exactly.

    Every part must have an exact allowed type (no subclasses), floats must be finite, the
    nesting and the repr must stay under the caps. No method of the value is called before its
    type is known to be a builtin one. `round_trip=False` skips parsing the repr back (the
    child does, to save time, since the parent parses it again anyway).

    Raises:
      LiteralError: naming the first problem found.
    """
    _check(value, 0, max_depth, [max_chars])
    try:
        text = repr(value)
    except ValueError as e:  # an int over the digit limit
        raise LiteralError(str(e)[:100]) from None
    if len(text) > max_chars:
        raise LiteralError(f"repr longer than {max_chars} characters")
    if round_trip and not strict_equal(
        parse_literal(text, max_chars=max_chars, max_depth=max_depth), value
    ):
        raise LiteralError("repr does not round-trip")
    return text


def _check(value: object, depth: int, max_depth: int, budget: list[int]) -> None:
    kind = type(value)
    if depth > max_depth:
        raise LiteralError(f"nested deeper than {max_depth}")
    # Every element costs at least one character of repr: this bounds the work done here.
    budget[0] -= 1
    if kind is str or kind is bytes:
        budget[0] -= len(value)
    elif kind is int:
        budget[0] -= value.bit_length() // 4
    elif kind is float:
        if not math.isfinite(value):
            raise LiteralError("non-finite float")
    elif kind is list or kind is tuple or kind is set:
        for item in value:
            _check(item, depth + 1, max_depth, budget)
    elif kind is dict:
        for key, item in value.items():
            _check(key, depth + 1, max_depth, budget)
            _check(item, depth + 1, max_depth, budget)
    elif kind is not bool and value is not None:
        raise LiteralError(f"output of type {_type_name(kind)} is not allowed")
    if budget[0] < 0:
        raise LiteralError("output too long")


def _type_name(kind: type) -> str:
    # type.__name__ through the base descriptor: a metaclass cannot fake it.
    return str(type.__dict__["__name__"].__get__(kind))[:60]


def strict_equal(a: object, b: object) -> bool:
    """Type-strict structural equality of literal values (True != 1, 1.0 != 1, -0.0 != 0.0)."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is float:
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if kind is list or kind is tuple:
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if kind is dict or kind is set:
        if len(a) != len(b):
            return False
        # Look each key up in b, then compare it strictly with the key b actually holds
        # (1, 1.0 and True hash alike and would match each other).
        keys_b = {k: k for k in b}
        for key in a:
            if key not in keys_b or not strict_equal(key, keys_b[key]):
                return False
            if kind is dict and not strict_equal(a[key], b[keys_b[key]]):
                return False
        return True
    if kind in _SCALARS:
        return a == b
    return False
