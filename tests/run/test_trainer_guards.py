"""The trainer over a run that goes wrong: NaN rewards (guard), bounded samples/, the W&B mirror.

One short real run (tiny default, 1 CPU device, in a subprocess): step 1 is normal, steps 2 and 3
get a NaN advantage on one row (a NaN reward itself is refused on the host by
`advantages.trr_advantages`; tests/update/test_guard.py feeds one to the step directly, and an inf
log-prob), and `rl.max_skipped_steps=2`. Expected: updates 2 and 3
are not applied (checkpoint 2 holds exactly checkpoint 1's parameters and optimizer state), the
run stops at step 3 with an error naming the step and the last good checkpoint (2), samples/
keeps one row per group, and W&B (offline) got the same numeric keys as metrics.jsonl.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from azr_jax.run.checkpointing import Checkpointer
from azr_jax.update import guard

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import importlib.util, json, sys
import numpy as np
from azr_jax.run import trainer
spec = importlib.util.spec_from_file_location("default", sys.argv[2])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
config = mod.get_config()
config.output_dir = sys.argv[1]
config.model.base = "random"  # the tiny random model (the warm start has its own tests)
config.num_steps = 4
config.azr.batch_size = 2
config.sampling.max_new_tokens = 32
config.checkpoint.interval_steps = 1
config.checkpoint.max_to_keep = 5
config.rl.max_skipped_steps = 2
config.logging.samples_per_group = 1
config.logging.wandb = sys.argv[3] == "1"
config.logging.wandb_samples_every = 1

real, calls = trainer.selfplay.advantages, []

def poisoned(settings, episodes):
    adv = real(settings, episodes)
    calls.append(1)
    if len(calls) in (2, 3):  # steps 2 and 3: one NaN advantage (a NaN reward is refused earlier)
        adv[0] = float("nan")
    return adv

trainer.selfplay.advantages = poisoned
try:
    trainer.train_and_evaluate(config)
    print(json.dumps({"error": None}))
except trainer.NonFiniteUpdateError as e:
    print(json.dumps({"error": str(e)}))
"""


def _has_wandb() -> bool:
    try:
        import wandb  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def poisoned_run(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("guard") / "run"
    env = dict(os.environ)
    env.update(
        XLA_FLAGS="--xla_force_host_platform_device_count=1",
        PYTHONPATH=str(ROOT),
        WANDB_MODE="offline",
        WANDB_SILENT="true",
    )
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(out),
            str(ROOT / "configs" / "default.py"),
            "1" if _has_wandb() else "0",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, json.loads(proc.stdout.strip().splitlines()[-1])["error"]


def _metrics(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_poisoned_updates_are_skipped_then_the_run_stops(poisoned_run):
    out, error = poisoned_run
    assert error is not None, "the run did not stop"
    assert error.startswith("step 3: 2 updates in a row were not finite"), error
    assert f"last good checkpoint is step 2 in {out / 'checkpoints'}" in error, error
    m = _metrics(out)
    assert [r["step"] for r in m] == [1, 2, 3]
    assert m[0]["policy/applied"] == 1.0 and m[0]["policy/nonfinite"] == 0
    for r in m[1:]:
        assert r["policy/applied"] == 0.0
        assert int(r["policy/nonfinite"]) & guard.NONFINITE_LOSS
        assert math.isnan(r["policy/loss"])


def test_checkpoint_after_a_skipped_update_equals_the_one_before(poisoned_run):
    out, _ = poisoned_run
    ckpt_dir = out / "checkpoints"
    # Read the raw saved arrays (no target: numpy), independent of the trainer's restore path.
    import orbax.checkpoint as ocp

    with Checkpointer(ckpt_dir, save_interval_steps=1, max_to_keep=None) as ck:
        assert ck.all_steps() == [1, 2]
    with ocp.PyTreeCheckpointer() as reader:
        one = reader.restore(ckpt_dir / "1" / "device")
        two = reader.restore(ckpt_dir / "2" / "device")
    assert int(one["step"]) == 1 and int(two["step"]) == 1
    flat1, flat2 = ocp.tree.to_flat_dict(one), ocp.tree.to_flat_dict(two)
    assert flat1.keys() == flat2.keys() and any("opt_state" in str(k) for k in flat1)
    for k in flat1:
        np.testing.assert_array_equal(np.asarray(flat1[k]), np.asarray(flat2[k]), err_msg=str(k))
    assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(two))


def test_samples_keep_one_row_per_group(poisoned_run):
    out, _ = poisoned_run
    for step in (1, 2, 3):
        rows = [json.loads(x) for x in (out / "samples" / f"step_{step:06d}.jsonl").open()]
        groups = [r["group"] for r in rows]
        assert len(groups) == len(set(groups)) == 6, groups


def test_wandb_got_the_metrics_and_sample_tables(poisoned_run):
    if not _has_wandb():
        pytest.skip(
            "wandb is not installed (requirements-dev.txt has it): the W&B option is untested"
        )
    from tests.run.wandb_records import history

    out, _ = poisoned_run
    run_id, rows = history(out)
    assert (out / "wandb_run_id").read_text().strip() == run_id
    for record in _metrics(out):
        numeric = {
            k for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        logged = [r for r in rows if r.get("step") == record["step"] and "policy/loss" in r]
        assert len(logged) == 1
        assert numeric == {k for k in logged[0] if not k.startswith("_")}
    tables = [r["step"] for r in rows if r.get("samples/_type") == "table-file"]
    assert tables == [1, 2, 3]
