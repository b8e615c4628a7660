"""Borrowed array views for numba kernels: the same arrays without their memory owner, so that
copying them costs no reference counting.

numba counts references to an array's memory (``NRT_incref``/``NRT_decref``, atomic) every time
a kernel copies the array into a variable: passing a tuple of arrays to an inlined helper,
reading a field of a named tuple of arrays. In the composed fold's kernel that counting took
about two thirds of its time (perf: two atomic adds). A *borrowed* view has a null owner, which
LLVM sees as a constant, so every count on it is compiled away. A kernel borrows its arguments
once at entry; the caller keeps the owning arrays alive for the call, and no view outlives it
(a kernel must not return or store a borrowed view).
"""

from __future__ import annotations

from typing import Any

try:
    from numba.core import types
    from numba.extending import intrinsic
except ImportError:  # the [fast] extra is not installed: nothing is compiled
    intrinsic = None  # type: ignore[assignment]

_ARRAY_FIELDS = ("data", "shape", "strides", "itemsize", "nitems", "parent")


def _borrowed(context: Any, builder: Any, ty: Any, value: Any) -> Any:
    """``value`` (of numba type ``ty``) with every array in it, at any depth of tuples, borrowed."""
    if isinstance(ty, types.Array):
        src = context.make_array(ty)(context, builder, value=value)
        out = context.make_array(ty)(context, builder)
        for name in _ARRAY_FIELDS:
            setattr(out, name, getattr(src, name))
        out.meminfo = context.get_constant_null(types.MemInfoPointer(ty.dtype))
        return out._getvalue()
    if isinstance(ty, types.BaseTuple):
        out = context.get_constant_undef(ty)
        items: list[Any] = list(ty.types)  # type: ignore[attr-defined]  # every tuple type has them
        for k, item in enumerate(items):
            out = builder.insert_value(out, _borrowed(context, builder, item, builder.extract_value(value, k)), k)
        return out
    return value


if intrinsic is not None:

    @intrinsic
    def borrow(typingctx: Any, value: Any) -> Any:
        """``borrow(x)`` inside a kernel: ``x`` (an array or a tuple of them, nested) with its
        arrays borrowed (see the module docstring)."""

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return _borrowed(context, builder, signature.args[0], args[0])

        return value(value), codegen

else:
    borrow = None
