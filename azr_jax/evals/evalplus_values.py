"""EvalPlus outputs across the sandbox boundary: the values EvalPlus compares with `==` that are
not plain literals, carried as tagged literals and rebuilt here.

A run may only return literals (the executor's output check: exact builtin types, finite
floats, a capped repr), but EvalPlus compares whatever the solution returns, and MBPP+'s
canonical solutions return `collections.Counter`s, `OrderedDict`s, non-finite floats, complex
numbers, frozensets, ints of more than 4,300 digits (HumanEval/83, /139: Python's repr refuses
them) ... and in one task (Mbpp/630) an output whose repr runs to megabytes. The
harness `PACK_SOURCE` runs inside the sandbox after the solution and turns such a value into a
tagged tuple `(TAG, kind, ...)` of literals; `unpack` rebuilds the same type here from those
literals alone (no code, a fixed list of types), so `==` is Python's own on both sides, as
EvalPlus's is. An output whose packed repr is over `MAX_PACKED_CHARS` comes back as
`(TAG, "digest", sha256)` of a canonical text (types and values; sets and dict keys sorted),
and matches only an identical digest: equal values of the same types, not EvalPlus's float
tolerance (no release test needs it; Mbpp/630's output is lists of ints).

A candidate could return a forged tagged tuple; it gains nothing, since it still has to
produce the reference's value, in one form or another.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

TAG = "__azr_evalplus_value__"
PACK = "__azr_evalplus_pack__"
MAX_PACKED_CHARS = 90_000  # under the code pool's output cap (100,000)
BIG_INT_BITS = 12_000  # ints above this travel as hex (Python's repr refuses > 4,300 digits)

PACK_SOURCE = f"""
import collections as __azr_collections
import hashlib as __azr_hashlib


def __azr_canonical__(x):
    t = type(x)
    if t in (list, tuple, __azr_collections.deque):
        return t.__name__ + "[" + ",".join(__azr_canonical__(i) for i in x) + "]"
    if t in (set, frozenset):
        return t.__name__ + "{{" + ",".join(sorted(__azr_canonical__(i) for i in x)) + "}}"
    if isinstance(x, dict):
        pairs = [__azr_canonical__(k) + ":" + __azr_canonical__(v) for k, v in x.items()]
        if t is not __azr_collections.OrderedDict:
            pairs.sort()
        return t.__name__ + "{{" + ",".join(pairs) + "}}"
    if t is int:  # hex: repr stops at 4,300 digits (sys.int_info.str_digits_check_threshold)
        return "int:" + hex(x)
    return t.__name__ + ":" + repr(x)


def {PACK}(x, top=True):
    t = type(x)
    if t is list:
        out = [{PACK}(i, False) for i in x]
    elif t is tuple:
        out = tuple({PACK}(i, False) for i in x)
    elif t is set:
        out = {{{PACK}(i, False) for i in x}}
    elif t is dict:
        out = {{{PACK}(k, False): {PACK}(v, False) for k, v in x.items()}}
    elif t is float and (x != x or x in (float("inf"), float("-inf"))):
        out = ({TAG!r}, "float", repr(x))
    elif t is int and x.bit_length() > {BIG_INT_BITS}:
        out = ({TAG!r}, "int", hex(x))
    elif t is complex:
        out = ({TAG!r}, "complex", {PACK}(x.real, False), {PACK}(x.imag, False))
    elif t is frozenset:
        out = ({TAG!r}, "frozenset", [{PACK}(i, False) for i in x])
    elif t is __azr_collections.deque:
        out = ({TAG!r}, "deque", [{PACK}(i, False) for i in x])
    elif t in (__azr_collections.Counter, __azr_collections.OrderedDict,
               __azr_collections.defaultdict):
        pairs = [[{PACK}(k, False), {PACK}(v, False)] for k, v in x.items()]
        out = ({TAG!r}, t.__name__, pairs)
    else:
        out = x
    if top and len(repr(out)) > {MAX_PACKED_CHARS}:
        digest = __azr_hashlib.sha256(__azr_canonical__(x).encode("utf-8", "surrogatepass"))
        out = ({TAG!r}, "digest", digest.hexdigest())
    return out
"""


@dataclass(frozen=True)
class Digest:
    """A large output, known by the SHA-256 of its canonical text."""

    sha256: str


_DICTS = {
    "Counter": lambda pairs: collections.Counter(dict(pairs)),  # counts, not the pairs counted
    "OrderedDict": collections.OrderedDict,
    "defaultdict": lambda pairs: collections.defaultdict(None, pairs),
}


def unpack(value: Any) -> Any:
    """The value a packed literal stands for (lists, tuples, sets, dicts walked through).

    Raises:
      ValueError: a tagged tuple of an unknown kind or shape.
    """
    t = type(value)
    if t is list:
        return [unpack(v) for v in value]
    if t is set:
        return {unpack(v) for v in value}
    if t is dict:
        return {unpack(k): unpack(v) for k, v in value.items()}
    if t is not tuple:
        return value
    if not (len(value) >= 2 and value[0] == TAG and type(value[1]) is str):
        return tuple(unpack(v) for v in value)
    kind, rest = value[1], value[2:]
    try:
        if kind == "float":
            (text,) = rest
            if text not in ("inf", "-inf", "nan"):
                raise ValueError(text)
            return float(text)
        if kind == "int":
            (text,) = rest
            if type(text) is not str or not text.lstrip("-").startswith("0x"):
                raise ValueError("not a hex integer")
            return int(text, 16)
        if kind == "complex":
            real, imag = (float(unpack(v)) for v in rest)
            return complex(real, imag)
        if kind == "frozenset":
            return frozenset(unpack(v) for v in rest[0])
        if kind == "deque":
            return collections.deque(unpack(v) for v in rest[0])
        if kind in _DICTS:
            return _DICTS[kind]([(unpack(k), unpack(v)) for k, v in rest[0]])
        if kind == "digest":
            (sha,) = rest
            return Digest(str(sha))
    except (TypeError, ValueError) as e:
        raise ValueError(f"a packed EvalPlus value of kind {kind!r} is malformed ({e})") from None
    raise ValueError(f"unknown packed EvalPlus value kind {kind!r}")
