"""The isolation layers one by one, each applied in a fresh interpreter (never a fork of the
test process, which may hold JAX's threads): `python tests/executor/test_layers.py CHECK ARGS`
runs one check and prints its JSON."""

import errno
import json
import os
import struct
import subprocess
import sys

import pytest

from azr_jax.executor import layers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(check: str, *args: str) -> object:
    got = subprocess.run(
        [sys.executable, os.path.abspath(__file__), check, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    assert got.returncode == 0, got.stderr[-2000:]
    return json.loads(got.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- checks (child side)
def _errno_of(call) -> int:
    try:
        call()
    except OSError as e:
        return e.errno
    return 0


def _raise_nofile() -> str:
    import resource

    try:  # anyone may raise a soft limit up to the hard one; under the filter no one may
        resource.setrlimit(resource.RLIMIT_NOFILE, (1000, 1000))
    except (ValueError, OSError):  # Python reports EPERM here as ValueError
        return "denied"
    return "raised"


def check_seccomp(filtered: str) -> dict:
    import ctypes
    import resource
    import socket

    me = os.getpid()
    resource.setrlimit(resource.RLIMIT_NOFILE, (500, 1000))  # to raise back below
    if filtered == "yes":
        program, offsets = layers.seccomp_template()
        prepared = layers.SeccompProgram(program, offsets)
        layers.apply_seccomp(prepared, me)
        assert all(prepared.program[o : o + 4] == struct.pack("<I", me) for o in offsets)
    libc = ctypes.CDLL(None, use_errno=True)
    fork_rc = libc.fork()  # glibc: clone3 (ENOSYS under the filter), then clone (EPERM)
    if fork_rc == 0:
        os._exit(0)
    if fork_rc > 0:
        os.waitpid(fork_rc, 0)
    return {
        "fork": ctypes.get_errno() if fork_rc < 0 else "forked",
        "socket": _errno_of(lambda: socket.socket().close()),
        "kill_parent": _errno_of(lambda: os.kill(os.getppid(), 0)),
        "kill_self": _errno_of(lambda: os.kill(me, 0)),
        "raise_limit": _raise_nofile(),
        "read": len(open("/proc/self/status").read()) > 0,
    }


def check_capabilities() -> dict:
    layers.drop_capabilities()
    status = open("/proc/self/status").read()
    return {
        line.split(":")[0]: int(line.split()[1], 16)
        for line in status.splitlines()
        if line.startswith(("CapEff", "CapPrm", "CapInh"))
    }


def check_landlock(scratch: str, outside: str) -> dict:
    abi = layers.landlock_abi()
    rules = layers.landlock_read_rules(
        ["/usr", "/usr/lib", "/nonexistent", "/lib", "/lib64", "/proc", "/etc", *sys.path]
    )
    layers.apply_landlock(abi, rules, scratch, True, abi >= 4, abi >= 6)
    with open(os.path.join(scratch, "ok.txt"), "w") as f:
        f.write("ok")
    return {
        "own": open(os.path.join(scratch, "ok.txt")).read(),
        "read_outside": _errno_of(lambda: open(os.path.join(outside, "secret")).read()),
        "write_outside": _errno_of(lambda: open(os.path.join(outside, "new"), "w").close()),
        "read_usr": len(os.listdir("/usr/lib")) > 0,
    }


# ----------------------------------------------------------------------------- tests
def test_seccomp_filter_denies_what_it_should_and_only_that():
    template = layers.seccomp_template()
    if template is None:
        pytest.skip("NOT RUN: libseccomp / pyseccomp unavailable on this machine")
    program, offsets = template
    assert len(program) % 8 == 0 and offsets
    placeholder = struct.pack("<I", layers._PID_PLACEHOLDER)
    assert all(program[o : o + 4] == placeholder for o in offsets)
    control = _run("check_seccomp", "no")  # the same process without the filter
    assert control["fork"] == "forked" and control["raise_limit"] == "raised", control
    assert control["kill_parent"] == 0 and control["socket"] == 0, control
    got = _run("check_seccomp", "yes")
    assert got == {
        "fork": errno.EPERM,
        "socket": errno.EPERM,
        "kill_parent": errno.EPERM,
        "kill_self": 0,
        "raise_limit": "denied",
        "read": True,
    }, got


def test_drop_capabilities_leaves_none():
    assert _run("check_capabilities") == {"CapInh": 0, "CapPrm": 0, "CapEff": 0}


def test_landlock_confines_files_to_scratch(tmp_path):
    if layers.landlock_abi() < 1:
        pytest.skip("NOT RUN: Landlock unavailable on this kernel")
    scratch, outside = tmp_path / "scratch", tmp_path / "outside"
    scratch.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("s")
    got = _run("check_landlock", str(scratch), str(outside))
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


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]](*sys.argv[2:])))
