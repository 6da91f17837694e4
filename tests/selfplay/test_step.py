"""One self-play step with a scripted policy: verdicts, rewards, new tasks and the host split."""

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from azr_jax.executor.pool import ExecutorPool
from azr_jax.executor.program import DEFAULT_BANNED
from azr_jax.executor.validation import Proposal, validate_many
from azr_jax.selfplay import step as selfplay
from azr_jax.selfplay.buffers import initial_buffers
from azr_jax.selfplay.tasks import Role, TaskType, Triplet, group_id

GOOD = "ok </think>\n<answer>\n```python\ndef g(x):\n    return x * 2\n```\n```input\n3\n```\n</answer>"
BANNED = "ok </think>\n<answer>\n```python\nimport os\ndef f(x):\n    return x\n```\n```input\n3\n```\n</answer>"
LOOPS = "ok </think>\n<answer>\n```python\ndef f(x):\n    while True:\n        pass\n```\n```input\n3\n```\n</answer>"
MALFORMED = "no closing tags at all"


class Scripted(selfplay.Policy):
    """Proposals in a fixed order; solver answers chosen per phase."""

    def __init__(self, proposals, solve_answer, estimate_answers):
        self.proposals, self.solve_answer, self.estimate_answers = (
            proposals,
            solve_answer,
            estimate_answers,
        )
        self.calls = []

    def generate(self, texts, n, phase):
        self.calls.append((phase, len(texts), n))
        ids = np.array([1, 2], np.int32)
        lp = np.zeros(2, np.float32)
        if phase == "propose":
            return [[(ids, ids, lp, self.proposals[i])] for i in range(len(texts))]
        if phase == "solve":
            return [[(ids, ids, lp, self.solve_answer)] for _ in texts]
        return [[(ids, ids, lp, a) for a in self.estimate_answers[:n]] for _ in texts]


def _answer(text: str) -> str:
    return f"hmm </think>\n<answer>{text}</answer>"


@pytest.fixture(scope="module")
def pool():
    with ExecutorPool(workers=2, timeout_s=1.0, memory_mb=256, hash_seeds=[11, 22]) as p:
        yield p


def _settings(batch):
    return selfplay.SelfPlaySettings(
        task_types=(TaskType.DEDUCTION,),
        batch_size=batch,
        n_rollouts=4,
        num_references=2,
        num_inputs=10,
        max_recent=64,
        extreme_reward=0.0,
        token_weighted=False,
        banned_modules=DEFAULT_BANNED,
    )


def test_step_rewards_and_new_tasks(pool):
    buffers = initial_buffers(100, seed=0)
    policy = Scripted(
        [GOOD, BANNED, LOOPS, MALFORMED],
        solve_answer=_answer("'Hello world'"),  # the identity seed's output: correct
        estimate_answers=[_answer("6"), _answer("5"), _answer("6"), "garbage"],
    )
    with ThreadPoolExecutor(1) as host:
        result = selfplay.run_step(_settings(4), policy, pool, buffers, 0, host)
    prop = [e for e in result.episodes if e.group == group_id(TaskType.DEDUCTION, Role.PROPOSER)]
    solve = [e for e in result.episodes if e.group == group_id(TaskType.DEDUCTION, Role.SOLVER)]
    # valid (solve rate 2/4 -> 1 - 0.5), banned import, timeout, malformed
    assert [e.reward for e in prop] == [0.5, -1.0, -1.0, -1.0]
    assert (
        "invalid" in prop[1].verdict
        and "invalid" in prop[2].verdict
        and "format" in prop[3].verdict
    )
    assert [e.reward for e in solve] == [1.0] * 4
    (task,) = result.new_tasks[TaskType.DEDUCTION]
    assert task == Triplet("def f(x):\n    return x * 2", "3", "6")  # renamed to f, output run
    assert result.metrics["code_o/propose/valid_rate"] == 0.25
    assert result.metrics["code_o/solve/accuracy"] == 1.0
    assert [c[0] for c in policy.calls] == ["propose", "solve", "estimate"]
    adv = selfplay.advantages(_settings(4), result.episodes)
    assert adv[:4].argmax() == 0 and np.allclose(adv[4:], 0.0)  # solver group has no spread


def test_host_share_splits_and_gathers_in_order(pool):
    """Two 'hosts' simulated in one process: each checks half, gather restores the order."""
    seen = []

    def mine(n):
        half = list(range(n))[: (n + 1) // 2]
        seen.append(n)
        return half

    def gather(local):  # the other host's half, computed the same way here
        return local + local_other.pop(0)

    buffers = initial_buffers(100, seed=0)
    policy = Scripted([GOOD, GOOD], _answer("'Hello world'"), [_answer("6")] * 4)
    # Pre-compute what the "other host" would return for each gather: validations and grades.
    v = validate_many(pool, [Proposal("def g(x):\n    return x * 2", ["3"])])[0]
    # gathers come in program order: validations, estimate grades (2 x 4), solve grades
    local_other = [
        [dataclasses.asdict(v)],
        [[True, True, "correct"]] * 4,
        [[True, True, "correct"]],
    ]
    with ThreadPoolExecutor(1) as host:
        result = selfplay.run_step(
            _settings(2),
            policy,
            pool,
            buffers,
            0,
            host,
            selfplay.HostShare(mine=mine, gather=gather),
        )
    assert seen == [2, 2, 8]
    prop = [e for e in result.episodes if e.group == group_id(TaskType.DEDUCTION, Role.PROPOSER)]
    assert [e.reward for e in prop] == [0.0, 0.0]  # both always solved: extreme value 0
    assert len(result.new_tasks[TaskType.DEDUCTION]) == 2
