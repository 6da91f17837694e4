"""Sampling: the jitted prefill + decode sampler, its settings, exact stop strings and the text
wrapper around them. May import: azr_jax.parallel, azr_jax.model."""
