"""The zygote: a small warm Python process that forks one sandboxed child per job.

Started by `pool.py` as `python -S -s -B -c BOOTSTRAP` with a stripped environment holding only
its PYTHONHASHSEED, so it never inherits the trainer's state (JAX, threads, GBs of memory) and
two zygotes hash differently. It imports only light stdlib modules and three files of this
package (`literals`, `layers`, `child`), enters its namespaces once, preloads what it is told,
freezes the GC (children copy fewer pages), probes the layers with one child, then serves.

Protocol (text only, never pickle): the parent writes one JSON object per line on stdin, a job
`{"i": id, "c": code, "a": args, ...}`; the zygote answers one JSON line per job on stdout,
`{"i": id, "s": status, "o": output_repr, "t": error_type, "m": message, "w": wall_ms}`. The
first line it writes is `{"ready": true, "layers": {...}, ...}`. EOF on stdin stops it.

Each child gets its own result pipe, a fresh scratch directory (removed when it ends) and a
wall-clock deadline after which the zygote SIGKILLs its process group. Up to `max_in_flight`
children run at once; results are read with a byte cap.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import time

from azr_jax.executor import child, layers


class _Running:
    """One child in flight."""

    __slots__ = (
        "job_id",
        "pid",
        "fd",
        "scratch",
        "deadline",
        "start",
        "data",
        "overflow",
        "eof",
        "status",
        "timed_out",
    )

    def __init__(self, job_id: int, pid: int, fd: int, scratch: str, deadline: float, start: float):
        self.job_id, self.pid, self.fd, self.scratch = job_id, pid, fd, scratch
        self.deadline, self.start = deadline, start
        self.data = bytearray()
        self.overflow = self.eof = self.timed_out = False
        self.status: int | None = None


class Context:
    """What a child needs to sandbox itself; built once by the zygote, inherited by fork."""

    def __init__(self, config: dict, zygote: Zygote):
        self.zygote_pid = os.getpid()
        self.timeout_s = float(config["timeout_s"])
        self.memory_mb = int(config["memory_mb"])
        self.file_mb = int(config["file_mb"])
        self.open_files = int(config["open_files"])
        self.max_output_chars = int(config["max_output_chars"])
        self.max_depth = int(config["max_depth"])
        self.banned_modules = frozenset(config["banned_modules"])
        self.banned_builtins = frozenset(config["banned_builtins"])
        # The interpreter's own files (stdlib, lib-dynload) and the shared-library dirs.
        self.read_paths = list(config["read_paths"]) + [p for p in sys.path if p]
        self.read_rules: list[bytes] = []
        self.program_builtins = child.program_builtins(self.banned_modules, self.banned_builtins)
        disabled = set(config["disable"])
        self.enabled = {name: name not in disabled for name in layers.LAYER_NAMES}
        self.landlock_abi = 0
        self.seccomp: layers.SeccompProgram | None = None
        self.devnull_fd = os.open("/dev/null", os.O_RDWR)
        self._zygote = zygote

    def scrub(self) -> None:
        """In a child: forget the zygote's jobs and buffers before the program runs."""
        self._zygote.scrub()
        self._zygote = None


