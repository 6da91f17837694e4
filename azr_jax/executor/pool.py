"""The executor pool: warm zygotes (one per hash seed) and batched, concurrent job submission.

`ExecutorPool` starts `workers` zygote processes (`zygote.py`) through `subprocess`, each with
its own PYTHONHASHSEED and nothing else in its environment, BEFORE or independently of JAX:
they are fresh interpreters, not forks of the caller. `run_many` spreads jobs over them (a job
may pin a hash group, which is how validation runs a program twice under different seeds),
writes each zygote its whole batch at once, and reads the one-line JSON results back through
non-blocking pipes. Output reprs are parsed again here with `literals.parse_literal`.

A zygote that dies or stops answering is killed, restarted, and its unfinished jobs are
resubmitted once; a job that loses its zygote twice comes back as `killed`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from azr_jax.executor import layers as layers_lib
from azr_jax.executor.child import WIRE_ENCODING
from azr_jax.executor.literals import MAX_DEPTH, MAX_OUTPUT_CHARS, LiteralError, parse_literal
from azr_jax.executor.program import DEFAULT_BANNED, DEFAULT_BANNED_BUILTINS
from azr_jax.executor.zygote import result_cap

log = logging.getLogger("azr_jax.executor")

STATUSES = ("ok", "error", "timeout", "killed", "rejected")
# What programs most often import; `typing` is left out on purpose: it costs every run
# about 0.2 ms of page copying, while a program importing it pays a few ms itself.
DEFAULT_PRELOAD = (
    "bisect",
    "collections",
    "functools",
    "heapq",
    "itertools",
    "math",
    "operator",
    "re",
    "string",
)
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Shared-library dirs an extension module may need at import time (read-only).
_SYSTEM_LIB_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib")
_BOOTSTRAP = """
import sys, types
sys.path[:] = [p for p in sys.path if p]
root = sys.argv[1]
for name, path in (("azr_jax", root + "/azr_jax"), ("azr_jax.executor", root + "/azr_jax/executor")):
    module = types.ModuleType(name)
    module.__path__ = [path]
    sys.modules[name] = module
