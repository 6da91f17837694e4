"""Parallelism: the device mesh, the one logical-axis -> mesh-axis rules table, multi-host start-up
and global batches. The bottom layer: imports nothing from azr_jax."""
