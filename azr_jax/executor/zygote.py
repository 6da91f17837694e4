"""The zygote: a small warm Python process that forks one sandboxed child per job.

Started by `pool.py` as `python -S -s -B -c BOOTSTRAP` with a stripped environment holding only
its PYTHONHASHSEED, so it never inherits the trainer's state (JAX, threads, GBs of memory) and
two zygotes hash differently. It imports only light stdlib modules and three files of this
package (`literals`, `layers`, `child`), enters its namespaces once, preloads what it is told,
freezes the GC (children copy fewer pages), probes the layers with one child, then serves.

Protocol (text only, never pickle): the parent writes each job as a header line
`ID NC NA NX NE FLAGS` (decimal id, the UTF-8 byte lengths of the code, the arguments, the
expected value (-1: none) and the entry name, flag letters or `-`; a last flag `tMS` is the
job's own wall-clock limit in milliseconds, capped by the pool's) followed by those four
fields' bytes, back to back (`pool.job_bytes`, `child.decode_job`); the zygote answers each job
with a header line `ID EXIT TIMED_OUT WALL_US NBYTES` and then the NBYTES bytes its child wrote
on the result pipe (at most the cap plus one; EXIT is the raw wait status, -1 if unknown). The
parent decodes and checks them (`pool.decode_result`): the zygote neither parses jobs nor
results. The first line it writes is `{"ready": true, "layers": {...}, ...}`. EOF on stdin
stops it.

Why so little work here: every page the zygote writes after a fork is copied (the children
share them), so the serving loop is kept to a few syscalls and small objects per job; the
child parses its own job (inside the sandbox) and the parent does the rest.

Each child gets its own result pipe (large enough for any valid result, non-blocking on the
child's side, read once the child is gone), a fresh scratch directory (removed when it ends)
and a wall-clock deadline after which the zygote SIGKILLs its process group. Up to
`max_in_flight` children run at once.
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

    __slots__ = ("job_id", "pid", "fd", "scratch", "deadline", "start", "timed_out")

    def __init__(self, job_id: bytes, pid: int, fd: int, scratch: str, start: float, end: float):
        self.job_id, self.pid, self.fd, self.scratch = job_id, pid, fd, scratch
        self.start, self.deadline = start, end
        self.timed_out = False


class Context:
    """What a child needs to sandbox itself; built once by the zygote, inherited by fork."""

    def __init__(self, config: dict, zygote: Zygote):
        self.zygote_pid = os.getpid()
        self.timeout_s = float(config["timeout_s"])
        self.memory_mb = int(config["memory_mb"])
        self.file_mb = int(config["file_mb"])
        self.open_files = int(config["open_files"])
        self.max_output_chars = int(config["max_output_chars"])
        self.result_pipe_size = 1 << (result_cap(self.max_output_chars) + 1).bit_length()
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
        self.read_limit = result_cap(int(config["max_output_chars"])) + 1
        self.ctx = Context(config, self)
        self.running: dict[int, _Running] = {}
        self.inbuf = b""  # raw job lines, consumed from `inpos` on
        self.inpos = 0
        self.pending: list[bytes] = []  # reads not yet joined onto `inbuf`
        self.outbuf: list[bytes] = []
        self.seq = 0
        self.scratch_prefix = os.path.join(self.scratch_root, "")
        self.poller = select.poll()

    def scrub(self) -> None:
        self.running.clear()
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
        poll = self.poller.poll
        self.poller.register(0, select.POLLIN)
        self.poller.register(self.wakeup_r, select.POLLIN)
        running = self.running
        while True:
            timeout_ms = None
            if running:
                nearest = min(r.deadline for r in running.values())
                timeout_ms = max(0, int((nearest - time.monotonic()) * 1000) + 1)
            for fd, _ in poll(timeout_ms):
                if fd == 0:
                    data = os.read(0, 1 << 20)
                    if not data:
                        return
                    # Jobs stay raw bytes until their turn: a child then drops one buffer
                    # when it scrubs, and the zygote's heap stays small.
                    self.pending.append(data)
                else:
                    try:
                        os.read(self.wakeup_r, 4096)
                    except BlockingIOError:
                        pass
            self._reap()
            if running:
                self._enforce_deadlines()
            self._spawn_ready()
            if self.outbuf:
                self._flush()

    def _next_job(self) -> tuple[bytes, bytes] | None:
        """The next job's (header, payload), or None until all of it has arrived."""
        while True:
            end = self.inbuf.find(b"\n", self.inpos)
            if end >= 0:
                header = self.inbuf[self.inpos : end]
                stop = end + 1 + sum(max(int(n), 0) for n in header.split()[1:5])
                if stop <= len(self.inbuf):
                    self.inpos = stop
                    return header, self.inbuf[end + 1 : stop]
            if not self.pending:
                return None
            self.inbuf = self.inbuf[self.inpos :] + b"".join(self.pending)
            self.inpos = 0
            self.pending.clear()

    def _spawn_ready(self) -> None:
        while len(self.running) < self.max_in_flight:
            job = self._next_job()
            if job is None:
                return
            self.seq += 1
            scratch = self.scratch_prefix + str(self.seq)
            read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            start = time.monotonic()
            pid = os.fork()
            if pid == 0:
                child.run(job, self.ctx, scratch, write_fd)
            os.close(write_fd)
            job_id, _, rest = job[0].partition(b" ")
            end = start + self.ctx.timeout_s
            own = rest.rpartition(b" ")[2].find(b"t")  # the flags field: a job's own limit?
            if own >= 0:
                ms = int(rest.rpartition(b" ")[2][own + 1 :])
                end = start + min(self.ctx.timeout_s, ms / 1000)
            self.running[pid] = _Running(job_id, pid, read_fd, scratch, start, end)

    def _reap(self) -> None:
        running = self.running
        while running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run = running.pop(pid, None)
            if run is not None:
                self._finish(run, status)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for run in self.running.values():
            if now >= run.deadline and not run.timed_out:
                run.timed_out = True
                _kill_group(run.pid)

    def _finish(self, run: _Running, status: int) -> None:
        # The child is gone; what it wrote sits in the pipe (a grandchild, possible only
        # without seccomp, may still hold it open: read what is there, do not wait).
        data = b""
        try:
            data = os.read(run.fd, self.read_limit)
        except BlockingIOError:
            pass
        os.close(run.fd)
        if not self.ctx.enabled["seccomp"]:
            _kill_group(run.pid, reaped=True)  # leftovers of a child that could fork
        _remove_tree(run.scratch)
        wall_us = int((time.monotonic() - run.start) * 1e6)
        self.outbuf.append(
            b"%s %d %d %d %d\n" % (run.job_id, status, run.timed_out, wall_us, len(data))
        )
        self.outbuf.append(data)

    def _flush(self) -> None:
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


