"""The policy-gradient update: chunked token log-probs, the Task-Relative REINFORCE++ clipped
loss and the sharded optimizer step. May import: azr_jax.parallel, azr_jax.model."""
