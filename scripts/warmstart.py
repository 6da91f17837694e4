"""Builds the warm start of a config (cached by its recipe hash) and prints its record as JSON.

    python scripts/warmstart.py --config=configs/default.py           # what `make train` builds
    python scripts/warmstart.py --config=configs/default.py --config.warmstart.steps=50 --out=/tmp/ws

The directory is a Hugging Face checkpoint: `--config.model_name=DIR` trains from it and
`scripts/compare_with_hf.py --model_dir DIR` checks it against transformers. Last line: the
build record (recipe, digest, losses, wall and CPU seconds of the build that made it).
"""

import json
import os
import time

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/default.py", "Run config file[:preset]."
)
flags.DEFINE_string("out", None, "Cache directory (default: the config's warmstart.cache_dir).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from azr_jax.run.trainer import warmstart_recipe
    from azr_jax.warmstart.train import DONE_FILE, build_warmstart

    config = _CONFIG.value
    t, c = time.perf_counter(), os.times()
    path = build_warmstart(warmstart_recipe(config), FLAGS.out or config.warmstart.cache_dir)
    info = json.loads((path / DONE_FILE).read_text())
    c2 = os.times()
    info.update(
        path=str(path),
        this_call_wall_seconds=time.perf_counter() - t,
        this_call_cpu_seconds=(c2.user + c2.system + c2.children_user + c2.children_system)
        - (c.user + c.system + c.children_user + c.children_system),
    )
    print(json.dumps(info))


if __name__ == "__main__":
    app.run(main)
