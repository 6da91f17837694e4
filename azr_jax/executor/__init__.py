"""Sandboxed host-side Python executor and AZR task validation/grading (never imports JAX)."""
