"""Trains a policy with AZR self-play. The run directory is the run: rerunning resumes.

    python scripts/train.py --config=configs/default.py                      # tiny model, CPU, minutes
    python scripts/train.py --config=configs/azr.py:qwen2.5-coder-7b,v5p-8   # the paper's 7B run
    python scripts/train.py --config=configs/default.py --config.num_steps=8 --config.rl.learning_rate=1e-4

Multi-host: Cloud TPU VMs initialise automatically; elsewhere pass --coordinator_address,
--num_processes and --process_id on every host.

SIGTERM (a spot VM's preemption notice) ends the run after the step in flight, saved; the
process exits 0 after printing "preempted: saved step N ...; resume with: COMMAND".
"""

import json
import shlex
import sys

from absl import app, flags
from ml_collections import config_flags

from azr_jax.parallel import distributed

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/default.py", "Run config file[:preset]."
)
distributed.define_flags()
FLAGS = flags.FLAGS


def main(argv):
    del argv
    distributed.start_from_flags()
    import jax

    from azr_jax.run import compile_cache
    from azr_jax.run.config_checks import ConfigError, check_config
    from azr_jax.run.trainer import train_and_evaluate

    config = _CONFIG.value
    try:
        check_config(config, num_devices=jax.device_count(), backend=jax.default_backend())
    except ConfigError as e:
        raise app.UsageError(str(e)) from None
    compile_cache.enable(config.compile_cache_dir)
    last = train_and_evaluate(config, resume_command=shlex.join(["python", *sys.argv]))
    if distributed.is_writer():
        print(json.dumps(last))


if __name__ == "__main__":
    app.run(main)
