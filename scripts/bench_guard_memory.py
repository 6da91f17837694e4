"""What the non-finite guard costs in device memory: the update compiled with and without it.

    python scripts/bench_guard_memory.py --preset small

Compiles `train_step` (state donated, as the trainer does) plain and wrapped in
`azr_jax.update.guard.guarded`, side by side in one process, and reports XLA's memory analysis of
each: temporaries, outputs and the bytes aliased to the donated state. Last line: JSON.
"""

import functools
import json
import tempfile
from pathlib import Path

import jax
import numpy as np
from absl import app, flags

flags.DEFINE_enum("preset", "small", ["tiny", "small"], "azr_jax.model.tiny_checkpoint preset.")
flags.DEFINE_integer("rows", 4, "Update batch rows.")
flags.DEFINE_integer("length", 32, "Prompt + response tokens per row.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from azr_jax.model import hf_io
    from azr_jax.model.tiny_checkpoint import make_tiny_checkpoint
    from azr_jax.update.guard import guarded
    from azr_jax.update.pg_loss import PGBatch
    from azr_jax.update.train_step import TrainHparams, init_train_state, train_step

    with tempfile.TemporaryDirectory() as tmp:
        d = make_tiny_checkpoint("qwen2", Path(tmp) / "m", preset=FLAGS.preset)
        cfg, params = hf_io.load_hf(d)
    hp = TrainHparams()
    state = init_train_state(params, hp)
    half = FLAGS.length // 2
    rng = np.random.default_rng(0)
    shape = (FLAGS.rows, FLAGS.length)
    mask = np.zeros(shape, bool)
    mask[:, half:] = True
    batch = PGBatch(
        tokens=rng.integers(2, cfg.vocab_size, shape).astype(np.int32),
        attn_mask=np.ones(shape, bool),
        loss_mask=mask,
        advantages=rng.normal(size=FLAGS.rows).astype(np.float32),
        old_logprobs=np.full(shape, -2.0, np.float32),
        response_start=half,
    )
    pure = functools.partial(train_step, cfg=cfg, hparams=hp)
    mb = lambda b: round(b / 2**20, 1)  # noqa: E731
    out = {"preset": FLAGS.preset, "backend": jax.default_backend()}
    out["state_mb"] = mb(sum(x.nbytes for x in jax.tree.leaves(state)))
    for name, fn in (("plain", pure), ("guarded", guarded(pure))):
        compiled = jax.jit(fn, donate_argnums=0).lower(state, batch, jax.random.key(0)).compile()
        m = compiled.memory_analysis()
        out[name] = {
            "temp_mb": mb(m.temp_size_in_bytes),
            "output_mb": mb(m.output_size_in_bytes),
            "aliased_mb": mb(m.alias_size_in_bytes),
        }
    out["extra_temp_mb"] = round(out["guarded"]["temp_mb"] - out["plain"]["temp_mb"], 1)
    out["extra_temp_frac_of_state"] = round(out["extra_temp_mb"] / out["state_mb"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    app.run(main)
