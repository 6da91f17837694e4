"""The sandbox: model-written Python run in forked children of warm zygotes behind the isolation
layers (`layers.py`, `pool.py`), with AZR validation and grading on top. Host side, never JAX.
May import: nothing else from azr_jax."""
