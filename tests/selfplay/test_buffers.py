"""Tests for azr_jax.selfplay.buffers: seeds, de-duplication, cap, sampling, seeding phase, state."""

import json

import numpy as np
import pytest

from azr_jax.selfplay import buffers
from azr_jax.selfplay.buffers import SEED_STEP, TaskBuffer
from azr_jax.selfplay.tasks import (
    InductionTask,
    TaskType,
    Triplet,
    seed_induction_task,
    seed_triplet,
)

D = TaskType.DEDUCTION


def trip(i: int) -> Triplet:
    return Triplet(f"def f(x):\n    return x + {i}", str(i), str(2 * i))


def test_initial_buffers_hold_the_identity_seeds():
    bufs = buffers.initial_buffers(seed=3)
    assert set(bufs) == set(TaskType)
    assert bufs[TaskType.DEDUCTION].tasks == (seed_triplet(),)
    assert bufs[TaskType.ABDUCTION].tasks == (seed_triplet(),)
    assert bufs[TaskType.INDUCTION].tasks == (seed_induction_task(),)
    # Independent generators: the two triplet buffers draw differently.
    a = bufs[TaskType.DEDUCTION].rng.integers(1 << 30, size=4)
    b = bufs[TaskType.ABDUCTION].rng.integers(1 << 30, size=4)
    assert not np.array_equal(a, b)


def test_add_deduplicates_on_program_and_input():
    buf = TaskBuffer(D)
    assert buf.add(trip(1), step=0)
    assert not buf.add(Triplet(trip(1).program, trip(1).input, "different"), step=1)
    assert buf.add(Triplet(trip(1).program, "99", "101"), step=1)
    assert len(buf) == 2
    assert buf.extend([trip(1), trip(2), trip(3), trip(2)], step=2) == 2
    assert len(buf) == 4


def test_add_checks_the_task_kind():
    with pytest.raises(TypeError, match="InductionTask"):
        TaskBuffer(TaskType.INDUCTION).add(trip(0), 0)
    with pytest.raises(TypeError, match="Triplet"):
        TaskBuffer(TaskType.ABDUCTION).add(seed_induction_task(), 0)
    with pytest.raises(ValueError, match="capacity"):
        TaskBuffer(D, capacity=0)


def test_cap_drops_the_oldest():
    buf = TaskBuffer(D, capacity=3)
    buf.extend([trip(i) for i in range(5)], step=0)
    assert buf.tasks == (trip(2), trip(3), trip(4))
    # A dropped task is no longer a duplicate.
    assert buf.add(trip(0), step=1)
    assert buf.tasks == (trip(3), trip(4), trip(0))
    assert buffers.DEFAULT_CAPACITY == 16_384 and TaskBuffer(D).capacity == 16_384


def test_sample_references_without_replacement():
    buf = TaskBuffer(D, seed=0)
    buf.extend([trip(i) for i in range(20)], step=0)
    for _ in range(20):
        refs = buf.sample_references(6)
        assert len(refs) == 6 and len(set(refs)) == 6
    small = TaskBuffer(D)
    small.extend([trip(i) for i in range(3)], step=0)
    assert sorted(small.sample_references(6), key=lambda t: t.input) == [trip(i) for i in range(3)]
    assert TaskBuffer(D).sample_references(6) == []


def test_references_cover_the_buffer_uniformly():
    buf = TaskBuffer(D, seed=1)
    buf.extend([trip(i) for i in range(10)], step=0)
    counts = {t: 0 for t in buf.tasks}
    for _ in range(500):
        for t in buf.sample_references(2):
            counts[t] += 1
    assert min(counts.values()) > 60 and max(counts.values()) < 140  # 100 expected each.


def test_solve_batch_prefers_newest_then_fills_uniformly():
    buf = TaskBuffer(D, seed=0)
    buf.extend([trip(i) for i in range(100)], step=0)
    buf.extend([trip(1000 + i) for i in range(5)], step=1)
    batch = buf.sample_solve_batch(8, step=1)
    assert batch[:5] == [trip(1000 + i) for i in range(5)]
    assert len(batch) == 8 and len(set(batch[5:])) == 3
    # More recent tasks than max_recent: the newest ones are taken.
    buf.extend([trip(2000 + i) for i in range(10)], step=2)
    batch = buf.sample_solve_batch(6, step=2, max_recent=4)
    assert batch[:4] == [trip(2006 + i) for i in range(4)]
    assert len(batch) == 6
    # Batch smaller than the recent set: only recent tasks, newest.
    assert buf.sample_solve_batch(3, step=2) == [trip(2007), trip(2008), trip(2009)]
    # A step with no new tasks: all uniform fill.
    assert len(buf.sample_solve_batch(4, step=7)) == 4
    assert buf.sample_solve_batch(0, step=2) == []


