"""Writes a run's policy as a Hugging Face directory (safetensors, config, tokenizer).

    python scripts/export_hf.py --config=configs/default.py --config.output_dir=RUN --out DIR
    python scripts/compare_with_hf.py --model_dir DIR      # then: same logits in transformers

The directory loads in transformers and vLLM. --config.eval.step picks a checkpoint (-1: latest).
The model, dtypes and mesh are the run's own (its config.json); a preset changes only the keys
named on the command line. Only the parameters are read (no optimizer state).
"""

import json
import tempfile

from absl import app, flags
from ml_collections import config_flags

from azr_jax.parallel import distributed
from azr_jax.storage import paths

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/default.py", "Run config file[:preset]."
)
flags.DEFINE_string("out", None, "Output directory (a local path or gs:// URL).", required=True)
flags.DEFINE_enum(
    "dtype", None, ["float32", "bfloat16"], "Saved dtype (default: the run's param dtype)."
)
distributed.define_flags()
FLAGS = flags.FLAGS


def main(argv):
    del argv
    distributed.start_from_flags()
    from azr_jax.model import hf_io
    from azr_jax.run import restore

    config = restore.recorded_config(_CONFIG.value, restore.named_on_command_line())
    cfg, params, _, base, step = restore.load_policy(config, config.eval.step)
    if paths.is_url(FLAGS.out):  # written here, then uploaded (config.json last)
        with tempfile.TemporaryDirectory() as tmp:
            hf_io.save_hf(params, cfg, tmp, base, dtype=FLAGS.dtype)
            if distributed.is_writer():
                out = paths.upload_tree(tmp, FLAGS.out)
    else:
        out = hf_io.save_hf(params, cfg, FLAGS.out, base, dtype=FLAGS.dtype)
    if distributed.is_writer():
        print(json.dumps({"out": str(out), "step": step, "num_params": cfg.num_params}))


if __name__ == "__main__":
    app.run(main)
