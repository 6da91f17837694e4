"""azr_jax: the Absolute Zero Reasoner in JAX/Flax."""

__version__ = "0.1.0"
