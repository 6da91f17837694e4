"""The streaming step against the phase-by-phase step (the reference), with a scripted queue."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from azr_jax.executor.pool import ExecutorPool
from azr_jax.selfplay import step as selfplay
from azr_jax.selfplay import streaming
from azr_jax.selfplay.buffers import initial_buffers
from tests.selfplay.test_step import BANNED, GOOD, LOOPS, MALFORMED, Scripted, _answer, _settings


class ScriptedQueue(streaming.Queue):
    """The scripted policy's answers, finishing in a scrambled order, a few per step."""

    def __init__(self, policy: Scripted, seed: int):
        self.policy, self.rng = policy, np.random.default_rng(seed)
        self.waiting: list[tuple[str, int, int, str]] = []
        self.log: list[tuple[str, int]] = []

    def submit(self, text, n, phase, index, priority=0):
        self.waiting.append((phase, index, n, text))

    def busy(self):
        return bool(self.waiting)

    def step(self):
        k = min(len(self.waiting), int(self.rng.integers(1, 3)))
        picked = [self.waiting.pop(int(self.rng.integers(len(self.waiting)))) for _ in range(k)]
        out = []
        for phase, index, n, _ in picked:
            if phase == "propose":
                rows = self.policy.generate([None] * (index + 1), n, phase)[index]
            else:
                rows = self.policy.generate([None], n, phase)[0]
            self.log.append((phase, index))
            out.append(((phase, index), rows))
        return out


class StreamingScripted(Scripted):
    def __init__(self, *args, seed=0):
        super().__init__(*args)
        self.seed = seed
        self.queues: list[ScriptedQueue] = []

    def queue(self):
        self.queues.append(ScriptedQueue(self, self.seed))
        return self.queues[-1]


@pytest.fixture(scope="module")
def pool():
    with ExecutorPool(workers=2, timeout_s=1.0, memory_mb=256, hash_seeds=[11, 22]) as p:
        yield p


@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_equals_phase_by_phase(pool, seed):
    args = (
        [GOOD, BANNED, LOOPS, MALFORMED],
        _answer("'Hello world'"),  # the identity seed's output: correct
        [_answer("6"), _answer("5"), _answer("6"), "garbage"],
    )
    with ThreadPoolExecutor(1) as host:
        ref = selfplay.run_step(
            _settings(4), Scripted(*args), pool, initial_buffers(100, 0), 0, host
        )
        policy = StreamingScripted(*args, seed=seed)
        out = streaming.run_step_streaming(
            _settings(4), policy, pool, initial_buffers(100, 0), 0, host
        )
    assert [(e.group, e.reward, e.verdict, e.response) for e in out.episodes] == [
        (e.group, e.reward, e.verdict, e.response) for e in ref.episodes
    ]
    assert out.new_tasks == ref.new_tasks
    for k, v in ref.metrics.items():
        if not k.startswith("time/"):
            assert out.metrics[k] == v, k
    log = policy.queues[0].log
    # one queue for the whole step: the valid proposal's rollouts ran in it, after it
    assert len(policy.queues) == 1 and ("estimate", 0) in log
    assert log.index(("estimate", 0)) > log.index(("propose", 0))
    assert out.metrics["tokens/estimate"] == 4 * 2  # 4 rollouts of 2 scripted tokens
    assert 0 <= out.metrics["time/device_wait_s"] <= out.metrics["time/rollout_s"]
