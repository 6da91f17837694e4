"""Checks that a checkpoint gives the same logits and greedy tokens in azr_jax and transformers.

    python scripts/compare_with_hf.py --model_dir DIR [--dtype float32] [--new_tokens 8] \
        [--attention einsum|xla|cudnn|splash|auto]

Last line: JSON with architecture, max_abs_logit_diff (non-pad positions of a left-padded batch),
greedy_tokens_match and num_params. Needs torch (requirements-dev.txt).
"""

import json

from absl import app, flags

from azr_jax.model.config import ATTENTION_CHOICES
from azr_jax.model.parity import compare

flags.DEFINE_string("model_dir", None, "Hugging Face model directory (or hub name).", required=True)
flags.DEFINE_enum(
    "dtype", "float32", ["float32", "bfloat16"], "Weights and compute dtype, both sides."
)
flags.DEFINE_integer("new_tokens", 8, "Greedy tokens to compare.")
flags.DEFINE_enum(
    "attention",
    "einsum",
    list(ATTENTION_CHOICES),
    "azr_jax's full-sequence attention (splash: interpret mode off TPU).",
)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    print(
        json.dumps(
            compare(FLAGS.model_dir, FLAGS.dtype, FLAGS.new_tokens, attention=FLAGS.attention)
        )
    )


if __name__ == "__main__":
    app.run(main)
