"""A catalogue of hostile or faulty programs and answers, each with its expected verdict.

Program cases run either through the full AZR validation (`mode="validate"`: static bans, two
runs under different hash seeds) or straight through the pool (`mode="run"`: no static check,
as if a ban had been dodged), to show the kernel layers hold on their own. The prefix `OS`
walks the subclasses of `object` to the `os` module's globals and `IMP` imports through the
guard with an authentic stdlib namespace: both get past every Python-level ban.

Placeholders filled in by the test: CANARY (a directory outside scratch with a file `keep`),
REPO (the project), SHM (/dev/shm), PORT (a listening TCP socket on 127.0.0.1), UNIX (a
listening Unix socket), SITE (site-packages).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BYPASS = (
    "OS = next(c for c in ().__class__.__base__.__subclasses__()"
    " if c.__name__ == '_wrap_close').__init__.__globals__\n"
    "IMP = lambda name: OS['__builtins__']['__import__'](name, OS)\n"
    "OPEN = OS['__builtins__']['open']\n"
)


@dataclass(frozen=True)
class Case:
    """One program, its input, how to run it and the verdict expected."""

    name: str
    cls: str  # the SANDBOX.md class it covers
    code: str
    input: str = "1"
    # "run": the pool only, bans dodged; "validate": the full AZR check; "pair": two runs under
    # different hash seeds (the determinism check, with the static bans dodged).
    mode: str = "run"
    expect: Callable[[Any], bool] = lambda r: True
    bypass: bool = True  # prepend BYPASS (run mode)


@dataclass(frozen=True)
class AnswerCase:
    """A solver answer and its expected grade."""

    name: str
    task: str  # deduction | abduction | induction
    answer: str
    gold_output: str
    code: str = "def f(x):\n    return x"
    gold_inputs: tuple[str, ...] = ("1",)
    correct: bool = False


def status(*wanted: str) -> Callable[[Any], bool]:
    return lambda r: r.status in wanted


def error(type_name: str) -> Callable[[Any], bool]:
    return lambda r: r.status == "error" and r.error_type == type_name


def ok(output: str) -> Callable[[Any], bool]:
    return lambda r: r.status == "ok" and r.output_repr == output


def invalid(reason_part: str = "") -> Callable[[Any], bool]:
    return lambda r: not r.valid and reason_part in (r.reason or "")


def valid(output: str) -> Callable[[Any], bool]:
    return lambda r: r.valid and r.outputs == [output]


def not_ok() -> Callable[[Any], bool]:
    return lambda r: r.status != "ok"


def differ() -> Callable[[Any], bool]:
    """Pair mode: both runs succeed but disagree, so validation calls it nondeterministic."""
    return lambda pair: all(r.status == "ok" for r in pair) and pair[0].value != pair[1].value


PROGRAMS: list[Case] = [
    # --- loops, sleeps, blocking -------------------------------------------------------
    Case(
        "infinite loop",
        "loops",
        "def f(x):\n    while True:\n        pass",
        expect=status("timeout"),
    ),
    Case(
        "loop swallowing every exception",
        "loops",
        "def f(x):\n    while True:\n        try:\n            while True:\n                pass\n"
        "        except BaseException:\n            pass",
        expect=status("timeout"),
    ),
    Case(
        "sleep",
        "sleeps",
        "def f(x):\n    IMP('time').sleep(100)\n    return 1",
        expect=status("timeout"),
    ),
    Case(
        "blocking read on a pipe",
        "blocking reads",
        "def f(x):\n    r, w = OS['pipe']()\n    return OS['read'](r, 1)",
        expect=status("timeout"),
    ),
    Case(
        "read stdin", "blocking reads", "def f(x):\n    return OS['read'](0, 10)", expect=ok("b''")
    ),
    Case(
        "input() via real builtins",
        "blocking reads",
        "def f(x):\n    return OS['__builtins__']['input']()",
        expect=error("EOFError"),
    ),
    # --- memory, big values ------------------------------------------------------------
    Case(
        "huge allocation",
        "huge memory",
        "def f(x):\n    return len(bytearray(10**10))",
        expect=error("MemoryError"),
    ),
    Case(
        "growing list",
        "huge memory",
        "def f(x):\n    a = []\n    while True:\n        a.append([0] * 10**6)",
        expect=status("error", "killed", "timeout"),
    ),
    Case(
        "huge integer computation",
        "huge integers",
        "def f(x):\n    return 7 ** (10 ** 9)",
        expect=status("timeout", "error"),
    ),
    Case(
        "huge integer output",
        "huge integers",
        "def f(x):\n    return 2 ** 100000",
        expect=status("rejected"),
    ),
    Case(
        "huge string output",
        "huge strings",
        "def f(x):\n    return 'a' * 10**7",
        expect=status("rejected"),
    ),
    Case(
        "huge list output",
        "huge strings",
        "def f(x):\n    return [0] * 10**6",
        expect=status("rejected"),
    ),
    # --- recursion and crashes ----------------------------------------------------------
    Case(
        "deep recursion",
        "deep recursion",
        "def f(x):\n    return f(x)",
        mode="validate",
        bypass=False,
        expect=invalid("RecursionError"),
    ),
    Case(
        "segfault",
        "crashes",
        "def f(x):\n    return IMP('ctypes').string_at(0)",
        expect=status("killed"),
    ),
    Case("abort", "crashes", "def f(x):\n    OS['abort']()", expect=status("killed")),
    Case(
        "recursion limit raised then C stack overflow",
        "crashes",
        "def f(x):\n    OS['sys'].setrecursionlimit(10**8)\n    g = lambda n: g(n + 1)\n"
        "    return g(0)",
        expect=status("killed", "error", "timeout"),
    ),
    # --- processes -----------------------------------------------------------------------
    Case("fork", "forks", "def f(x):\n    return OS['fork']()", expect=error("PermissionError")),
    Case(
        "fork bomb",
        "fork bombs",
        "def f(x):\n    while True:\n        OS['fork']()",
        expect=error("PermissionError"),
    ),
    Case(
        "thread",
        "threads",
        "def f(x):\n    IMP('_thread').start_new_thread(lambda: None, ())\n    return 1",
        expect=error("RuntimeError"),
    ),
    Case(
        "threading banned statically",
        "threads",
        "import threading\ndef f(x):\n    return 1",
        mode="validate",
        bypass=False,
        expect=invalid("banned"),
    ),
    Case(
        "multiprocessing",
        "multiprocessing",
        "def f(x):\n    p = IMP('multiprocessing').Process(target=print)\n    p.start()\n"
        "    return 1",
        expect=not_ok(),
    ),
    Case(
        "subprocess",
        "subprocess",
        "def f(x):\n    return IMP('subprocess').run(['touch', 'CANARY/sub']).returncode",
        expect=not_ok(),
    ),
    Case(
        "os.system",
        "os.system",
        "def f(x):\n    return OS['system']('touch CANARY/sys')",
        expect=lambda r: r.status != "ok" or r.output_repr != "0",
    ),
    Case(
        "exec a shell",
        "exec",
        "def f(x):\n    OS['execv']('/bin/sh', ['sh', '-c', 'touch CANARY/exec'])",
        expect=error("PermissionError"),
    ),
    Case(
        "posix_spawn",
        "exec",
        "def f(x):\n    return OS['posix_spawn']('/bin/touch', ['touch', 'CANARY/spawn'], {})",
        expect=not_ok(),
    ),
    Case(
        "daemon",
        "daemons",
        "def f(x):\n    if OS['fork']() == 0:\n        OS['setsid']()\n"
        "        IMP('time').sleep(60)\n    return 1",
        expect=error("PermissionError"),
    ),
    # --- signals ---------------------------------------------------------------------------
    Case(
        "kill the zygote",
        "signals",
        "def f(x):\n    OS['kill'](OS['getppid'](), 9)",
        expect=error("PermissionError"),
    ),
    Case(
        "kill everything",
        "signals",
        "def f(x):\n    OS['kill'](-1, 9)",
        expect=error("PermissionError"),
    ),
    Case(
        "kill pid 1", "signals", "def f(x):\n    OS['kill'](1, 15)", expect=error("PermissionError")
    ),
    Case(
        "killpg of the zygote",
        "signals",
        "def f(x):\n    OS['killpg'](OS['getpgid'](OS['getppid']()), 9)",
        expect=not_ok(),
    ),
    Case(
        "kill itself",
        "signals",
        "def f(x):\n    OS['kill'](OS['getpid'](), 9)",
        expect=status("killed"),
    ),
    # --- exits -----------------------------------------------------------------------------
    Case(
        "sys.exit banned",
        "sys.exit",
        "import sys\ndef f(x):\n    sys.exit(0)",
        mode="validate",
        bypass=False,
        expect=invalid("banned"),
    ),
    Case(
        "raise SystemExit",
        "sys.exit",
        "def f(x):\n    raise SystemExit(0)",
        expect=error("SystemExit"),
    ),
    Case("os._exit", "os._exit", "def f(x):\n    OS['_exit'](0)", expect=error("NoResult")),
    Case(
        "KeyboardInterrupt",
        "KeyboardInterrupt",
        "def f(x):\n    raise KeyboardInterrupt",
        expect=error("KeyboardInterrupt"),
    ),
    Case(
        "BaseException subclass",
        "BaseException",
        "class Boom(BaseException):\n    pass\ndef f(x):\n    raise Boom('x')",
        expect=error("Boom"),
    ),
    Case(
        "exception whose str spins",
        "BaseException",
        "class E(Exception):\n    def __str__(self):\n        while True:\n            pass\n"
        "def f(x):\n    raise E()",
        expect=status("timeout"),
    ),
    # --- files -------------------------------------------------------------------------------
    Case(
        "write outside scratch",
        "writes",
        "def f(x):\n    OPEN('CANARY/w', 'w').write('x')",
        expect=error("PermissionError"),
    ),
    Case(
        "symlink out of scratch, left for the cleanup to follow",
        "writes",
        "def f(x):\n    OS['symlink']('CANARY', 'link')\n    OS['mkdir']('d')\n"
        "    OS['symlink']('CANARY/keep', 'd/k')\n    OPEN('junk', 'w').write('x')\n    return 1",
        expect=ok("1"),
    ),
    Case(
        "delete outside scratch",
        "deletes",
        "def f(x):\n    OS['remove']('CANARY/keep')",
        expect=error("PermissionError"),
    ),
    Case(
        "write into the project",
        "writes",
        "def f(x):\n    OPEN('REPO/azr_pwned.py', 'w').write('x')",
        expect=error("PermissionError"),
    ),
    Case(
        "write into site-packages",
        "writes",
        "def f(x):\n    OPEN('SITE/azr_pwned.pth', 'w').write('x')",
        expect=error("PermissionError"),
    ),
    Case(
        "write /dev/shm",
        "writes",
        "def f(x):\n    OPEN('SHM/azr_pwned', 'w').write('x')",
        expect=error("PermissionError"),
    ),
    Case(
        "read a secret",
        "reads",
        "def f(x):\n    return OPEN('/etc/shadow').read()",
        expect=error("PermissionError"),
    ),
    Case(
        "read the project's code",
        "reads",
        "def f(x):\n    return OPEN('REPO/azr_jax/executor/pool.py').read()[:50]",
        expect=error("PermissionError"),
    ),
    Case(
        "list the root dir",
        "reads",
        "def f(x):\n    return OS['listdir']('/')",
        expect=error("PermissionError"),
    ),
    Case(
        "write in scratch is fine",
        "writes",
        "def f(x):\n    OPEN('out.txt', 'w').write('hello')\n    return OPEN('out.txt').read()",
        expect=ok("'hello'"),
    ),
    Case(
        "file size limit",
        "writes",
        "def f(x):\n    OPEN('big', 'wb').write(b'0' * (64 << 20))\n    return 1",
        expect=not_ok(),
    ),
    # --- environment and /proc ------------------------------------------------------------------
    Case(
        "environment", "environment", "def f(x):\n    return dict(OS['environ'])", expect=ok("{}")
    ),
    Case(
        "/proc/self/environ",
        "/proc secrets",
        "def f(x):\n    return OPEN('/proc/self/environ', 'rb').read()",
        expect=not_ok(),
    ),
    Case(
        "/proc/1/environ",
        "/proc secrets",
        "def f(x):\n    return OPEN('/proc/1/environ', 'rb').read()",
        expect=not_ok(),
    ),
    Case(
        "parent's cmdline",
        "/proc secrets",
        "def f(x):\n    return OPEN(f\"/proc/{OS['getppid']()}/cmdline\", 'rb').read()",
        expect=not_ok(),
    ),
    # --- file descriptors -------------------------------------------------------------------------
    Case(
        "fd exhaustion",
        "fd exhaustion",
        "def f(x):\n    fds = [OS['dup'](0) for _ in range(100000)]\n    return len(fds)",
        expect=error("OSError"),
    ),
    Case(
        "close the result pipe then return",
        "fd exhaustion",
        "def f(x):\n    OS['close'](3)\n    return 1",
        expect=error("NoResult"),
    ),
    # --- network -------------------------------------------------------------------------------------
    Case(
        "tcp to localhost",
        "network",
        "def f(x):\n    s = IMP('socket').create_connection(('127.0.0.1', PORT), timeout=0.5)\n"
        "    return 1",
        expect=not_ok(),
    ),
    Case(
        "dns",
        "network",
        "def f(x):\n    return IMP('socket').getaddrinfo('example.com', 80)[0][4][0]",
        expect=not_ok(),
    ),
    Case(
        "unix socket",
        "network",
        "def f(x):\n    s = IMP('socket').socket(1, 1)\n    s.connect('UNIX')\n    return 1",
        expect=not_ok(),
    ),
    Case(
        "socket banned statically",
        "network",
        "import socket\ndef f(x):\n    return 1",
        mode="validate",
        bypass=False,
        expect=invalid("banned"),
    ),
    # --- import tricks ---------------------------------------------------------------------------------
    Case(
        "__import__ banned statically",
        "import tricks",
        "def f(x):\n    return __import__('os').getpid()",
        mode="validate",
        bypass=False,
        expect=invalid("__import__"),
    ),
    Case(
        "getattr on builtins at run time",
        "import tricks",
        "def f(x):\n    b = [v for k, v in globals().items() if k.startswith('__bu')][0]\n"
        "    return b['__imp' + 'ort__']('ran' + 'dom').random()",
        mode="validate",
        bypass=False,
        expect=invalid("rejected: BannedModule"),
    ),
    Case(
        "import statement at run time",
        "import tricks",
        "def f(x):\n    import random\n    return random.random()",
        bypass=False,
        expect=status("rejected"),
    ),
    Case(
        "importlib at run time",
        "import tricks",
        "def f(x):\n    import importlib\n    return 1",
        bypass=False,
        expect=status("rejected"),
    ),
    Case(
        "exec'd import in fresh globals",
        "import tricks",
        "def f(x):\n    g = {}\n    eval(compile('import time', 's', 'exec'), g)\n    return 1",
        bypass=False,
        expect=status("rejected", "error"),
    ),
    Case(
        "subclass walking statically",
        "import tricks",
        "def f(x):\n    return len(().__class__.__base__.__subclasses__())",
        mode="validate",
        bypass=False,
        expect=invalid("__subclasses__"),
    ),
    # --- poisoning --------------------------------------------------------------------------------------
    Case(
        "poison builtins and sys.modules",
        "poisoning",
        "def f(x):\n    OS['__builtins__']['len'] = lambda v: 42\n"
        "    OS['sys'].modules['json'] = None\n    OS['sys'].modules['re'] = None\n    return 1",
        expect=ok("1"),
    ),
    Case(
        "poison the harness",
        "poisoning",
        "def f(x):\n    m = OS['sys'].modules['azr_jax.executor.literals']\n"
        "    m.output_repr = lambda *a, **k: 'oops('\n    return 1",
        expect=status("rejected"),
    ),
    Case(
        "shadow repr, str and print",
        "shadowing",
        "repr = lambda v: '42'\nstr = lambda v: '42'\nprint = None\ndef f(x):\n    return [x, 2]",
        mode="validate",
        bypass=False,
        expect=valid("[1, 2]"),
    ),
    Case(
        "atexit hook",
        "atexit",
        "def f(x):\n    IMP('atexit').register(lambda: OS['kill'](OS['getppid'](), 9))\n"
        "    return 1",
        expect=ok("1"),
    ),
    Case(
        "__del__ spins at return",
        "__del__",
        "class Spin:\n    def __del__(self):\n        while True:\n            pass\n"
        "def f(x):\n    s = Spin()\n    return 1",
        mode="validate",
        bypass=False,
        expect=invalid("timeout"),
    ),
    Case(
        "__del__ spins at exit",
        "__del__",
        "class Spin:\n    def __del__(self):\n        while True:\n            pass\n"
        "KEEP = Spin()\ndef f(x):\n    return 1",
        mode="validate",
        bypass=False,
        expect=valid("1"),
    ),
    # --- lying objects and bad outputs -------------------------------------------------------------------
    Case(
        "always-equal object",
        "lying __eq__",
        "class A:\n    def __eq__(self, o):\n        return True\n    def __repr__(self):\n"
        "        return '1'\ndef f(x):\n    return A()",
        mode="validate",
        bypass=False,
        expect=invalid("InvalidOutput"),
    ),
    Case(
        "str subclass with lying repr",
        "str subclasses",
        "class S(str):\n    def __repr__(self):\n        return \"'gold'\"\n"
        "def f(x):\n    return S('x')",
        mode="validate",
        bypass=False,
        expect=invalid("InvalidOutput"),
    ),
    Case(
        "int subclass",
        "int subclasses",
        "class I(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\n"
        "def f(x):\n    return [I(3)]",
        mode="validate",
        bypass=False,
        expect=invalid("InvalidOutput"),
    ),
    Case(
        "lying __hash__ in a dict key",
        "lying __hash__",
        "class H:\n    def __hash__(self):\n        return 1\ndef f(x):\n    return {H(): 1}",
        mode="validate",
        bypass=False,
        expect=invalid("InvalidOutput"),
    ),
    Case(
        "function output",
        "outputs",
        "def f(x):\n    return f",
        mode="validate",
        bypass=False,
        expect=invalid("InvalidOutput"),
    ),
    Case(
        "generator output",
        "outputs",
        "def f(x):\n    return (i for i in range(3))",
        mode="validate",
        bypass=False,
        expect=invalid("InvalidOutput"),
    ),
    Case(
        "NaN output",
        "outputs",
        "def f(x):\n    return float('nan')",
        mode="validate",
        bypass=False,
        expect=invalid("InvalidOutput"),
    ),
    Case(
        "inf output",
        "outputs",
        "def f(x):\n    return [1e308 * 10]",
        mode="validate",
        bypass=False,
        expect=invalid("InvalidOutput"),
    ),
    Case(
        "-0.0 output",
        "outputs",
        "def f(x):\n    return -0.0",
        mode="validate",
        bypass=False,
        expect=valid("-0.0"),
    ),
    Case(
        "frozenset output does not round-trip",
        "outputs",
        "def f(x):\n    return frozenset({1})",
        mode="validate",
        bypass=False,
        expect=invalid("InvalidOutput"),
    ),
    Case(
        "self-referencing list",
        "outputs",
        "def f(x):\n    a = [1]\n    a.append(a)\n    return a",
        mode="validate",
        bypass=False,
        expect=invalid("InvalidOutput"),
    ),
    Case(
        "too deep",
        "outputs",
        "def f(x):\n    a = []\n    for _ in range(100):\n        a = [a]\n    return a",
        mode="validate",
        bypass=False,
        expect=invalid("InvalidOutput"),
    ),
    # --- nondeterminism ----------------------------------------------------------------------------------
    Case(
        "random banned statically",
        "nondeterminism",
        "import random\ndef f(x):\n    return random.random()",
        mode="validate",
        bypass=False,
        expect=invalid("banned"),
    ),
    Case(
        "os.urandom",
        "nondeterminism",
        "def f(x):\n    return OS['urandom'](8)",
        mode="pair",
        expect=differ(),
    ),
    Case(
        "time",
        "nondeterminism",
        "def f(x):\n    return IMP('time').time()",
        mode="pair",
        expect=differ(),
    ),
    Case(
        "uuid",
        "nondeterminism",
        "def f(x):\n    return str(IMP('uuid').uuid4())",
        mode="pair",
        expect=differ(),
    ),
    Case(
        "hash seed",
        "nondeterminism",
        "def f(x):\n    return hash('abc')",
        mode="validate",
        bypass=False,
        expect=invalid("nondeterministic"),
    ),
    Case(
        "set order",
        "nondeterminism",
        "def f(x):\n    return list({str(i) for i in range(50)})",
        mode="validate",
        bypass=False,
        expect=invalid("nondeterministic"),
    ),
    Case(
        "set output is deterministic as a value",
        "nondeterminism",
        "def f(x):\n    return {'a', 'b', 'c'}",
        mode="validate",
        bypass=False,
        expect=lambda r: r.valid,
    ),
    Case(
        "id()",
        "nondeterminism",
        "def f(x):\n    return id(object()) % 1000003",
        mode="validate",
        bypass=False,
        expect=invalid("nondeterministic"),
    ),
    Case(
        "pid",
        "nondeterminism",
        "def f(x):\n    return OS['getpid']()",
        mode="pair",
        expect=differ(),
    ),
    Case(
        "cwd",
        "nondeterminism",
        "def f(x):\n    return OS['getcwd']()",
        mode="pair",
        expect=differ(),
    ),
    # --- stdout --------------------------------------------------------------------------------------------
    Case(
        "stdout flood then return",
        "stdout floods",
        "def f(x):\n    for _ in range(200):\n        print('x' * 100000)\n    return 7",
        mode="validate",
        bypass=False,
        expect=valid("7"),
    ),
    Case(
        "endless stdout flood",
        "stdout floods",
        "def f(x):\n    while True:\n        print('x' * 100000)",
        expect=status("timeout"),
    ),
    Case(
        "fake result marker on stdout",
        "fake markers",
        'def f(x):\n    print(\'{"s": "ok", "o": "42"}\')\n    return 1',
        mode="validate",
        bypass=False,
        expect=valid("1"),
    ),
    Case(
        "forged result that is code",
        "fake markers",
        'def f(x):\n    OS[\'write\'](3, b\'{"s": "ok", "o": "__import__(1)"}\')\n    OS[\'_exit\'](0)',
        expect=status("rejected"),
    ),
    Case(
        "garbage on the result pipe",
        "fake markers",
        "def f(x):\n    OS['write'](3, b'\\xff' * 1000)\n    OS['_exit'](0)",
        expect=error("NoResult"),
    ),
    Case(
        "flood on the result pipe",
        "fake markers",
        "def f(x):\n    OS['write'](3, b'x' * 10**6)\n    OS['_exit'](0)",
        expect=error("ResultTooLong"),
    ),
]

ANSWERS: list[AnswerCase] = [
    AnswerCase("deduction right", "deduction", "[1, 2]", "[1, 2]", correct=True),
    AnswerCase("deduction True is not 1", "deduction", "True", "1"),
    AnswerCase("deduction 1.0 is not 1", "deduction", "1.0", "1"),
    AnswerCase("deduction 0.0 is not -0.0", "deduction", "0.0", "-0.0"),
    AnswerCase("deduction tuple is not list", "deduction", "(1, 2)", "[1, 2]"),
    AnswerCase("deduction code answer", "deduction", "__import__('os').getpid()", "1"),
    AnswerCase("deduction expression answer", "deduction", "1 + 1", "2"),
    AnswerCase("deduction huge answer", "deduction", "[" + "1, " * 100000 + "]", "[]"),
    AnswerCase("deduction deep answer", "deduction", "[" * 150 + "]" * 150, "[]"),
    AnswerCase("deduction NaN answer", "deduction", "1e999", "1"),
    AnswerCase("abduction right", "abduction", "'ab'", "'ab'", correct=True),
    AnswerCase("abduction expression is not a literal", "abduction", "''.join(['a', 'b'])", "'ab'"),
    AnswerCase(
        "abduction forging the result pipe",
        "abduction",
        '__import__(\'os\').write(3, b\'{"s": "ok", "o": "2"}\')',
        "2",
    ),
    AnswerCase("abduction injection", "abduction", "1), print(1", "1"),
    AnswerCase(
        "abduction dict key True is not 1",
        "abduction",
        "{True: 1}",
        "{1: 1}",
        code="def f(d):\n    return d",
    ),
    AnswerCase(
        "induction right",
        "induction",
        "def g(x):\n    return x * 2",
        "4",
        gold_inputs=("2",),
        correct=True,
    ),
    AnswerCase(
        "induction always-equal object",
        "induction",
        "class A:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return A()",
        "4",
        gold_inputs=("2",),
    ),
    AnswerCase(
        "induction banned import",
        "induction",
        "import os\ndef f(x):\n    return x * 2",
        "4",
        gold_inputs=("2",),
    ),
    AnswerCase(
        "induction reads the hidden outputs",
        "induction",
        "def f(x):\n    return OPEN('/proc/self/cmdline').read()",
        "4",
        gold_inputs=("2",),
    ),
]