from azr_jax.executor import zygote
zygote.main(sys.argv[2])
"""


# Jobs taken from a lazy iterable per turn of the event loop (see `run_many`).
_FEED_PER_TURN = 16
_DONE = object()  # the end of a job iterable


@dataclass(frozen=True)
class Job:
    """One call `f(args)` of a program.

    Attributes:
      code: program source defining the entry function.
      args: the argument list as text, e.g. `"[1, 2], 'a'"`; evaluated in the program's
        namespace unless `literal_args`, when it must be literals (model answers).
      literal_args: parse `args` with the literal parser (no code) inside the child.
      expect: if set, the run reports `f(args) == expect` (CRUXEval's rule) as True/False.
      literal_expect: parse `expect` as a literal instead of evaluating it.
      entry: the function to call.
      hash_group: runs with different groups go to zygotes with different hash seeds.
      timeout_s: this run's wall-clock limit, when shorter than the pool's `timeout_s` (which
        stays the CPU limit and the cap); None: the pool's.
    """

    code: str
    args: str
    literal_args: bool = False
    expect: str | None = None
    literal_expect: bool = False
    entry: str = "f"
    hash_group: int | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class RunResult:
    """What came back from one run. `value` is `output_repr` parsed by the trusted parser."""

    status: str  # one of STATUSES
    output_repr: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    seconds: float = 0.0
    value: Any = field(default=None, compare=False, repr=False)


def job_bytes(job_id: int, job: Job) -> bytes:
    """One job as the zygote reads it: a header line with the fields' byte lengths, then the
    fields (code, arguments, expected value, entry name) back to back; see `zygote.py`."""
    code, args = job.code.encode(*WIRE_ENCODING), job.args.encode(*WIRE_ENCODING)
    expect = b"" if job.expect is None else job.expect.encode(*WIRE_ENCODING)
    entry = job.entry.encode(*WIRE_ENCODING)
    flags = ("l" if job.literal_args else "") + ("X" if job.literal_expect else "")
    if job.timeout_s is not None:  # last: `t` and the limit in whole milliseconds
        flags += f"t{max(1, round(job.timeout_s * 1000))}"
    header = b"%d %d %d %d %d %s\n" % (
        job_id,
        len(code),
        len(args),
        -1 if job.expect is None else len(expect),
        len(entry),
        (flags or "-").encode(),
    )
    return header + code + args + expect + entry


def decode_result(status: int, timed_out: bool, wall_us: int, data: bytes, pool: Any) -> dict:
    """One framed zygote answer as a result record (`s`, `o`, `t`, `m`, `w`).

    The zygote passes on its child's wait status and the raw bytes of its result pipe; they
    are checked here, field by field (a program can forge or garble them).
    """
    result: dict[str, Any] = {"w": wall_us / 1e3}
    if timed_out:
        result.update(s="timeout", t="Timeout", m=f"killed after {pool.timeout_s:g} s")
    elif status >= 0 and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = _signal_name(sig)
        if sig == signal.SIGXCPU:
            result.update(s="timeout", t="CPUTimeLimit", m=name)
        else:
            result.update(s="killed", t="Signal", m=name)
    elif len(data) > result_cap(pool.max_output_chars):
        result.update(s="error", t="ResultTooLong", m="the result exceeded its cap")
    else:
        code = os.WEXITSTATUS(status) if status >= 0 else -1
        result.update(_parse_child_result(data, code))
    return result


def _parse_child_result(data: bytes, exit_code: int) -> dict:
    try:
        got = json.loads(data) if data else None
    except ValueError:
        got = None
    if type(got) is not dict or got.get("s") not in ("ok", "error", "rejected"):
        return {"s": "error", "t": "NoResult", "m": f"exited with code {exit_code} and no result"}
    out = {"s": got["s"]}
    for key in ("o", "t", "m"):
        value = got.get(key)
        out[key] = value if type(value) is str else None
    if out["s"] == "ok" and out["o"] is None:
        return {"s": "error", "t": "NoResult", "m": "ok without an output"}
    return out


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


class _ZygoteHandle:
    """The parent's side of one zygote process."""

    def __init__(self, index: int, seed: int, argv: list[str], cwd: str):
        self.index = index
        self.seed = seed
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            # Symbols bound at start-up: otherwise each child resolves (and copies the GOT
            # pages of) every C function it calls first, ~1-2% of a run here.
            env={"PYTHONHASHSEED": str(seed), "LD_BIND_NOW": "1"},
            cwd=cwd,
            close_fds=True,
            start_new_session=True,  # a signal to our group does not reach it, nor the reverse
        )
        self.stdin_fd = self.proc.stdin.fileno()
        self.stdout_fd = self.proc.stdout.fileno()
        self.inbuf = b""
        self.outbuf = bytearray()
        self.outstanding: dict[int, int] = {}  # job id -> index in the current batch
        self.last_progress = time.monotonic()
        self.ready = self._read_ready()
        os.set_blocking(self.stdin_fd, False)
        os.set_blocking(self.stdout_fd, False)

    def _read_ready(self, timeout_s: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout_s
        sel = selectors.DefaultSelector()
        sel.register(self.stdout_fd, selectors.EVENT_READ)
        data = b""
        try:
            while b"\n" not in data:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise RuntimeError("executor zygote did not start in time")
                chunk = os.read(self.stdout_fd, 1 << 16)
                if not chunk:
                    raise RuntimeError(
                        f"executor zygote exited at start-up (code {self.proc.wait()}); "
                        "see its traceback on stderr"
                    )
                data += chunk
        finally:
            sel.close()
        line, _, self.inbuf = data.partition(b"\n")
        return json.loads(line)

    def kill(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()


class ExecutorPool:
    """Runs programs in sandboxed children forked from warm zygotes.

    Args:
      workers: zygote processes, each with its own hash seed (>= 2 for determinism checks).
      timeout_s: wall-clock limit of one run (SIGKILL from the zygote); CPU limit is near it.
      memory_mb: address-space limit of one run.
      banned_modules: modules a program may not import (checked statically by the callers in
        `validation.py`/`grading.py`, and at run time in the child).
      banned_builtins: builtins a program may not use.
      max_in_flight: children one zygote runs at once.
      max_output_chars: longest accepted output repr.
      disable_layers: optional layers to leave off (see `layers.OPTIONAL_LAYERS`), e.g. to
        simulate a normal user: `("net_namespace", "mount_namespace")`.
      file_mb, open_files: per-run file-size and open-file limits.
      tmpfs_mb: size of the scratch tmpfs when the mount namespace is available.
      hash_seeds: explicit PYTHONHASHSEED per zygote (distinct); random by default.
      preload: stdlib modules the zygotes import up front (children find them loaded; each
        one makes every fork a little dearer).
      python: interpreter for the zygotes.
    """

    def __init__(
        self,
        workers: int = 2,
        timeout_s: float = 10.0,
        memory_mb: int = 1024,
        banned_modules: Sequence[str] = DEFAULT_BANNED,
        banned_builtins: Sequence[str] = DEFAULT_BANNED_BUILTINS,
        *,
        max_in_flight: int = 4,
        max_output_chars: int = MAX_OUTPUT_CHARS,
        disable_layers: Sequence[str] = (),
        file_mb: int = 16,
        open_files: int = 64,
        tmpfs_mb: int = 256,
        hash_seeds: Sequence[int] | None = None,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        python: str = sys.executable,
    ):
        unknown = set(disable_layers) - set(layers_lib.OPTIONAL_LAYERS)
        if unknown:
            raise ValueError(
                f"unknown layers to disable: {sorted(unknown)}; "
                f"choose from {layers_lib.OPTIONAL_LAYERS}"
            )
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if hash_seeds is None:
            hash_seeds = []
            while len(hash_seeds) < workers:
                seed = 1 + secrets.randbelow(2**32 - 2)
                if seed not in hash_seeds:
                    hash_seeds.append(seed)
        if len(hash_seeds) != workers or len(set(hash_seeds)) != workers:
            raise ValueError("hash_seeds needs one distinct seed per worker")
        self.workers = workers
        self.timeout_s = float(timeout_s)
        self.banned_modules = tuple(banned_modules)
        self.banned_builtins = tuple(banned_builtins)
        self.max_output_chars = max_output_chars
        self._hash_seeds = list(hash_seeds)
        self._lock = threading.Lock()
        self._next_id = 0
        self._closed = False
        self._scratch_root = tempfile.mkdtemp(prefix="azr-exec-")
        template = layers_lib.seccomp_template() if "seccomp" not in disable_layers else None
        self._config = {
            "parent_pid": os.getpid(),
            "timeout_s": self.timeout_s,
            "memory_mb": int(memory_mb),
            "file_mb": int(file_mb),
            "open_files": int(open_files),
            "tmpfs_mb": int(tmpfs_mb),
            "max_in_flight": int(max_in_flight),
            "max_output_chars": int(max_output_chars),
            "max_depth": MAX_DEPTH,
            "banned_modules": list(self.banned_modules),
            "banned_builtins": list(self.banned_builtins),
            "disable": list(disable_layers),
            "read_paths": [p for p in _SYSTEM_LIB_DIRS if os.path.isdir(p)],
            "seccomp_bpf": template[0].hex() if template else None,
            "seccomp_offsets": template[1] if template else [],
            "preload": list(preload),
        }
        self._python = python
        self._zygotes: list[_ZygoteHandle] = []
        try:
            for i in range(workers):
                self._zygotes.append(self._start(i))
        except BaseException:
            self.close()
            raise
        self._layers = {
            name: all(z.ready["layers"].get(name, False) for z in self._zygotes)
            for name in layers_lib.LAYER_NAMES
        }
        missing = [name for name, on in self._layers.items() if not on]
        log.info(
            "executor: %d zygotes, layers active: %s; missing: %s",
            workers,
            ", ".join(n for n, on in self._layers.items() if on),
            ", ".join(missing) or "none",
        )

    # ------------------------------------------------------------------ lifecycle

    def _start(self, index: int) -> _ZygoteHandle:
        zygote_dir = os.path.join(self._scratch_root, f"z{index}")
        os.makedirs(zygote_dir, mode=0o700, exist_ok=True)
        config = dict(self._config, scratch_root=zygote_dir)
        argv = [self._python, "-S", "-s", "-B", "-c", _BOOTSTRAP, _PACKAGE_ROOT, json.dumps(config)]
        return _ZygoteHandle(index, self._hash_seeds[index], argv, zygote_dir)

    def _restart(self, index: int) -> None:
        old = self._zygotes[index]
        old.kill()
        log.warning("executor: zygote %d died or hung; restarting it", index)
        self._zygotes[index] = self._start(index)

    def close(self) -> None:
        """Stops the zygotes (their children are killed) and removes the scratch root."""
        if self._closed:
            return
        self._closed = True
        for z in self._zygotes:
            try:
                z.proc.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + 5.0
        for z in self._zygotes:
            try:
                z.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            z.kill()
        shutil.rmtree(self._scratch_root, ignore_errors=True)

    def __enter__(self) -> ExecutorPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def layers(self) -> dict[str, bool]:
        """Isolation layer name -> active in every zygote (probed at start-up)."""
        return dict(self._layers)

    @property
    def zygote_pids(self) -> list[int]:
        return [z.proc.pid for z in self._zygotes]

    @property
    def scratch_root(self) -> str:
        return self._scratch_root

    # ------------------------------------------------------------------ running

    def run(self, job: Job) -> RunResult:
        return self.run_many([job])[0]

    def run_many(self, jobs: Iterable[Job]) -> list[RunResult]:
        """Runs every job (concurrently across zygotes and children); results in job order.

        `jobs` may be a lazy iterable: it is consumed while earlier jobs already run, so a
        caller that prepares jobs as it goes (validation's static checks) overlaps that work
        with the zygotes' instead of leaving a core idle first.
        """
        if self._closed:
            raise RuntimeError("the executor pool is closed")
        with self._lock:
            return self._run_many(iter(jobs))

    def _run_many(self, jobs: Iterator[Job]) -> list[RunResult]:
        results: list[RunResult | None] = []
        for i, z in enumerate(self._zygotes):
            if z.proc.poll() is not None:
                self._restart(i)
        lines: list[bytes] = []  # job k's wire line, kept for a resubmission
        attempts: list[int] = []
        id_base = self._next_id + 1  # job k has id id_base + k
        rr = 0
        exhausted = False
        remaining = 0
        stall_limit = self.timeout_s + 15.0
        sel = selectors.DefaultSelector()
        try:
            while remaining or not exhausted:
                # A few jobs per turn: results are read while the caller still makes jobs.
                fed = 0
                while not exhausted and fed < _FEED_PER_TURN:
                    job = next(jobs, _DONE)
                    if job is _DONE:
                        exhausted = True
                        break
                    k = len(results)
                    self._next_id += 1
                    lines.append(job_bytes(self._next_id, job))
                    results.append(None)
                    attempts.append(0)
                    if job.hash_group is None:
                        z_index = rr % self.workers
                        rr += 1
                    else:
                        z_index = job.hash_group % self.workers
                    self._send(self._zygotes[z_index], id_base + k, k, lines[k])
                    remaining += 1
                    fed += 1
                if not remaining:
                    continue
                sel_map = self._register(sel)
                events = sel.select(timeout=0 if not exhausted else 0.5)
                for key, mask in events:
                    z = sel_map[key.fd]
                    if mask & selectors.EVENT_WRITE and key.fd == z.stdin_fd:
                        self._write_some(z)
                    if mask & selectors.EVENT_READ and key.fd == z.stdout_fd:
                        for record in self._read_lines(z):
                            k = z.outstanding.pop(record.get("i"), None)
                            if k is None or results[k] is not None:
                                continue
                            results[k] = self._to_result(record)
                            remaining -= 1
                now = time.monotonic()
                for i, z in enumerate(self._zygotes):
                    dead = z.proc.poll() is not None
                    stalled = z.outstanding and now - z.last_progress > stall_limit
                    if not (dead or stalled):
                        continue
                    lost = list(z.outstanding.values())
                    self._restart(i)
                    for k in lost:
                        attempts[k] += 1
                        if attempts[k] > 1:
                            results[k] = RunResult("killed", None, "ExecutorLost", "zygote died")
                            remaining -= 1
                        else:
                            self._send(self._zygotes[i], id_base + k, k, lines[k])
        finally:
            sel.close()
            # After an exception (the caller's job iterator raised, an interrupt), forget this
            # call's jobs: their results may still arrive and must never be taken for a later
            # call's (job ids only grow, and these are no longer awaited).
            for z in self._zygotes:
                z.outstanding.clear()
        return results  # type: ignore[return-value]

    def _send(self, z: _ZygoteHandle, job_id: int, k: int, line: bytes) -> None:
        if not z.outstanding:
            z.last_progress = time.monotonic()
        z.outstanding[job_id] = k
        z.outbuf += line

    def _register(self, sel: selectors.BaseSelector) -> dict[int, _ZygoteHandle]:
        fd_map = {}
        for key in list(sel.get_map().values()):
            sel.unregister(key.fileobj)
        for z in self._zygotes:
            if z.proc.stdout.closed:
                continue
            sel.register(z.stdout_fd, selectors.EVENT_READ)
            fd_map[z.stdout_fd] = z
            if z.outbuf:
                sel.register(z.stdin_fd, selectors.EVENT_WRITE)
                fd_map[z.stdin_fd] = z
        return fd_map

    def _write_some(self, z: _ZygoteHandle) -> None:
        try:
            written = os.write(z.stdin_fd, z.outbuf[: 1 << 16])
        except (BlockingIOError, BrokenPipeError):
            return
        del z.outbuf[:written]

    def _read_lines(self, z: _ZygoteHandle) -> list[dict]:
        """Complete framed answers read so far: a header line, then its result bytes."""
        try:
            chunk = os.read(z.stdout_fd, 1 << 20)
        except BlockingIOError:
            return []
        if not chunk:
            return []  # EOF: the liveness check restarts it
        z.last_progress = time.monotonic()
        buf = z.inbuf + chunk
        pos, records = 0, []
        while True:
            end = buf.find(b"\n", pos)
            if end < 0:
                break
            job_id, status, timed_out, wall_us, n = (int(x) for x in buf[pos:end].split())
            if len(buf) < end + 1 + n:
                break
            data = buf[end + 1 : end + 1 + n]
            pos = end + 1 + n
            record = decode_result(status, bool(timed_out), wall_us, data, self)
            record["i"] = job_id
            records.append(record)
        z.inbuf = buf[pos:]
        return records

    def _to_result(self, record: dict) -> RunResult:
        status = record.get("s")
        seconds = float(record.get("w", 0.0)) / 1e3
        if status not in STATUSES:
            return RunResult("error", None, "BadRecord", f"unknown status {status!r}", seconds)
        if status != "ok":
            return RunResult(status, None, record.get("t"), record.get("m"), seconds)
        try:
            value = parse_literal(record.get("o"), max_chars=self.max_output_chars)
        except LiteralError as e:
            return RunResult("rejected", None, "InvalidOutput", str(e), seconds)
        return RunResult("ok", repr(value), None, None, seconds, value)