def result_cap(max_output_chars: int) -> int:
    """Bytes a child may write on its result pipe: any valid result fits (8 bytes per output
    character covers the worst JSON escaping), one more byte is an overflow."""
    return 8 * max_output_chars + 4096


def _kill_group(pid: int, reaped: bool = False) -> None:
    """SIGKILLs the child's process group (and the child itself unless it has been reaped:
    a reaped pid may already belong to someone else; its group cannot, while it exists)."""
    for kill in (os.killpg,) if reaped else (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _remove_tree(path: str) -> None:
    """Removes a run's scratch directory, whatever the program left in it.

    A program may leave unreadable directories (so each real directory is made 0700 first)
    and symlinks to anywhere (so nothing is ever followed: a link is unlinked, never chmod-ed
    through; chmod goes through an O_NOFOLLOW descriptor). Iterative: deep trees are fine.
    """
    try:
        os.rmdir(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    stack, dirs = [path], []
    while stack:
        d = stack.pop()
        if not _own_directory(d):
            _ignore(os.unlink, d)  # not a directory (any more): a file or a link
            continue
        dirs.append(d)  # parents before their children
        try:
            with os.scandir(d) as entries:
                for entry in entries:
                    full = os.path.join(d, entry.name)
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(full)
                    else:
                        _ignore(os.unlink, full)
        except OSError:
            pass
    for d in reversed(dirs):
        _ignore(os.rmdir, d)


def _own_directory(path: str) -> bool:
    """chmod 0700 on `path` if it is a real directory (not a link to one); True if it is."""
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        # chmod through the descriptor's /proc entry: the inode opened, never a link target.
        os.chmod(f"/proc/self/fd/{fd}", 0o700)
    except OSError:
        pass
    finally:
        os.close(fd)
    return True


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
