"""The policy-gradient update: chunked token log-probs, the Task-Relative REINFORCE++ clipped
loss, the sharded optimizer step and packed update rows. May import: azr_jax.parallel,
azr_jax.model."""
