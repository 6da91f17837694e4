"""One run inside a freshly forked child: enter the sandbox, run the program, report.

The child is forked by the zygote and never returns: it applies the layers (`layers.py`), runs
`f(*args)` from the job, checks the output (`literals.output_repr`) and writes one small JSON
object to the result pipe (fd 3), then `os._exit`s (no atexit hooks, no stdio flush, no
`__del__` at shutdown). stdout and stderr go to /dev/null and are never read.

The program can of course forge that JSON itself: that is the same as returning the forged
value, which the parent re-parses with its own literal parser. Model answers never run here as
code when a literal is expected (`lit`), so an answer cannot forge its own grade.

Runtime bans: `builtins.__import__` is replaced by a guard that refuses banned modules for any
import not made by an authentic stdlib module namespace, and the program's own builtins lack
the banned builtins (`eval`, `open`, ...). This is a speed bump that catches dynamic imports;
the kernel layers are the boundary.

Stdlib only: this module runs inside the zygote.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import os
import signal
import sys

from azr_jax.executor import layers, literals

RESULT_FD = 3
_F_SETPIPE_SZ = 1031
# The job wire form's text encoding (`pool.job_bytes` writes it): surrogatepass, so text with
# lone surrogates travels unchanged and fails in its own run, not in the whole batch.
WIRE_ENCODING = ("utf-8", "surrogatepass")
PROGRAM_NAME = "program"
_MAX_MESSAGE = 300

_dumps = json.dumps
_real_import = builtins.__import__


class BannedModuleError(ImportError):
    """A banned module was imported at run time."""


class InvalidInput(ValueError):
    """A literal was required (a model's answer) and the text is not one."""


def run(job: tuple[bytes, bytes], ctx: object, scratch: str, result_fd: int) -> None:
    """Runs `job` (header, payload) in this (forked) process under `ctx`'s layers; exits."""
    try:
        _enter_sandbox(ctx, scratch, result_fd)
    except BaseException as e:  # fail closed: a promised layer is missing
        _report({"s": "error", "t": "SandboxError", "m": _message(e)})
    else:
        _report(_execute(decode_job(*job), ctx))
    os._exit(0)


def probe(ctx: object, scratch: str, result_fd: int) -> None:
    """Applies every available layer, reports which applied, exits (run once at start-up)."""
    got = {}
    try:
        _enter_sandbox(ctx, scratch, result_fd, probing=got)
    except BaseException as e:
        got["error"] = _message(e)
    _report(got)
    os._exit(0)


def _enter_sandbox(ctx: object, scratch: str, result_fd: int, probing: dict | None = None) -> None:
    # The result pipe first, so that any failure below is reported (fail closed, with a
    # reason). /dev/null may itself sit on fd 3: it is duplicated before fd 3 is replaced.
    os.dup2(ctx.devnull_fd, 0)
    os.dup2(ctx.devnull_fd, 1)
    os.dup2(ctx.devnull_fd, 2)
    if result_fd != RESULT_FD:
        os.dup2(result_fd, RESULT_FD)
    os.setsid()  # own process group: a kill of the group reaches only this run
    layers.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != ctx.zygote_pid:
        os._exit(1)
    # SIGXFSZ is ignored (set in the zygote, inherited): over-size writes fail with EFBIG.
    # The zygote's SIGCHLD handler stays: a child cannot fork, and it does nothing.
    signal.set_wakeup_fd(-1)
    os.mkdir(scratch, 0o700)
    os.chdir(scratch)
    # The zygote reads the pipe only once this process is gone, and the pipe is non-blocking:
    # make it hold any valid result (a flood stops at the pipe's size, an overflow).
    try:
        fcntl.fcntl(RESULT_FD, _F_SETPIPE_SZ, ctx.result_pipe_size)
    except OSError:
        pass  # the default 64 KiB: results beyond it come back as NoResult
    ctx.scrub()  # the zygote's queue of other jobs, its buffers
    enabled = ctx.enabled

    def step(name: str, fn: object, *args: object) -> bool:
        if not enabled.get(name, True):
            if probing is not None:
                probing[name] = False
            return False
        if probing is None:
            fn(*args)
            return True
        try:
            fn(*args)
            probing[name] = True
        except Exception:
            probing[name] = False
        return probing[name]

    cpu_s = int(ctx.timeout_s) + 1
    step("rlimits", layers.apply_rlimits, cpu_s, ctx.memory_mb, ctx.file_mb, ctx.open_files)
    # Always: root holds every capability, and a normal user who got the namespaces through
    # a user namespace holds them all inside it. Dropping none is a no-op that succeeds.
    step("drop_capabilities", layers.drop_capabilities)
    abi = ctx.landlock_abi
    fs = enabled["landlock_fs"] and abi >= 1
    net = enabled["landlock_net"] and abi >= 4
    scope = enabled["landlock_scope"] and abi >= 6
    if fs or net or scope:
        applied = step(
            "landlock", layers.apply_landlock, abi, ctx.read_rules, scratch, fs, net, scope
        )
        if probing is not None:
            probing.pop("landlock")
            probing.update(
                landlock_fs=applied and fs,
                landlock_net=applied and net,
                landlock_scope=applied and scope,
            )
    elif probing is not None:
        probing.update(landlock_fs=False, landlock_net=False, landlock_scope=False)
    if ctx.seccomp is not None:
        step("seccomp", layers.apply_seccomp, ctx.seccomp, os.getpid())
    elif probing is not None:
        probing["seccomp"] = False
    # Nothing of the zygote stays reachable: its pipes, other children's pipes, its rule fds.
    os.closerange(RESULT_FD + 1, 1 << 20)


def program_builtins(banned_modules: frozenset, banned_builtins: frozenset) -> dict:
    """The builtins a program sees (built once in the zygote; the import guard included)."""
    modules = sys.modules

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if not _authentic_module_namespace(globals, modules):
            full = name if level == 0 else "." + name
            for candidate in [full] + [f"{full}.{item}" for item in fromlist or ()]:
                if type(candidate) is str and _is_banned(candidate, banned_modules):
                    raise BannedModuleError(f"module {candidate} is banned")
        return _real_import(name, globals, locals, fromlist, level)

    allowed = {k: v for k, v in builtins.__dict__.items() if k not in banned_builtins}
    allowed["__import__"] = guarded_import
    return allowed


def decode_job(header: bytes, payload: bytes) -> dict:
    """A job from its wire form (see `zygote.py`): {"c", "a", "e", "lit", and "x", "xlit"}."""
    _, nc, na, nx, ne, flags = header.split()
    nc, na, nx, ne = int(nc), int(na), int(nx), int(ne)
    a_end = nc + na
    x_end = a_end + max(nx, 0)
    job = {
        "c": payload[:nc].decode(*WIRE_ENCODING),
        "a": payload[nc:a_end].decode(*WIRE_ENCODING),
        "e": payload[x_end : x_end + ne].decode(*WIRE_ENCODING),
        "lit": b"l" in flags,
    }
    if nx >= 0:
        job["x"] = payload[a_end:x_end].decode(*WIRE_ENCODING)
        job["xlit"] = b"X" in flags
    return job


def _execute(job: dict, ctx: object) -> dict:
    allowed = ctx.program_builtins
    builtins.__import__ = allowed["__import__"]
    namespace = {"__name__": PROGRAM_NAME, "__builtins__": allowed}
    try:
        exec(compile(job["c"], "<program>", "exec"), namespace)
        fn = namespace.get(job.get("e", "f"))
        if not callable(fn):
            return {"s": "error", "t": "NoFunction", "m": "the program defines no function f"}
        args, kwargs = _arguments(job["a"], job.get("lit", False), namespace)
        out = fn(*args, **kwargs)
        if "x" in job:  # CRUXEval-style rule: report whether f(args) == expected
            if job.get("xlit"):
                try:
                    expected = literals.parse_literal(job["x"])
                except literals.LiteralError as e:
                    raise InvalidInput(str(e)) from None
            else:
                expected = eval(compile(job["x"], "<expected>", "eval"), namespace)
            equal = out == expected
            out = equal if type(equal) is bool else bool(equal)
        # The parent parses the text again; the type check here is what makes it trustworthy.
        text = literals.output_repr(
            out, max_chars=ctx.max_output_chars, max_depth=ctx.max_depth, round_trip=False
        )
    except BannedModuleError as e:
        return {"s": "rejected", "t": "BannedModule", "m": _message(e)}
    except literals.LiteralError as e:
        return {"s": "rejected", "t": "InvalidOutput", "m": _message(e)}
    except BaseException as e:  # SystemExit, KeyboardInterrupt and friends are errors too
        return {"s": "error", "t": _type_name(e), "m": _message(e)}
    return {"s": "ok", "o": text}


def _arguments(text: str, literal: bool, namespace: dict) -> tuple[tuple, dict]:
    if literal:
        try:
            return literals.parse_call_args(text)
        except literals.LiteralError as e:
            raise InvalidInput(str(e)) from None

    def collect(*args: object, **kwargs: object) -> tuple[tuple, dict]:
        return args, kwargs

    namespace["__azr_args__"] = collect
    got = eval(compile(f"__azr_args__({text}\n)", "<input>", "eval"), namespace)
    if type(got) is not tuple or len(got) != 2:
        raise ValueError("the input is not an argument list")
    return got


def _authentic_module_namespace(globals_: object, modules: dict) -> bool:
    """True when the import comes from a real loaded module (not from the program)."""
    if type(globals_) is not dict:
        return False
    name = globals_.get("__name__")
    if type(name) is not str or name == PROGRAM_NAME:
        return False
    module = modules.get(name)
    return module is not None and getattr(module, "__dict__", None) is globals_


def _is_banned(dotted: str, banned: frozenset) -> bool:
    parts = dotted.split(".")
    return any(".".join(parts[: i + 1]) in banned for i in range(len(parts)))


def _type_name(e: BaseException) -> str:
    try:
        return literals._type_name(type(e))
    except Exception:
        return "Exception"


def _message(e: BaseException) -> str:
    try:
        text = str(e)
        if type(text) is not str:
            return ""
        return text[:_MAX_MESSAGE]
    except BaseException:
        return ""


def _report(result: dict) -> None:
    data = _dumps(result).encode()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(RESULT_FD, view) :]
        except OSError:
            return
