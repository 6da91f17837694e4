"""run/preemption.py: SIGTERM is noted (once), not acted on, and the old handler comes back."""

import os
import signal

from azr_jax.run.preemption import PreemptionWatch


def test_sigterm_is_noted_not_fatal_and_the_handler_restored():
    before = signal.getsignal(signal.SIGTERM)
    with PreemptionWatch() as watch:
        assert not watch.should_stop(1)
        os.kill(os.getpid(), signal.SIGTERM)  # would end the process without the watch
        assert watch.requested and watch.should_stop(1)
        os.kill(os.getpid(), signal.SIGTERM)  # a second one changes nothing
        assert watch.should_stop(2)
    assert signal.getsignal(signal.SIGTERM) == before
