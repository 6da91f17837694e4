"""Static checks: renaming the main function to f and the banned lists."""

import pytest

from azr_jax.executor.program import DEFAULT_BANNED, check_input, is_banned, prepare_program


def test_keeps_f_and_renames_the_last_function():
    assert prepare_program("def f(x):\n    return x").code == "def f(x):\n    return x"
    got = prepare_program(
        "def helper(x):\n    return x\ndef main(x):\n    return helper(x) + main2()"
    )
    assert got.error is None and "def f(x)" in got.code and "def helper" in got.code
    rec = prepare_program("def g(n):\n    return 1 if n < 1 else g(n - 1)")
    assert "return 1 if n < 1 else f(n - 1)" in rec.code


def test_nested_helpers_and_classes_are_allowed():
    code = "class P:\n    pass\ndef f(x):\n    def inner(y):\n        return y\n    return inner(x)"
    assert prepare_program(code).error is None


@pytest.mark.parametrize(
    "code, reason",
    [
        ("", "empty"),
        ("def f(:", "syntax"),
        ("x = 1", "no top-level function"),
        ("async def f(x):\n    return x", "async"),
        ("import os\ndef f(x):\n    return 1", "banned"),
        ("import os.path\ndef f(x):\n    return 1", "banned"),
        ("from os import path\ndef f(x):\n    return 1", "banned"),
        ("import random as r\ndef f(x):\n    return 1", "banned"),
        ("from . import x\ndef f(x):\n    return 1", "relative"),
        ("def f(x):\n    return eval('1')", "eval"),
        ("def f(x):\n    return ().__class__.__subclasses__()", "__subclasses__"),
        ("def f(x):\n    return getattr(x, '__globals__')", "__globals__"),
        ("def g(x):\n    return f", "already used"),
    ],
)
def test_rejections(code, reason):
    got = prepare_program(code)
    assert got.code is None and reason in got.error


def test_bans_are_configurable_and_dotted():
    assert prepare_program("import os\ndef f(x):\n    return 1", banned_modules=()).error is None
    code = "import os\ndef f(x):\n    return os.path.join('a')"
    assert "os.path" in prepare_program(code, banned_modules=("os.path",)).error
    assert is_banned("os.path.join", ["os.path"]) and not is_banned("os", ["os.path"])
    for name in ("sys", "shutil", "subprocess", "random", "time", "ctypes", "socket"):
        assert is_banned(name, DEFAULT_BANNED)


def test_a_bound_name_is_not_a_banned_builtin():
    assert prepare_program("def f(input):\n    return input").error is None


def test_inputs():
    assert check_input("[1, 2], 'a'") is None
    assert check_input("''.join(['A'] * 3)") is None
    assert "banned" in check_input("__import__('os')")
    assert check_input("1), g(2") is not None
