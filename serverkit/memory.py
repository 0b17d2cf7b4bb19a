"""Give freed heap back to the kernel after a large transient (glibc's `malloc_trim(0)`).

Why: the controller's soak (bench/soak.py, 10,000 machines, an hour at x20) showed Python's own objects flat after
warm-up (allocated blocks oscillating 1.14-1.58 M with each rollup flush, no trend) while resident memory rose a step
at every flush (237 -> 274 MB, +16 %): glibc keeps the pages of freed small objects in its arenas (one per thread
that allocated), so each flush's peak stayed resident. Trimming every 5 s kept resident memory at the working level
(236 -> ~240 MB, flat), and so does trimming after each flush (controller.runtime.flush_rollups; figures in
docs/decisions.md). Elsewhere than glibc (musl, macOS) it does nothing."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from functools import cache

log = logging.getLogger(__name__)


@cache
def _trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return free arena pages to the kernel; True when the C library could (glibc), False elsewhere."""
    trim = _trim()
    if trim is None:
        return False
    try:
        trim(0)
    except OSError:  # pragma: no cover - a C library whose symbol exists but fails
        log.debug("malloc_trim failed", exc_info=True)
        return False
    return True
