"""Every hostile or faulty case of `executor_catalogue.py` gets its verdict, and leaves no trace.

After each case: the zygotes are the same processes and alive, none of them has a descendant
left, nothing appeared in the canary directory or at the other target paths, the listening TCP
and Unix sockets received no connection, and a benign program still gives the right answer.
"""

from __future__ import annotations

import os
import site
import socket
import tempfile

import pytest

from azr_jax.executor.grading import grade_abduction, grade_deduction, grade_induction
from azr_jax.executor.pool import ExecutorPool, Job
from azr_jax.executor.validation import validate_proposal
from tests.executor.catalogue import ANSWERS, BYPASS, PROGRAMS, AnswerCase, Case

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def env():
    canary = tempfile.mkdtemp(prefix="azr-canary-")
    os.chmod(canary, 0o755)  # a program must not get it changed (e.g. through the cleanup)
    with open(os.path.join(canary, "keep"), "w") as f:
        f.write("keep")
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.setblocking(False)
    unix_path = os.path.join(canary, "sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(unix_path)
    unix.listen(8)
    unix.setblocking(False)
    site_dir = (site.getsitepackages() or [tempfile.gettempdir()])[0]
    subs = {
        "CANARY": canary,
        "REPO": REPO,
        "SHM": "/dev/shm",
        "PORT": str(tcp.getsockname()[1]),
        "UNIX": unix_path,
        "SITE": site_dir,
    }
    targets = [
        os.path.join(REPO, "azr_pwned.py"),
        os.path.join(site_dir, "azr_pwned.pth"),
        "/dev/shm/azr_pwned",
    ]
    with ExecutorPool(workers=2, timeout_s=1.0, memory_mb=256, hash_seeds=(11, 22)) as pool:
        yield pool, subs, canary, targets, tcp, unix
    tcp.close()
    unix.close()


def _fill(text: str, subs: dict) -> str:
    for key, value in subs.items():
        text = text.replace(key, value)
    return text


def _descendants(pids: list[int]) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, frontier = [], set(pids)
    while frontier:
        children = {pid for pid, ppid in parents.items() if ppid in frontier}
        found.extend(children)
        frontier = children
    return found


def _check_no_trace(env) -> None:
    pool, subs, canary, targets, tcp, unix = env
    zygotes = pool.zygote_pids
    assert sorted(os.listdir(canary)) == ["keep", "sock"], os.listdir(canary)
    assert os.stat(canary).st_mode & 0o777 == 0o755
    with open(os.path.join(canary, "keep")) as f:
        assert f.read() == "keep"
    for path in targets:
        assert not os.path.exists(path), path
    for server in (tcp, unix):
        with pytest.raises(BlockingIOError):
            server.accept()
    assert _descendants(zygotes) == []
    benign = pool.run(Job("def f(a, b):\n    return sorted([b, a]) + [len('xy')]", "3, 1"))
    assert benign.status == "ok" and benign.output_repr == "[1, 3, 2]"
    assert pool.zygote_pids == zygotes  # no zygote died or was restarted
    assert all(os.path.exists(f"/proc/{pid}") for pid in zygotes)


def test_catalogue_is_large_and_covers_the_classes():
    assert len(PROGRAMS) + len(ANSWERS) >= 50
    classes = {c.cls for c in PROGRAMS}
    for needed in (
        "loops",
        "huge memory",
        "crashes",
        "forks",
        "threads",
        "subprocess",
        "signals",
        "writes",
        "reads",
        "deletes",
        "environment",
        "/proc secrets",
        "fd exhaustion",
        "network",
        "import tricks",
        "poisoning",
        "shadowing",
        "atexit",
        "__del__",
        "lying __eq__",
        "str subclasses",
        "outputs",
        "nondeterminism",
        "stdout floods",
        "fake markers",
        "daemons",
        "os._exit",
    ):
        assert needed in classes, needed


@pytest.mark.parametrize("case", PROGRAMS, ids=[c.name for c in PROGRAMS])
def test_program_case(case: Case, env):
    pool, subs = env[0], env[1]
    code = _fill(case.code, subs)
    if case.mode == "validate":
        verdict = validate_proposal(pool, code, [case.input])
    elif case.mode == "pair":
        code = BYPASS + code
        verdict = pool.run_many([Job(code, case.input, hash_group=g) for g in (0, 1)])
    else:
        code = BYPASS + code if case.bypass else code
        verdict = pool.run(Job(code, case.input))
    assert case.expect(verdict), verdict
    _check_no_trace(env)


@pytest.mark.parametrize("case", ANSWERS, ids=[c.name for c in ANSWERS])
def test_answer_case(case: AnswerCase, env):
    pool = env[0]
    if case.task == "deduction":
        got = grade_deduction(case.answer, case.gold_output)
    elif case.task == "abduction":
        got = grade_abduction(pool, case.code, case.answer, case.gold_output)
    else:
        pairs = [(inp, case.gold_output) for inp in case.gold_inputs]
        got = grade_induction(pool, case.answer, pairs)
    assert got is case.correct
    _check_no_trace(env)
