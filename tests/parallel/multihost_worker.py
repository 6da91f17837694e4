"""One process of the multi-host test: a tiny model on meshes over all hosts, 2 training steps.

    python tests/parallel/multihost_worker.py --checkpoint=DIR [--meshes=1,4 --meshes=2,2] \
        [--coordinator_address=localhost:PORT --num_processes=2 --process_id=I]

The environment sets the devices per process (XLA_FLAGS=--xla_force_host_platform_device_count=N,
JAX_PLATFORMS=cpu). Prints one JSON line: the losses and what this process saw of the batch.
Run with 1 process x 4 devices and 2 x 2, the losses must agree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, not an installed copy

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from absl import app, flags  # noqa: E402

from azr_jax.model import hf_io  # noqa: E402
from azr_jax.model import transformer as model_lib  # noqa: E402
from azr_jax.parallel import distributed  # noqa: E402
from azr_jax.parallel import sharding as shd  # noqa: E402

distributed.define_flags()
flags.DEFINE_string("checkpoint", None, "Tiny Hugging Face checkpoint directory.", required=True)
flags.DEFINE_multi_string("meshes", ["1,4", "2,2"], "data,fsdp sizes of each mesh to train on.")
flags.DEFINE_integer("batch", 8, "Global batch rows.")
flags.DEFINE_integer("length", 12, "Tokens per row.")
FLAGS = flags.FLAGS


def make_update(cfg, optimizer: optax.GradientTransformation):
    """The one training step of this test (to be swapped for azr_jax.update.train_step when it lands)."""

    def loss_fn(params, tokens):  # tokens [B, T]
        mask = jnp.ones(tokens.shape, bool)
        positions = model_lib.positions_from_mask(mask)
        logits, _ = model_lib.forward(params, cfg, tokens, positions, mask)  # [B, T, V]
        logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
        nll = -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]  # [B, T-1]
        return nll.mean()

    def update(params, opt_state, tokens):
        loss, grads = jax.value_and_grad(loss_fn)(params, tokens)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return update


def train_two_steps(checkpoint: str, mesh, tokens: np.ndarray) -> dict:
    """Loads the checkpoint onto `mesh`, feeds this host's rows, takes two steps: what it saw."""
    cfg, params = hf_io.load_hf(checkpoint, mesh)
    # Every process knows the same global batch; each hands over only its own rows.
    rows = distributed.process_rows(mesh, len(tokens))
    batch = distributed.global_batch({"tokens": tokens[rows]}, mesh)
    assert batch["tokens"].shape == tokens.shape, batch["tokens"].shape

    optimizer = optax.adamw(1e-2)
    shardings = shd.tree_shardings(model_lib.abstract_params(cfg), model_lib.param_axes(cfg), mesh)
    opt_state = jax.jit(optimizer.init)(params)
    update = jax.jit(
        make_update(cfg, optimizer),
        out_shardings=(shardings, None, shd.replicated(mesh)),
        donate_argnums=(0, 1),
    )
    losses = []
    for _ in range(2):
        params, opt_state, loss = update(params, opt_state, batch["tokens"])
        losses.append(float(loss))
    return {
        "losses": losses,
        "rows": rows.tolist(),
        "local_rows_ok": bool(
            np.array_equal(distributed.local_rows(batch)["tokens"], tokens[rows])
        ),
        "allgather_rows_ok": bool(
            np.array_equal(distributed.allgather_rows(batch["tokens"]), tokens)
        ),
    }


def main(argv):
    del argv
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    rng = np.random.default_rng(0)
    vocab = hf_io.load_config(FLAGS.checkpoint).vocab_size
    tokens = rng.integers(0, vocab, (FLAGS.batch, FLAGS.length)).astype(np.int32)  # [B, T]
    out = {
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "is_writer": distributed.is_writer(),
        "host_allgather": distributed.host_allgather(np.array([jax.process_index()])).tolist(),
        "meshes": {},
    }
    for text in FLAGS.meshes:
        data, fsdp = (int(v) for v in text.split(","))
        out["meshes"][text] = train_two_steps(
            FLAGS.checkpoint, shd.make_mesh(data, fsdp, 1), tokens
        )
    distributed.sync("worker-done")
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    app.run(main)
