"""The causal LM: its config, the Flax NNX transformer with an explicit KV cache, Hugging Face
checkpoints in and out, tiny local checkpoints and parity checks with transformers.
May import: azr_jax.parallel, azr_jax.storage."""
