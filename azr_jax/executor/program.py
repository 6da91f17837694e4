"""Static side of a proposed program: parse it, rename its main function to `f`, ban imports.

Runs in the trusted process on the AST only (nothing is executed). The same banned lists are
enforced again at run time inside the child (`child.py`), since a static check alone is easy
to dodge (`__import__('ra' + 'ndom')`).

Banned modules match by dotted prefix: banning `os` bans `os.path`; banning `os.path` alone
bans `os.path.join`, `from os import path` and `import os.path`, but not `import os`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass

# Paper list, plus what its check misses (`sys`, `shutil`, dotted names) and the modules that
# reach the OS, the network, other processes, the clock, randomness or the interpreter.
DEFAULT_BANNED: tuple[str, ...] = (
    # the paper's list
    "logging", "random", "multiprocessing", "pebble", "subprocess", "threading", "datetime",
    "time", "hashlib", "hmac", "bcrypt", "calendar", "os.sys", "os.path", "os.environ",
    "sys.exit",
    # the process, the OS and files
    "os", "posix", "nt", "sys", "shutil", "pathlib", "glob", "tempfile", "io", "_io", "fcntl",
    "mmap", "resource", "pty", "tty", "termios", "signal", "_signal", "faulthandler", "atexit",
    "gc", "ctypes", "_ctypes", "cffi", "_posixsubprocess", "_thread", "concurrent", "asyncio",
    "sched", "selectors", "select",
    # the network
    "socket", "_socket", "ssl", "http", "urllib", "ftplib", "smtplib", "socketserver",
    "xmlrpc", "webbrowser",
    # time, randomness, identity
    "_random", "secrets", "uuid", "zoneinfo", "_datetime", "platform", "getpass",
    # the interpreter's machinery
    "importlib", "builtins", "imp", "pkgutil", "runpy", "code", "codeop", "inspect", "pickle",
    "marshal", "shelve", "dbm", "sqlite3", "zipimport", "site", "sysconfig", "tracemalloc",
    "pdb", "bdb", "trace",
)  # fmt: skip
# Builtins a program may not use (unless it binds the name itself).
DEFAULT_BANNED_BUILTINS: tuple[str, ...] = (
    "__import__", "eval", "exec", "compile", "open", "input", "breakpoint", "exit", "quit",
    "help",
)  # fmt: skip
# Attribute names that only introspection tricks need (walking to hidden modules).
BANNED_ATTRIBUTES = frozenset(
    "__subclasses__ __globals__ __builtins__ __code__ __closure__ __loader__ __spec__ "
    "__import__ f_globals f_builtins f_locals f_back tb_frame gi_frame cr_frame ag_frame "
    "gi_code __self__ __traceback__ __reduce__ __reduce_ex__ __getattribute__ __dict__ "
    "__base__ __bases__ __mro__".split()
)


@dataclass(frozen=True)
class Prepared:
    """A checked program. `error` is None when the program may run."""

    code: str | None
    error: str | None


def is_banned(dotted: str, banned: Iterable[str]) -> bool:
    """True if `dotted` or one of its dotted prefixes is in `banned`."""
    if not isinstance(banned, (set, frozenset)):
        banned = set(banned)
    parts = dotted.split(".")
    return any(".".join(parts[: i + 1]) in banned for i in range(len(parts)))


def prepare_program(
    code: str,
    banned_modules: Iterable[str] = DEFAULT_BANNED,
    banned_builtins: Iterable[str] = DEFAULT_BANNED_BUILTINS,
    max_chars: int = 20_000,
) -> Prepared:
    """Parses `code`, renames its main function to `f` and checks the bans.

    The main function is the top-level function named `f` if there is one, otherwise the last
    top-level function. Nested helpers, other functions and classes are kept as they are.
    """
    if type(code) is not str or not code.strip():
        return Prepared(None, "empty program")
    if len(code) > max_chars:
        return Prepared(None, f"program longer than {max_chars} characters")
    try:
        tree = ast.parse(code)
    except Exception as e:  # SyntaxError, but also MemoryError/RecursionError on odd input
        return Prepared(None, f"syntax error: {type(e).__name__}: {str(e)[:100]}")
    error = check_tree(tree, banned_modules, banned_builtins)
    if error:
        return Prepared(None, error)
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not functions:
        return Prepared(None, "no top-level function")
    names = {n.name for n in functions}
    main = "f" if "f" in names else functions[-1].name
    if isinstance(next(n for n in reversed(functions) if n.name == main), ast.AsyncFunctionDef):
        return Prepared(None, "the main function is async")
    if main == "f":
        return Prepared(code, None)
    if any(isinstance(n, ast.Name) and n.id == "f" for n in all_nodes(tree)):
        return Prepared(None, "cannot rename the main function: the name f is already used")
    renamed = _Rename(main).visit(tree)
    return Prepared(ast.unparse(ast.fix_missing_locations(renamed)), None)


def check_input(
    text: str,
    banned_modules: Iterable[str] = DEFAULT_BANNED,
    banned_builtins: Iterable[str] = DEFAULT_BANNED_BUILTINS,
    max_chars: int = 20_000,
) -> str | None:
    """Checks that `text` is an argument list for `f` and uses nothing banned; None if fine."""
    if type(text) is not str:
        return "input is not text"
    if len(text) > max_chars:
        return f"input longer than {max_chars} characters"
    try:
        tree = ast.parse(f"f({text}\n)", mode="eval")
    except Exception as e:
        return f"input does not parse: {type(e).__name__}"
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "f"):
        return "input is not an argument list"
    return check_tree(tree, banned_modules, banned_builtins)


def check_tree(
    tree: ast.AST, banned_modules: Iterable[str], banned_builtins: Iterable[str]
) -> str | None:
    """The first ban the tree breaks, or None."""
    banned = set(banned_modules)
    nodes = all_nodes(tree)
    bound = _bound_names(nodes)
    aliases: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_banned(alias.name, banned):
                    return f"imports banned module {alias.name}"
                top = alias.name.split(".")[0]
                aliases[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                return "relative import"
            module = node.module or ""
            if is_banned(module, banned):
                return f"imports banned module {module}"
            for alias in node.names:
                if alias.name == "*":
                    continue
                if is_banned(f"{module}.{alias.name}", banned):
                    return f"imports banned name {module}.{alias.name}"
                aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
    for node in nodes:
        if isinstance(node, ast.Attribute):
            if node.attr in BANNED_ATTRIBUTES:
                return f"uses attribute {node.attr}"
            dotted = _dotted(node)
            if dotted:
                root, _, rest = dotted.partition(".")
                if root in aliases and is_banned(f"{aliases[root]}.{rest}", banned):
                    return f"uses banned name {aliases[root]}.{rest}"
        elif isinstance(node, ast.Name):
            if node.id in banned_builtins and node.id not in bound:
                return f"uses banned builtin {node.id}"
            if node.id == "__builtins__":
                return "uses __builtins__"
        elif isinstance(node, ast.Constant) and type(node.value) is str:
            if node.value in BANNED_ATTRIBUTES:
                return f"names attribute {node.value}"
    return None


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def all_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree`, breadth first, in `ast.walk`'s order (built once per check
    instead of walking the tree three times)."""
    out, i, node_type = [tree], 0, ast.AST
    while i < len(out):
        node = out[i]
        i += 1
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, node_type):
                out.append(value)
            elif type(value) is list:
                out.extend(item for item in value if isinstance(item, node_type))
    return out


def _bound_names(nodes: list[ast.AST]) -> set[str]:
    bound = set()
    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str):
        self.old = old

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        if node.name == self.old:
            node.name = "f"
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id == self.old:
            node.id = "f"
        return node