class Zygote:
    """The serving loop: read jobs, fork children, enforce deadlines, write results."""

    def __init__(self, config: dict):
        self.config = config
        self.scratch_root = config["scratch_root"]
        self.max_in_flight = int(config["max_in_flight"])
        self.result_cap = 8 * int(config["max_output_chars"]) + 4096
        self.ctx = Context(config, self)
        self.running: dict[int, _Running] = {}
        self.by_fd: dict[int, _Running] = {}
        self.inbuf = b""  # raw job lines, consumed from `inpos` on
        self.inpos = 0
        self.pending: list[bytes] = []  # reads not yet joined onto `inbuf`
        self.outbuf: list[bytes] = []
        self.seq = 0
        self.poller = select.poll()

    def scrub(self) -> None:
        self.running.clear()
        self.by_fd.clear()
        self.inbuf = b""
        self.pending.clear()
        self.outbuf.clear()
        self.config = None
        self.poller = None

    # ------------------------------------------------------------------ start-up

    def start(self) -> dict:
        cfg = self.config
        enabled = self.ctx.enabled
        got = layers.enter_namespaces(
            self.scratch_root,
            enabled["net_namespace"],
            enabled["mount_namespace"],
            int(cfg["tmpfs_mb"]),
        )
        self.ctx.landlock_abi = layers.landlock_abi() if enabled["landlock_fs"] else 0
        if not enabled["landlock_fs"] and (enabled["landlock_net"] or enabled["landlock_scope"]):
            self.ctx.landlock_abi = layers.landlock_abi()
        if self.ctx.landlock_abi:
            self.ctx.read_rules = layers.landlock_read_rules(self.ctx.read_paths)
        if enabled["seccomp"] and cfg.get("seccomp_bpf"):
            self.ctx.seccomp = layers.SeccompProgram(
                bytes.fromhex(cfg["seccomp_bpf"]), cfg["seccomp_offsets"]
            )
        os.environ.clear()  # children inherit an empty environment
        # Imported once here so children find them loaded. Every module costs each fork a
        # little (more pages to map and to copy on write), so the list is the caller's choice.
        for name in cfg["preload"]:
            try:
                __import__(name)
            except ImportError:
                pass
        # Orphans of a child (only possible when seccomp is missing) come back to us.
        try:
            layers._check(layers._libc.prctl(36, 1, 0, 0, 0), "PR_SET_CHILD_SUBREAPER")
        except OSError:
            pass
        self.wakeup_r, wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(wakeup_w, False)
        signal.set_wakeup_fd(wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # Children inherit both dispositions: an over-size write fails with EFBIG instead of
        # killing the run, and a child never calls signal.signal (its first call in a fresh
        # fork costs ~0.1-0.2 ms here). The zygote itself writes no files.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        gc.collect()
        gc.freeze()
        probed = self._probe()
        report = {name: False for name in layers.LAYER_NAMES}
        report.update(
            wall_clock_kill=True,
            scratch_dir=True,
            clean_env=True,
            stdin_devnull=True,
            output_cap=True,
            runtime_bans=True,
        )
        report.update(got)
        for name in layers.OPTIONAL_LAYERS + ("rlimits",):
            if name in probed:
                report[name] = bool(probed[name]) and enabled[name]
        # From here on a child applies exactly the layers that probed fine.
        for name in layers.LAYER_NAMES:
            self.ctx.enabled[name] = report[name]
        return {
            "ready": True,
            "layers": report,
            "pid": os.getpid(),
            "landlock_abi": self.ctx.landlock_abi,
            "probe_error": probed.get("error"),
        }

    def _probe(self) -> dict:
        read_fd, write_fd = os.pipe()
        scratch = os.path.join(self.scratch_root, "probe")
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            child.probe(self.ctx, scratch, write_fd)
        os.close(write_fd)
        chunks = []
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
        os.close(read_fd)
        os.waitpid(pid, 0)
        _remove_tree(scratch)
        try:
            return json.loads(b"".join(chunks))
        except ValueError:
            return {"error": "the probe child reported nothing"}

    # ------------------------------------------------------------------ serving

    def serve(self) -> None:
        self.poller.register(0, select.POLLIN)
        self.poller.register(self.wakeup_r, select.POLLIN)
        while True:
            if not self._read_jobs_if_ready():
                break
            self._spawn_ready()
            self._flush()

    def _read_jobs_if_ready(self) -> bool:
        timeout_ms = None
        if self.running:
            nearest = min(r.deadline for r in self.running.values())
            timeout_ms = max(0, int((nearest - time.monotonic()) * 1000) + 1)
        for fd, _ in self.poller.poll(timeout_ms):
            if fd == 0:
                if not self._read_stdin():
                    return False
            elif fd == self.wakeup_r:
                try:
                    os.read(self.wakeup_r, 4096)
                except BlockingIOError:
                    pass
                self._reap()
            elif fd in self.by_fd:
                self._read_result(self.by_fd[fd])
        self._enforce_deadlines()
        self._finish_done()
        return True

    def _read_stdin(self) -> bool:
        data = os.read(0, 1 << 20)
        if not data:
            return False
        # Jobs stay raw bytes until their turn: a child then drops one buffer when it scrubs
        # (instead of freeing thousands of parsed objects, page by copied page), and the
        # zygote's heap stays small, so each fork copies fewer page tables.
        self.pending.append(data)
        return True

    def _next_job(self) -> dict | None:
        while True:
            end = self.inbuf.find(b"\n", self.inpos)
            if end < 0:
                if not self.pending:
                    return None
                self.inbuf = self.inbuf[self.inpos :] + b"".join(self.pending)
                self.inpos = 0
                self.pending.clear()
                continue
            line = self.inbuf[self.inpos : end]
            self.inpos = end + 1
            if line.strip():
                return json.loads(line)

    def _spawn_ready(self) -> None:
        while len(self.running) < self.max_in_flight:
            job = self._next_job()
            if job is None:
                return
            self.seq += 1
            scratch = os.path.join(self.scratch_root, str(self.seq))
            read_fd, write_fd = os.pipe()
            start = time.monotonic()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                child.run(job, self.ctx, scratch, write_fd)
            os.close(write_fd)
            os.set_blocking(read_fd, False)
            run = _Running(job["i"], pid, read_fd, scratch, start + self.ctx.timeout_s, start)
            self.running[pid] = run
            self.by_fd[read_fd] = run
            self.poller.register(read_fd, select.POLLIN)

    def _read_result(self, run: _Running) -> None:
        while not run.eof:
            try:
                chunk = os.read(run.fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                run.eof = True
            elif len(run.data) + len(chunk) > self.result_cap:
                run.overflow = True
                run.eof = True  # stop reading; the child gets EPIPE
            else:
                run.data += chunk
        self.poller.unregister(run.fd)
        del self.by_fd[run.fd]
        os.close(run.fd)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run = self.running.get(pid)
            if run is not None:
                run.status = status

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for run in self.running.values():
            if run.status is None and now >= run.deadline and not run.timed_out:
                run.timed_out = True
                _kill_group(run.pid)

    def _finish_done(self) -> None:
        done = [r for r in self.running.values() if r.status is not None]
        for run in done:
            if not run.eof:
                self._read_result(run)  # the child is gone: whatever it wrote is buffered
            if not run.eof:  # someone else holds the pipe open (a grandchild)
                self.poller.unregister(run.fd)
                del self.by_fd[run.fd]
                os.close(run.fd)
            _kill_group(run.pid)  # leftovers of a child when seccomp is missing
            del self.running[run.pid]
            _remove_tree(run.scratch)
            self.outbuf.append(self._result_line(run))

    def _result_line(self, run: _Running) -> bytes:
        result: dict[str, object] = {
            "i": run.job_id,
            "w": round((time.monotonic() - run.start) * 1e3, 2),
        }
        status = run.status
        if run.timed_out:
            result.update(s="timeout", t="Timeout", m=f"killed after {self.ctx.timeout_s:g} s")
        elif os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            name = _signal_name(sig)
            if sig == signal.SIGXCPU:
                result.update(s="timeout", t="CPUTimeLimit", m=name)
            else:
                result.update(s="killed", t="Signal", m=name)
        elif run.overflow:
            result.update(s="error", t="ResultTooLong", m="the result exceeded its cap")
        else:
            result.update(_parse_child_result(bytes(run.data), os.WEXITSTATUS(status)))
        return (json.dumps(result) + "\n").encode()

    def _flush(self) -> None:
        if self.outbuf:
            data = b"".join(self.outbuf)
            self.outbuf.clear()
            view = memoryview(data)
            while view:
                view = view[os.write(1, view) :]

    def shutdown(self) -> None:
        for run in self.running.values():
            _kill_group(run.pid)
        for run in list(self.running.values()):
            try:
                os.waitpid(run.pid, 0)
            except ChildProcessError:
                pass
            _remove_tree(run.scratch)


def _parse_child_result(data: bytes, exit_code: int) -> dict:
    """The child's JSON result, checked field by field (it may be forged or garbage)."""
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


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _remove_tree(path: str) -> None:
    try:
        os.rmdir(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    # The program may have made parts unreadable; give them back before removing.
    try:
        os.chmod(path, 0o700)
    except OSError:
        pass
    for root, dirs, _ in os.walk(path):
        for name in dirs:
            try:
                os.chmod(os.path.join(root, name), 0o700)
            except OSError:
                pass
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            _ignore(os.unlink, os.path.join(root, name))
        for name in dirs:
            full = os.path.join(root, name)
            _ignore(os.unlink if os.path.islink(full) else os.rmdir, full)
    _ignore(os.rmdir, path)


def _ignore(fn: object, path: str) -> None:
    try:
        fn(path)
    except OSError:
        pass


def main(config_json: str) -> None:
    """Entry point of the zygote process (see `pool.py` for how it is started)."""
    config = json.loads(config_json)
    layers.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != config["parent_pid"]:
        sys.exit(1)
    zygote = Zygote(config)
    ready = zygote.start()
    os.write(1, (json.dumps(ready) + "\n").encode())
    try:
        zygote.serve()
    finally:
        zygote.shutdown()
