"""The literal parser, the output check and type-strict equality."""

import pytest

from azr_jax.executor.literals import (
    LiteralError,
    output_repr,
    parse_call_args,
    parse_literal,
    strict_equal,
)


@pytest.mark.parametrize(
    "text, value",
    [
        ("1", 1),
        ("-2.5", -2.5),
        ("'a'", "a"),
        ("b'x'", b"x"),
        ("[1, (2, 3), {4: None}]", [1, (2, 3), {4: None}]),
        ("{1, 2}", {1, 2}),
        ("set()", set()),
        ("True", True),
        ("-0.0", -0.0),
        ("1_000", 1000),
    ],
)
def test_parses_literals(text, value):
    assert strict_equal(parse_literal(text), value)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "1 + 1",
        "x",
        "f()",
        "1e999",
        "-1e999",
        "frozenset({1})",
        "[*a]",
        "{**a}",
        "{[1]}",
        "{[1]: 2}",
        "-'a'",
        "-True",
        "1j",
        "...",
        "f'x'",
        "lambda: 1",
        "[" * 150 + "]" * 150,
        "-" * 100000 + "1",
        "1" * 5000,
        "",
    ],
)
def test_rejects_non_literals(text):
    with pytest.raises(LiteralError):
        parse_literal(text)


def test_size_and_depth_caps():
    with pytest.raises(LiteralError):
        parse_literal("1" * 11, max_chars=10)
    with pytest.raises(LiteralError):
        parse_literal("[[[1]]]", max_depth=2)
    assert parse_literal("[[1]]", max_depth=2) == [[1]]
    with pytest.raises(LiteralError):
        parse_literal(b"1")  # not text


def test_call_args():
    assert parse_call_args("[1, 2], 'a', k=3") == (([1, 2], "a"), {"k": 3})
    assert parse_call_args("") == ((), {})
    for bad in ["1), g(2", "x", "**d", "*a", "1)(2"]:
        with pytest.raises(LiteralError):
            parse_call_args(bad)


def test_strict_equal_is_type_strict():
    assert not strict_equal(True, 1)
    assert not strict_equal(1.0, 1)
    assert not strict_equal(0.0, -0.0)
    assert not strict_equal((1,), [1])
    assert not strict_equal({1: "a"}, {True: "a"})
    assert not strict_equal({1}, {1.0})
    assert strict_equal({"a": [1, {2}]}, {"a": [1, {2}]})
    assert strict_equal({1: 2, 3: 4}, {3: 4, 1: 2})
    assert not strict_equal([1, 2], [1, 2, 3])


def test_output_repr_checks_exact_types():
    assert output_repr([1, "a", (None, 2.5)]) == "[1, 'a', (None, 2.5)]"
    assert output_repr(-0.0) == "-0.0"

    class S(str):
        def __repr__(self):
            return "'gold'"

    class Int(int):
        pass

    for bad in [
        S("x"),
        [Int(1)],
        float("nan"),
        [float("inf")],
        print,
        (i for i in ()),
        frozenset(),
        object(),
        2**100000,
        "a" * 20000,
        {1: [S()]},
    ]:
        with pytest.raises(LiteralError):
            output_repr(bad)
    loop = []
    loop.append(loop)
    with pytest.raises(LiteralError):
        output_repr(loop)
