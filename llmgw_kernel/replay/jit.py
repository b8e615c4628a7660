"""How the replay kernels are compiled (numba, the ``fast`` extra): helpers inlined where they
are called, entry points compiled once and cached on disk. Without numba both decorators return
the Python function (the callers then run the Python fold)."""

from __future__ import annotations

from typing import Any

try:
    from numba import njit
except ImportError:  # the [fast] extra is not installed: the Python fold runs
    njit = None  # type: ignore[assignment]


def jit(fn: Any) -> Any:
    """A helper of a kernel, inlined where it is called (a call would pass the state's tuples of
    arrays by value)."""
    return njit(cache=True, nogil=True, inline="always")(fn) if njit is not None else fn


def jit_entry(fn: Any) -> Any:
    """A kernel's entry point, compiled once and cached on disk."""
    return njit(cache=True, nogil=True)(fn) if njit is not None else fn
