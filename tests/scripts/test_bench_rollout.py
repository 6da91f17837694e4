"""scripts/bench_rollout.py: the ratio the lengths alone allow, against a hand count."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location(
        "bench_rollout", REPO / "scripts/bench_rollout.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ideal_ratio_by_hand():
    ideal = _module().ideal_ratio
    # 2 slots: static calls (10, 2) and (3, 1) decode 10 + 3 = 13 steps; 16 tokens packed end to
    # end in 2 slots take 8 steps, but the 10-token row alone takes 10.
    # In order: slot A takes 10; slot B takes 2, then 3 (at step 2), then 1 (at step 5): 10.
    assert ideal([10, 2, 3, 1], 2) == {
        "static_steps": 13,
        "engine_steps_min": 10,
        "ideal_ratio": pytest.approx(1.3),
        "fifo_steps": 10,
        "fifo_ratio": pytest.approx(1.3),
    }
    # A long row last: packed, 18 tokens fit 9 steps in 2 slots; in order both slots run a 4
    # (steps 0-4), then a 1 each (4-5), then the 8 starts at step 5 and ends at 13.
    assert ideal([4, 4, 1, 1, 8], 2)["fifo_steps"] == 13
    # every row at the cap: nothing to gain
    assert ideal([5] * 8, 4)["ideal_ratio"] == 1.0
    # one long row per call of 4, 8 calls: static 8 x 9 = 72; packed: (8 x 9 + 8 x 3) / 4 = 24
    assert ideal([9, 1, 1, 1] * 8, 4)["ideal_ratio"] == pytest.approx(3.0)
    # packed rows that do not divide evenly round up: 7 tokens in 2 slots take 4 steps
    assert ideal([3, 2, 1, 1], 2)["engine_steps_min"] == 4
