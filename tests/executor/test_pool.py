"""The pool: results, layers probed and reported, degraded mode, zygote restart, no JAX."""

import json
import logging
import os
import signal
import subprocess
import sys

import pytest

from azr_jax.executor.layers import LAYER_NAMES, OPTIONAL_LAYERS
from azr_jax.executor.pool import ExecutorPool, Job, RunResult
from tests.executor.data import REPO

NORMAL_USER = ("net_namespace", "mount_namespace")  # unprivileged user namespaces blocked
BARE = OPTIONAL_LAYERS  # every optional layer off


@pytest.fixture(scope="module")
def pool():
    with ExecutorPool(workers=2, timeout_s=2.0, memory_mb=256) as p:
        yield p


def test_runs_and_statuses(pool):
    results = pool.run_many(
        [
            Job("def f(a, b=2):\n    return [a, b]", "1, b=3"),
            Job("def f(x):\n    return 1 / x", "0"),
            Job("def f(x):\n    return {x}", "'a'"),
            Job("def f(x):\n    return lambda: 1", "1"),
            Job("def f(x):\n    import random\n    return 1", "1"),
            Job("def f(s):\n    return s.upper()", "'abc'", literal_args=True),
            Job("def f(x):\n    return x", "__import__('os')", literal_args=True),
            Job("def f(x):\n    return x + 1", "1", expect="2"),
        ]
    )
    assert results[0] == RunResult("ok", "[1, 3]", seconds=results[0].seconds)
    assert results[1].status == "error" and results[1].error_type == "ZeroDivisionError"
    assert results[2].output_repr == "{'a'}"
    assert results[3].status == "rejected" and results[3].error_type == "InvalidOutput"
    assert results[4].status == "rejected" and results[4].error_type == "BannedModule"
    assert results[5].output_repr == "'ABC'"
    assert results[6].status == "error"  # a literal was required: nothing ran
    assert results[7].output_repr == "True"
    assert pool.run_many([]) == []


def test_timeout_and_kill(pool):
    results = pool.run_many(
        [
            Job("def f(x):\n    while True:\n        pass", "1"),
            Job("def f(x):\n    return x", "5"),
        ]
    )
    assert results[0].status == "timeout"
    assert results[1].output_repr == "5"


def test_a_job_may_set_a_shorter_limit(pool):
    loop = "def f(x):\n    while True:\n        pass"
    short, capped, ok = pool.run_many(
        [
            Job(loop, "1", timeout_s=0.25),
            Job(loop, "1", timeout_s=60.0),
            Job("def f(x):\n    return x", "5", timeout_s=0.5),
        ]
    )
    assert short.status == "timeout" and 0.2 < short.seconds < 1.5  # the pool's limit is 2 s
    assert capped.status == "timeout" and capped.seconds >= 1.9  # never above the pool's
    assert ok.output_repr == "5"


def test_layers_are_reported(pool):
    layers = pool.layers
    assert set(layers) == set(LAYER_NAMES)
    for always in (
        "wall_clock_kill",
        "rlimits",
        "scratch_dir",
        "clean_env",
        "stdin_devnull",
        "output_cap",
        "runtime_bans",
    ):
        assert layers[always], always
    # Set AZR_EXECUTOR_EXPECT_ALL_LAYERS=1 where every layer must be there (root, Landlock 6+).
    if os.environ.get("AZR_EXECUTOR_EXPECT_ALL_LAYERS") == "1":
        assert all(layers.values()), layers


def test_startup_log_names_missing_layers(caplog):
    with caplog.at_level(logging.INFO, logger="azr_jax.executor"):
        with ExecutorPool(workers=1, timeout_s=1.0, disable_layers=NORMAL_USER) as p:
            assert not p.layers["net_namespace"] and not p.layers["mount_namespace"]
            assert p.run(Job("def f(x):\n    return x * 2", "4")).output_repr == "8"
    assert "missing: net_namespace, mount_namespace" in caplog.text


_AS_NORMAL_USER = r"""
import errno, json, os, sys
if sys.argv[1] == "userns_blocked":  # as Ubuntu 24.04's AppArmor rule does
    import pyseccomp as sc
    block = sc.SyscallFilter(sc.ALLOW)
    block.add_rule(sc.ERRNO(errno.EPERM), "unshare")
    block.load()  # inherited by the zygotes
from azr_jax.executor.pool import ExecutorPool, Job
# No Python-level bans: what is tested is what the kernel layers hold.
with ExecutorPool(workers=2, timeout_s=2.0, memory_mb=256, banned_modules=(),
                  banned_builtins=()) as p:
    results = p.run_many([
        Job("def f(x):\n    return sorted(x)", "[3, 1, 2]"),
        Job("def f(x):\n    import socket\n    socket.create_connection(('127.0.0.1', 22))", "1"),
        Job("def f(x):\n    return open('/etc/hostname').read()", "1"),
        Job("def f(x):\n    open('out.txt', 'w').write('ok')\n    return 1", "1"),
        Job("def f(x):\n    open('/tmp/escaped', 'w')\n    return 1", "1"),
    ])
    print(json.dumps({
        "uid": os.geteuid(),
        "layers": p.layers,
        "probe_errors": [z.ready.get("probe_error") for z in p._zygotes],
        "results": [[r.status, r.output_repr, r.error_type] for r in results],
    }))
"""