def test_solve_batch_from_a_tiny_buffer_repeats_tasks():
    buf = buffers.initial_buffers()[D]
    batch = buf.sample_solve_batch(64, step=0)
    assert batch == [seed_triplet()] * 64
    with pytest.raises(ValueError, match="empty"):
        TaskBuffer(D).sample_solve_batch(1, step=0)


def test_same_seed_same_samples_different_seed_different():
    def run(seed):
        buf = TaskBuffer(D, seed=seed)
        buf.extend([trip(i) for i in range(50)], step=0)
        return [buf.sample_references(6) for _ in range(3)] + [buf.sample_solve_batch(16, 1)]

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_seeding_phase_fills_to_target_and_stops():
    buf = buffers.initial_buffers()[D]
    assert buf.seeding_deficit(5) == 4
    added = buf.add_until([trip(1), trip(1), trip(2)], target_size=5)
    assert added == 2 and buf.seeding_deficit(5) == 2
    added = buf.add_until((trip(i) for i in range(10, 20)), target_size=5)
    assert added == 2 and len(buf) == 5 and buf.seeding_deficit(5) == 0
    assert buf.add_until([trip(99)], target_size=5) == 0
    # Seeding-phase tasks are tagged before training, so step 0 sees none of them as recent.
    assert all(s == SEED_STEP for s in buf.to_state()["steps"])
    assert TaskBuffer(D, capacity=3).seeding_deficit(256) == 3


def make_task(task_type: TaskType, i: int):
    if task_type is TaskType.INDUCTION:
        return InductionTask(f"def f(x):\n    return x - {i}", (str(i), "0"), ("0", "1"), "m", 1)
    return trip(i)


def _script(buf: TaskBuffer, step0: int) -> list:
    """A few steps of typical use; returns everything sampled."""
    out = []
    for step in range(step0, step0 + 3):
        out.append(buf.sample_references(6))
        buf.extend([make_task(buf.task_type, 100 * step + i) for i in range(4)], step=step)
        out.append(buf.sample_solve_batch(8, step=step, max_recent=2))
    return out


@pytest.mark.parametrize("task_type", list(TaskType))
def test_state_round_trip_continues_identically(task_type):
    buf = buffers.initial_buffers(capacity=10, seed=5)[task_type]
    buf.extend([make_task(task_type, i) for i in range(6)], step=0)
    _script(buf, 1)
    state = json.loads(json.dumps(buf.to_state()))  # Must be plain JSON.
    restored = TaskBuffer.from_state(state)
    assert restored.tasks == buf.tasks and restored.capacity == 10
    assert restored.task_type is task_type
    after_restore = _script(restored, 4)
    assert after_restore == _script(buf, 4)
    assert restored.to_state() == buf.to_state()
    # The generator state matters: a fresh generator would have drawn differently.
    state["rng"] = TaskBuffer(task_type, seed=123).rng.bit_generator.state
    assert _script(TaskBuffer.from_state(state), 4) != after_restore


def test_from_state_rejects_corrupt_state():
    state = buffers.initial_buffers()[D].to_state()
    state["tasks"].append(state["tasks"][0])
    state["steps"].append(0)
    with pytest.raises(ValueError, match="duplicate"):
        TaskBuffer.from_state(state)
    state["steps"].append(0)
    with pytest.raises(ValueError, match="step tags"):
        TaskBuffer.from_state(state)


def test_sample_induction_programs():
    bufs = buffers.initial_buffers(seed=0)
    bufs[D].extend([trip(i) for i in range(3)], step=0)
    sources = [bufs[D], bufs[TaskType.ABDUCTION]]
    rng = bufs[TaskType.INDUCTION].rng
    pool = {t.program for s in sources for t in s.tasks}
    got = buffers.sample_induction_programs(sources, 5, rng)
    assert len(got) == 5 and set(got) <= pool
    # Without replacement when possible: 5 draws from 5 entries hit each entry once.
    assert sorted(got) == sorted(t.program for s in sources for t in s.tasks)
    assert len(buffers.sample_induction_programs(sources, 20, rng)) == 20
    with pytest.raises(ValueError, match="empty"):
        buffers.sample_induction_programs([TaskBuffer(D)], 1, rng)
