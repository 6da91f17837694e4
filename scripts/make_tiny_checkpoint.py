"""Writes a random-init tiny Hugging Face checkpoint (model + locally trained tokenizer).

python scripts/make_tiny_checkpoint.py --family qwen2 --out /tmp/tiny-qwen2 [--preset tiny] [--seed 0]
"""

from absl import app, flags

from azr_jax.model.tiny_checkpoint import FAMILIES, PRESETS, make_tiny_checkpoint

flags.DEFINE_enum("family", "qwen2", list(FAMILIES), "Model family.")
flags.DEFINE_string("out", None, "Output directory.", required=True)
flags.DEFINE_enum("preset", "tiny", list(PRESETS), "Model size.")
flags.DEFINE_integer("seed", 0, "Seed of the weights.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    print(make_tiny_checkpoint(FLAGS.family, FLAGS.out, preset=FLAGS.preset, seed=FLAGS.seed))


if __name__ == "__main__":
    app.run(main)
