"""The zygote's framing and bookkeeping, without forking (the pool tests run it for real)."""

import os
import random

import pytest

from azr_jax.executor.child import decode_job
from azr_jax.executor.pool import Job, decode_result, job_bytes
from azr_jax.executor.zygote import Zygote, _remove_tree, result_cap


class _PoolSettings:
    timeout_s = 2.0
    max_output_chars = 100


def _zygote(tmp_path) -> Zygote:
    config = {
        "scratch_root": str(tmp_path),
        "max_in_flight": 4,
        "max_output_chars": 100,
        "timeout_s": 2.0,
        "memory_mb": 256,
        "file_mb": 1,
        "open_files": 16,
        "max_depth": 10,
        "banned_modules": [],
        "banned_builtins": [],
        "read_paths": [],
        "disable": [],
    }
    return Zygote(config)


JOBS = [
    Job("def f(x):\n    return x", "1"),
    Job("def f(x):\n    return '\n'  # é\U0001f600", "'\\n'", literal_args=True),
    Job("def g(s):\n    return s", "2", expect="", literal_expect=True, entry="g"),
    Job("x" * 5000, "[" + "1, " * 2000 + "]", expect="None"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jobs_arrive_whole_whatever_the_read_sizes(tmp_path, seed):
    """Jobs come off stdin in reads of any size; each is handed out once it is complete."""
    z = _zygote(tmp_path)
    wire = b"".join(job_bytes(100 + i, job) for i, job in enumerate(JOBS))
    rng = random.Random(seed)
    got, pos = [], 0
    assert z._next_job() is None
    while pos < len(wire):
        step = rng.randint(1, 700)
        z.pending.append(wire[pos : pos + step])  # what _read_stdin does with each read
        pos += step
        while (job := z._next_job()) is not None:
            got.append(job)
    assert z._next_job() is None
    assert [header.split()[0] for header, _ in got] == [b"100", b"101", b"102", b"103"]
    for (header, payload), job in zip(got, JOBS, strict=True):
        decoded = decode_job(header, payload)
        assert (decoded["c"], decoded["a"], decoded["e"]) == (job.code, job.args, job.entry)
        assert decoded.get("x") == job.expect


def test_results_are_decoded_and_checked_by_the_parent():
    pool = _PoolSettings()
    ok = decode_result(0, False, 1500, b'{"s": "ok", "o": "[1]"}', pool)
    assert ok == {"w": 1.5, "s": "ok", "o": "[1]", "t": None, "m": None}
    assert decode_result(0, True, 0, b"", pool)["s"] == "timeout"
    assert decode_result(9, False, 0, b"", pool) == {  # raw wait status 9: SIGKILL
        "w": 0.0,
        "s": "killed",
        "t": "Signal",
        "m": "SIGKILL",
    }
    assert decode_result(24, False, 0, b"", pool)["t"] == "CPUTimeLimit"  # SIGXCPU
    flood = b"x" * (result_cap(pool.max_output_chars) + 1)
    assert decode_result(0, False, 0, flood, pool)["t"] == "ResultTooLong"
    for forged in (b'{"s": "ok"}', b'{"s": "great", "o": "1"}', b"\xff\xfe", b"[1]"):
        assert decode_result(0, False, 0, forged, pool)["t"] == "NoResult"
    typed = decode_result(0, False, 0, b'{"s": "error", "t": 3, "m": ["x"]}', pool)
    assert typed["s"] == "error" and typed["t"] is None and typed["m"] is None


def test_remove_tree_removes_what_a_program_made_unreadable(tmp_path):
    root = tmp_path / "scratch"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("x")
    deep = root / "deep"
    deep.mkdir()
    for _ in range(1200):  # deeper than Python's recursion limit
        deep = deep / "d"
        deep.mkdir()
    os.chmod(root / "a" / "b", 0)
    os.chmod(root / "a", 0o100)
    _remove_tree(str(root))
    assert not root.exists()


def test_remove_tree_never_follows_a_link_out_of_scratch(tmp_path):
    """Regression: the cleanup chmod-ed the TARGET of a directory symlink to 0700 (as root,
    any directory on the host): a program could lock the host out of its own files."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "keep.txt").write_text("mine")
    os.chmod(outside, 0o755)
    os.chmod(outside / "sub", 0o751)
    root = tmp_path / "scratch"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f.txt").write_text("x")
    os.symlink(outside, root / "link")
    os.symlink(outside / "sub", root / "a" / "link2")
    os.symlink(outside / "keep.txt", root / "filelink")
    _remove_tree(str(root))
    assert not root.exists()
    assert (outside / "keep.txt").read_text() == "mine"
    assert (outside.stat().st_mode & 0o777, (outside / "sub").stat().st_mode & 0o777) == (
        0o755,
        0o751,
    )
