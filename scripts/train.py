"""Trains a policy with AZR self-play. The run directory is the run: rerunning resumes.

    python scripts/train.py --config=configs/default.py                      # tiny model, CPU, minutes
    python scripts/train.py --config=configs/azr.py:qwen2.5-coder-7b,v5p-8   # the paper's 7B run
    python scripts/train.py --config=configs/default.py --config.num_steps=8 --config.rl.learning_rate=1e-4

Multi-host: Cloud TPU VMs initialise automatically; elsewhere pass --coordinator_address,
--num_processes and --process_id on every host.
"""

import json
import logging

from absl import app, flags
from ml_collections import config_flags

from azr_jax import distributed

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/default.py", "Run config file[:preset]."
)
distributed.define_flags()
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax's per-save INFO lines
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    import jax

    from azr_jax.config_checks import ConfigError, check_config
    from azr_jax.trainer import train_and_evaluate

    config = _CONFIG.value
    try:
        check_config(config, num_devices=jax.device_count())
    except ConfigError as e:
        raise app.UsageError(str(e)) from None
    last = train_and_evaluate(config)
    if distributed.is_writer():
        print(json.dumps(last))


if __name__ == "__main__":
    app.run(main)
