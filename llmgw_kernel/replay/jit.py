"""How the replay kernels are compiled (numba, the ``fast`` extra): helpers inlined where they
are called, entry points compiled once and cached on disk. Without numba both decorators return
the Python function (the callers then run the Python fold)."""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from numba import njit
except ImportError:  # the [fast] extra is not installed: the Python fold runs
    njit = None  # type: ignore[assignment]


def jit(fn: Any) -> Any:
    """A helper of a kernel, inlined where it is called (a call would pass the state's tuples of
    arrays by value). numba inlines its IR at every call site, and type inference and LLVM then
    compile each copy: call a large helper from one place (``fold_kernel._fold`` drains its events
    from one call site: the second one it had doubled the kernel's first compile, ~105 -> ~51 CPU
    s; docs/benchmarks.md)."""
    return njit(cache=True, nogil=True, inline="always")(fn) if njit is not None else fn


def jit_entry(fn: Any) -> Any:
    """A kernel's entry point, compiled once and cached on disk."""
    return njit(cache=True, nogil=True)(fn) if njit is not None else fn


def read_only(value: Any, *, keep: tuple[str, ...] = ()) -> Any:
    """``value`` (an array, or a tuple or named tuple of arrays and numbers) with every array but
    the fields named in ``keep`` a read-only view (no copy). numba types an array's writability:
    an input column is read-only when it is a view of Arrow memory and writable when it was
    computed, so the same kernel was compiled again (~50-100 CPU s) for a window with a null more
    or less. The inputs a kernel only reads are passed read-only, always: one signature."""
    if isinstance(value, np.ndarray):
        view = value.view()
        view.flags.writeable = False
        return view
    if not isinstance(value, tuple):  # a number
        return value
    if not hasattr(value, "_fields"):  # a plain tuple
        return tuple(read_only(v) for v in value)
    fields: tuple[str, ...] = value._fields  # type: ignore[attr-defined]
    return value._replace(**{k: read_only(getattr(value, k)) for k in fields if k not in keep})  # type: ignore[attr-defined]
