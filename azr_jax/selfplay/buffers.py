"""Task buffers: the self-play curriculum, one per task type, checkpointed with the weights.

A `TaskBuffer` holds valid tasks in insertion order (oldest first), each tagged with the
training step that added it. It

- starts from a seed task (identity program; `initial_buffers`),
- de-duplicates on program + input(s) (`tasks.task_key`),
- is capped: past `capacity` the oldest tasks are dropped,
- samples reference triplets for proposers without replacement (`sample_references`),
- builds solve batches that take the newest tasks first, then fill uniformly from the whole
  buffer (`sample_solve_batch`),
- supports a seeding phase before training: fill to a target size, no updates (`add_until`),
- draws every random choice from its own numpy Generator, whose state is part of
  `to_state()`, so a restored buffer continues exactly as the original would have.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from azr_jax.selfplay.tasks import (
    InductionTask,
    Task,
    TaskType,
    Triplet,
    seed_induction_task,
    seed_triplet,
    task_from_dict,
    task_key,
)

DEFAULT_CAPACITY = 16_384
SEED_STEP = -1  # Step tag of seed tasks and seeding-phase tasks (before training step 0).


class TaskBuffer:
    """Valid tasks of one type, with step tags, de-duplication, a cap and its own RNG."""

    def __init__(
        self,
        task_type: TaskType,
        capacity: int = DEFAULT_CAPACITY,
        seed: int | Sequence[int] = 0,
    ):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be at least 1, got {capacity}")
        self.task_type = TaskType(task_type)
        self.capacity = capacity
        self._tasks: list[Task] = []  # Oldest first.
        self._steps: list[int] = []  # Step that added each task.
        self._keys: set[tuple[str, ...]] = set()
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def tasks(self) -> tuple[Task, ...]:
        """All tasks, oldest first."""
        return tuple(self._tasks)

    @property
    def rng(self) -> np.random.Generator:
        """The buffer's generator; draw induction programs from the induction buffer's."""
        return self._rng

    def _check_type(self, task: Task) -> None:
        want = InductionTask if self.task_type is TaskType.INDUCTION else Triplet
        if not isinstance(task, want):
            raise TypeError(
                f"{self.task_type.value} buffer holds {want.__name__}, got {type(task).__name__}"
            )

    def add(self, task: Task, step: int) -> bool:
        """Add a valid task; returns False (and adds nothing) for a duplicate."""
        self._check_type(task)
        key = task_key(task)
        if key in self._keys:
            return False
        self._tasks.append(task)
        self._steps.append(step)
        self._keys.add(key)
        if len(self._tasks) > self.capacity:
            excess = len(self._tasks) - self.capacity
            for old in self._tasks[:excess]:
                self._keys.discard(task_key(old))
            del self._tasks[:excess], self._steps[:excess]
        return True

    def extend(self, tasks: Iterable[Task], step: int) -> int:
        """Add several valid tasks; returns how many were new."""
        return sum(self.add(task, step) for task in tasks)

    def seeding_deficit(self, target_size: int) -> int:
        """How many more tasks the seeding phase needs to reach `target_size` (AZR: 256)."""
        return max(0, min(target_size, self.capacity) - len(self))

    def add_until(self, tasks: Iterable[Task], target_size: int, step: int = SEED_STEP) -> int:
        """Seeding phase: add valid tasks in order until the buffer holds `target_size`.

        Tasks past the target are ignored. Returns how many were added.
        """
        added = 0
        for task in tasks:
            if self.seeding_deficit(target_size) == 0:
                break
            added += self.add(task, step)
        return added

    def sample_references(self, k: int = 6) -> list[Task]:
        """Up to `k` distinct tasks drawn uniformly without replacement (fewer if smaller)."""
        n = min(k, len(self))
        idx = self._rng.choice(len(self), size=n, replace=False) if n else []
        return [self._tasks[i] for i in idx]

    def sample_solve_batch(self, batch_size: int, step: int, max_recent: int = 64) -> list[Task]:
        """A solve batch: the newest tasks added at `step` first, then uniform fill.

        Args:
          batch_size: number of tasks to return.
          step: the current training step; tasks tagged with it count as recent.
          max_recent: at most this many recent tasks, the newest ones (AZR: 64).

        The fill is drawn uniformly from the whole buffer (recent tasks included), without
        replacement when the buffer is large enough and with replacement otherwise (early on
        the buffer may hold only its seed).
        """
        if batch_size < 0 or max_recent < 0:
            raise ValueError(f"batch_size={batch_size}, max_recent={max_recent} must be >= 0")
        if batch_size and not self._tasks:
            raise ValueError(f"cannot sample a solve batch from an empty {self.task_type.value}")
        recent = [i for i, s in enumerate(self._steps) if s == step]
        recent = recent[max(0, len(recent) - min(max_recent, batch_size)) :]
        need = batch_size - len(recent)
        fill = self._rng.choice(len(self), size=need, replace=need > len(self)) if need else []
        return [self._tasks[i] for i in [*recent, *fill]]

    def to_state(self) -> dict[str, Any]:
        """Plain JSON-able state: tasks, step tags, capacity and the RNG state."""
        return {
            "task_type": self.task_type.value,
            "capacity": self.capacity,
            "tasks": [task.to_dict() for task in self._tasks],
            "steps": list(self._steps),
            "rng": self._rng.bit_generator.state,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TaskBuffer:
        """Rebuild a buffer from `to_state()`; it continues exactly where the original was."""
        buffer = cls(TaskType(state["task_type"]), capacity=state["capacity"])
        if len(state["tasks"]) != len(state["steps"]):
            raise ValueError("buffer state has a different number of tasks and step tags")
        for data, step in zip(state["tasks"], state["steps"], strict=True):
            if not buffer.add(task_from_dict(buffer.task_type, data), int(step)):
                raise ValueError("buffer state holds a duplicate task")
        buffer._rng.bit_generator.state = state["rng"]
        return buffer


def sample_induction_programs(
    sources: Sequence[TaskBuffer], n: int, rng: np.random.Generator
) -> list[str]:
    """Programs for `n` induction proposals, uniform over the tasks of `sources`.

    AZR draws them from the deduction and abduction buffers. Pass the induction buffer's
    `rng` so that the draws are checkpointed with it. Without replacement when the sources
    hold at least `n` tasks, with replacement otherwise.
    """
    pool = [task.program for source in sources for task in source.tasks]
    if n and not pool:
        raise ValueError("no programs to draw induction tasks from: the source buffers are empty")
    idx = rng.choice(len(pool), size=n, replace=n > len(pool)) if n else []
    return [pool[i] for i in idx]


def initial_buffers(capacity: int = DEFAULT_CAPACITY, seed: int = 0) -> dict[TaskType, TaskBuffer]:
    """One buffer per task type, each holding its identity seed, with independent RNGs."""
    buffers = {}
    for i, task_type in enumerate(TaskType):
        buffer = TaskBuffer(task_type, capacity=capacity, seed=[seed, i])
        first = seed_induction_task() if task_type is TaskType.INDUCTION else seed_triplet()
        buffer.add(first, SEED_STEP)
        buffers[task_type] = buffer
    return buffers