@pytest.mark.parametrize("userns", ["userns_allowed", "userns_blocked"])
def test_a_real_normal_user_gets_a_working_sandbox(tmp_path, userns):
    """The TPU-VM case for real: the pool started by an unprivileged user (uid 65534), where
    unprivileged user namespaces are allowed (Ubuntu 22.04) and where they are not (24.04).

    Regression: in a user namespace without a uid map no file could be created, every run
    failed before it could report, and every program came back invalid.
    """
    import shutil

    import pyseccomp

    python = "/usr/bin/python3"
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.access(python, os.X_OK):
        pytest.skip("NOT RUN: needs root (to become uid 65534), setpriv and /usr/bin/python3")
    env = {
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        # the package and pyseccomp only: the executor side is stdlib otherwise
        "PYTHONPATH": f"{REPO}:{os.path.dirname(pyseccomp.__file__)}",
    }
    os.chmod(tmp_path, 0o777)
    got = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c"]
        + [_AS_NORMAL_USER, userns],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert got.returncode == 0, got.stderr[-3000:]
    report = json.loads(got.stdout.strip().splitlines()[-1])
    assert report["uid"] == 65534
    assert report["probe_errors"] == [None, None]
    layers = report["layers"]
    for name in ("rlimits", "drop_capabilities", "wall_clock_kill", "scratch_dir"):
        assert layers[name], name
    if userns == "userns_blocked":
        assert not layers["net_namespace"] and not layers["mount_namespace"]
    sorted_, socket_, read_, write_own, write_out = report["results"]
    assert sorted_ == ["ok", "[1, 2, 3]", None]
    assert socket_[0] == "error"  # no socket (seccomp) or no network (namespace)
    assert write_own == ["ok", "1", None]  # its own scratch directory is writable
    if layers["landlock_fs"]:
        assert read_[0] == "error" and write_out[0] == "error"
    assert not os.path.exists("/tmp/escaped")


@pytest.mark.parametrize("disabled", [NORMAL_USER, BARE], ids=["normal_user", "bare"])
def test_degraded_modes_still_run_and_contain(disabled):
    with ExecutorPool(workers=2, timeout_s=1.0, memory_mb=256, disable_layers=disabled) as p:
        assert all(not p.layers[name] for name in disabled)
        assert p.layers["rlimits"] and p.layers["wall_clock_kill"]
        results = p.run_many(
            [
                Job("def f(x):\n    return sorted(x)", "[3, 1, 2]"),
                Job("def f(x):\n    while True:\n        pass", "1"),
                Job("def f(x):\n    return len(bytearray(10**10))", "1"),
            ]
        )
        assert results[0].output_repr == "[1, 2, 3]"
        assert results[1].status == "timeout"
        assert results[2].error_type == "MemoryError"
        if "seccomp" in disabled:
            # Without seccomp a fork succeeds, but the child's group is killed at the end.
            code = (
                "OS = next(c for c in ().__class__.__base__.__subclasses__() if c.__name__ =="
                " '_wrap_close').__init__.__globals__\n"
                "def f(x):\n    if OS['fork']() == 0:\n        while True:\n            pass\n"
                "    return 1"
            )
            assert p.run(Job(code, "1")).output_repr == "1"
            assert p.run(Job("def f(x):\n    return x", "2")).output_repr == "2"


def test_unknown_layer_is_an_error():
    with pytest.raises(ValueError, match="unknown layers"):
        ExecutorPool(disable_layers=("landlock",))


def test_zygote_restarts_when_killed():
    with ExecutorPool(workers=2, timeout_s=1.0) as p:
        old = p.zygote_pids
        os.kill(old[0], signal.SIGKILL)
        results = p.run_many([Job("def f(x):\n    return x", str(i)) for i in range(6)])
        assert [r.output_repr for r in results] == [str(i) for i in range(6)]
        assert p.zygote_pids[0] != old[0] and p.zygote_pids[1] == old[1]


def test_close_removes_scratch_and_stops_zygotes():
    p = ExecutorPool(workers=2, timeout_s=1.0)
    pids, root = p.zygote_pids, p.scratch_root
    p.run(Job("def f(x):\n    open('f', 'w').write('x')\n    return 1", "1"))
    p.close()
    assert not os.path.exists(root)
    for pid in pids:
        assert (
            not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]
        )
    with pytest.raises(RuntimeError):
        p.run(Job("def f(x):\n    return x", "1"))


def test_importing_the_executor_does_not_import_jax():
    code = "import sys, azr_jax.executor, azr_jax.executor.__main__; print('jax' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_lone_surrogates_fail_their_own_run_only(pool):
    # JSON data sets can carry lone surrogates; they must not break the whole batch.
    got = pool.run_many(
        [
            Job("def f(x):\n    return x  # \ud800", "1"),
            Job("def f(x):\n    return 1", "'\udfff'"),
            Job("def f(x):\n    return x + 1", "1"),
        ]
    )
    assert [r.status for r in got] == ["error", "error", "ok"]
    assert got[0].error_type == got[1].error_type == "UnicodeEncodeError"
    assert got[2].value == 2


def test_odd_text_runs_through_the_pool(pool):
    code = "def g(s):\n    return s + '\U0001f600'  # \u00e9\n"
    (r,) = pool.run_many([Job(code, "'a\\n\\x00'", entry="g")])
    assert r.status == "ok" and r.value == "a\n\x00\U0001f600"


def test_a_failing_job_iterator_leaves_the_pool_consistent(pool):
    def jobs():
        for i in range(20):
            yield Job("def f(x):\n    return x * 3", str(i))
        raise RuntimeError("the caller's checks failed")

    with pytest.raises(RuntimeError, match="checks failed"):
        pool.run_many(jobs())
    # The aborted call's late results are never taken for this call's.
    got = pool.run_many([Job("def f(x):\n    return -x", str(i)) for i in range(30)])
    assert [r.value for r in got] == [-i for i in range(30)]
