"""Evaluation: scoring a policy on held-out benchmarks (CRUXEval, HumanEval, the paper's table).
May import: azr_jax.executor, azr_jax.selfplay, azr_jax.sampling, azr_jax.model, azr_jax.parallel."""
