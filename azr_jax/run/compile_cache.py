"""JAX's persistent compilation cache for a run, and a timer of the compiling a step does.

`enable(cache_dir)` points JAX at a cache directory (local, `~` expanded, or a `gs://` URL:
JAX reads and writes it through etils.epath) and caches every program, however quick to
compile, so a restarted run compiles nothing it compiled before: it loads the executables.
The cache key covers the program, the devices and the compiler version, so one directory can
serve many runs and machines of the same kind.

`CompileTimer` sums JAX's own backend-compile events (a cache hit counts its load time), for the
trainer's `time/compile_s`.
"""

from __future__ import annotations

import os
import threading

import jax
from jax import monitoring

from azr_jax.storage import paths

_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT = "/jax/compilation_cache/cache_hits"


def enable(cache_dir: str) -> str | None:
    """Turns the persistent cache on at `cache_dir` ("" leaves it off); returns the directory."""
    if not cache_dir:
        return None
    where = cache_dir if paths.is_url(cache_dir) else os.path.expanduser(cache_dir)
    paths.makedirs(where)
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return where


class CompileTimer:
    """Seconds spent compiling (or loading from the cache) and programs compiled, since `take`."""

    def __init__(self):
        self._lock = threading.Lock()
        self.seconds, self.programs, self.cache_hits = 0.0, 0, 0
        monitoring.register_event_duration_secs_listener(self._on_duration)
        monitoring.register_event_listener(self._on_event)

    def _on_duration(self, event: str, seconds: float, **_) -> None:
        if event == _BACKEND_COMPILE:
            with self._lock:
                self.seconds += seconds
                self.programs += 1

    def _on_event(self, event: str, **_) -> None:
        if event == _CACHE_HIT:
            with self._lock:
                self.cache_hits += 1

    def take(self) -> dict[str, float]:
        """`time/compile_s`, `time/compile_programs`, `time/compile_cache_hits` since the last call."""
        with self._lock:
            out = {
                "time/compile_s": self.seconds,
                "time/compile_programs": self.programs,
                "time/compile_cache_hits": self.cache_hits,
            }
            self.seconds, self.programs, self.cache_hits = 0.0, 0, 0
        return out

    def close(self) -> None:
        monitoring.unregister_event_duration_listener(self._on_duration)
        monitoring.unregister_event_listener(self._on_event)
