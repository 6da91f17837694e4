"""The isolation layers one by one, each applied in a forked child of the test process."""

import ctypes
import errno
import json
import os
import socket
import struct

import pytest

from azr_jax.executor import layers


def _in_child(fn) -> dict:
    """Runs fn() in a forked child; returns the JSON-able dict it returns."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        try:
            out = fn()
        except BaseException as e:
            out = {"error": f"{type(e).__name__}: {e}"}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def _errno_of(call) -> int:
    try:
        call()
    except OSError as e:
        return e.errno
    return 0


def _lower_nofile() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (500, 1000))


def _raise_nofile() -> str:
    import resource

    try:  # anyone may raise a soft limit up to the hard one; under the filter no one may
        resource.setrlimit(resource.RLIMIT_NOFILE, (1000, 1000))
    except (ValueError, OSError):  # Python reports EPERM here as ValueError
        return "denied"
    return "raised"


def test_seccomp_filter_denies_what_it_should_and_only_that():
    template = layers.seccomp_template()
    if template is None:
        pytest.skip("NOT RUN: libseccomp / pyseccomp unavailable on this machine")
    program, offsets = template
    assert len(program) % 8 == 0 and offsets
    placeholder = struct.pack("<I", layers._PID_PLACEHOLDER)
    assert all(program[o : o + 4] == placeholder for o in offsets)

    # The control: without the filter, the same child raises it.
    assert _in_child(lambda: [_lower_nofile(), _raise_nofile()][1]) == "raised"

    def child():
        prepared = layers.SeccompProgram(program, offsets)
        me = os.getpid()
        _lower_nofile()
        layers.apply_seccomp(prepared, me)
        assert all(prepared.program[o : o + 4] == struct.pack("<I", me) for o in offsets)
        libc = ctypes.CDLL(None, use_errno=True)
        fork_rc = libc.fork()  # glibc: clone3 (ENOSYS) then clone (EPERM)
        return {
            "fork": ctypes.get_errno() if fork_rc < 0 else "forked",
            "socket": _errno_of(lambda: socket.socket()),
            "kill_parent": _errno_of(lambda: os.kill(os.getppid(), 0)),
            "kill_self": _errno_of(lambda: os.kill(me, 0)),
            "raise_limit": _raise_nofile(),
            "read": len(open("/proc/self/status").read()) > 0,
        }

    got = _in_child(child)
    assert got == {
        "fork": errno.EPERM,
        "socket": errno.EPERM,
        "kill_parent": errno.EPERM,
        "kill_self": 0,
        "raise_limit": "denied",
        "read": True,
    }, got


def test_drop_capabilities_leaves_none():
    def child():
        layers.drop_capabilities()
        status = open("/proc/self/status").read()
        caps = {
            line.split(":")[0]: int(line.split()[1], 16)
            for line in status.splitlines()
            if line.startswith(("CapEff", "CapPrm", "CapInh"))
        }
        return caps

    assert _in_child(child) == {"CapInh": 0, "CapPrm": 0, "CapEff": 0}


def test_landlock_confines_files_to_scratch(tmp_path):
    abi = layers.landlock_abi()
    if abi < 1:
        pytest.skip("NOT RUN: Landlock unavailable on this kernel")
    scratch, outside = tmp_path / "scratch", tmp_path / "outside"
    scratch.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("s")
    rules = layers.landlock_read_rules(["/usr", "/usr/lib", "/nonexistent", "/lib", "/proc"])

    def child():
        layers.apply_landlock(abi, rules, str(scratch), True, abi >= 4, abi >= 6)
        (scratch / "ok.txt").write_text("ok")
        return {
            "own": (scratch / "ok.txt").read_text(),
            "read_outside": _errno_of(lambda: (outside / "secret").read_text()),
            "write_outside": _errno_of(lambda: (outside / "new").write_text("x")),
            "read_usr": os.path.isdir("/usr/lib") and len(os.listdir("/usr/lib")) > 0,
        }

    got = _in_child(child)
    assert got == {
        "own": "ok",
        "read_outside": errno.EACCES,
        "write_outside": errno.EACCES,
        "read_usr": True,
    }, got
    assert not (outside / "new").exists()


def test_read_rules_skip_missing_and_nested_paths():
    rules = layers.landlock_read_rules(["/usr/lib", "/usr", "/nonexistent", "/usr/lib/x86_64-q"])
    assert len(rules) == 1  # /usr covers /usr/lib; the missing paths are dropped
