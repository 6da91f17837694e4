"""Self-play, host side: tasks, prompts, parsing, buffers, rewards, advantages and one self-play
step that drives a policy through them. Never imports JAX. May import: azr_jax.executor."""
