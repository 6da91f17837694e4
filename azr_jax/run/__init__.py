"""A training run: config checks, the trainer (set-up, resume, the loop), Orbax checkpoints and the
run records (metrics, TensorBoard, samples, plots). The top layer: may import any azr_jax package."""
