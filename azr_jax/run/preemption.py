"""Preemption: SIGTERM (or JAX's preemption notice) stops the run after the step in flight.

Spot and maintenance events on Cloud TPU VMs send SIGTERM about 30 s before the VM goes. While a
`PreemptionWatch` is open, SIGTERM only notes the request (a second one during the save is
ignored, so it cannot cut that save short); the trainer asks `should_stop(step)` after every
step, saves that step synchronously, closes its pools and exits with status 0.

Multi-host: `should_stop` is a collective, called by every process after the same step. It is
true on all processes at once when any of them got SIGTERM (an all-gather of the flags) or when
JAX's preemption service reached its sync point (`multihost_utils.reached_preemption_sync_point`,
what Orbax's `PreemptionCheckpointingPolicy` reads), so all save the same step.
"""

from __future__ import annotations

import logging
import signal
import threading

import jax
import numpy as np

from azr_jax.parallel import distributed as dist

log = logging.getLogger(__name__)


class PreemptionWatch:
    """Notes SIGTERM while open (a context manager); `should_stop(step)` reads the note."""

    def __init__(self):
        self.requested = False
        self._previous = None
        self._installed = False

    def _note(self, signum, frame) -> None:
        del frame
        if self.requested:
            log.warning("signal %d again: still finishing and saving; not stopping sooner", signum)
            return
        self.requested = True
        log.warning("signal %d: finishing the step in flight, then saving it and exiting", signum)

    def __enter__(self) -> PreemptionWatch:
        if threading.current_thread() is threading.main_thread():  # signals reach only that one
            self._previous = signal.signal(signal.SIGTERM, self._note)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed and self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        self._installed = False

    def should_stop(self, step: int) -> bool:
        """Whether to save `step` and stop: the same answer on every process (a collective)."""
        if jax.process_count() == 1:
            return self.requested
        flags = dist.host_allgather(np.array([int(self.requested)], np.int32))  # [P, 1]
        return bool(flags.any()) or _reached_sync_point(step)


def _reached_sync_point(step: int) -> bool:
    """JAX's preemption service (multi-host): whether all hosts agreed to save at `step`."""
    from jax.experimental import multihost_utils

    try:
        return bool(multihost_utils.reached_preemption_sync_point(step))
    except RuntimeError:  # the service is off (jax_enable_preemption_service=False)
        return False
