"""Where a run's files live: local paths and `gs://` URLs behind one interface (etils.epath).

The bottom layer, beside `parallel`: imports nothing else of azr_jax and never JAX, so every
layer (the host side included) may use it.
"""
