"""What the composed replay decided for each request, as small integer codes.

The compiled fold decides admission, the cache outcome and each request's fate as int8 codes
(:mod:`.fold_kernel`); the stages' columns hold them as strings. Comparing a million strings
(an object array, ``== "ok"``) costs ~100 times what comparing their int8 codes does, so the
stages' differs and summaries read codes: the fold's own (:func:`fold_codes`) and the log's
(:func:`logged_codes`), in one label space per decision. The labels here are the one
definition of what each code means (the compiled fold's tables are built from them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .fold import CACHE, CHECK, REFUSED, UNKNOWN_MODEL, UPSTREAM

if TYPE_CHECKING:
    from .fold import Folded
    from .window import Window

Labels = tuple[str | None, ...]

#: admission: 0 — not decided (not routed, or a check), then the decisions
ADMISSION: Labels = (None, "ok", "budget_exceeded", "rate_limited")
#: the cache outcome: 0 — the request did not reach a cache
CACHE_KIND: Labels = (None, "bypass", "hit", "miss", "semantic-hit")
#: each request's fate (``replay_served_by``): 0 — not routed
SERVED: Labels = (None, UPSTREAM, CACHE, REFUSED, UNKNOWN_MODEL, CHECK)
#: the labels of each coded column of a :class:`.fold.Folded`
LABELS: dict[str, Labels] = {"admission": ADMISSION, "cache_kind": CACHE_KIND, "served_by": SERVED}


def fold_codes(folded: Folded, name: str) -> np.ndarray:
    """A decision of every request (``admission``, ``cache_kind``, ``served_by``) as codes into
    :data:`LABELS` [name]: the compiled fold's own int8 array when it keeps one (read it, do not
    change it), else the Python fold's strings coded once (a value not among the labels is the
    fold's error: ValueError)."""
    own = getattr(folded, "codes", None)
    if own is not None:
        return np.asarray(own(name))
    codes = encode(folded.column(name), LABELS[name])
    if (codes < 0).any():
        raise ValueError(f"the fold decided a {name} not in {LABELS[name]}")
    return codes


def encode(values: Any, labels: Labels) -> np.ndarray:
    """Strings (or None) as int8 codes into ``labels`` (-1: not among them)."""
    values = np.asarray(values, object)
    codes = np.full(len(values), -1, np.int8)
    for k, label in enumerate(labels):
        codes[values == label] = k  # element-wise (None too)
    return codes


def logged_codes(window: Window, name: str, labels: Labels) -> np.ndarray:
    """A logged string column as int8 codes into ``labels`` (NULL: the code of None; -1: a value
    not among the labels) — by the window's codes, no Python object per row."""
    codes, values = window.codes(name)
    null = labels.index(None) if None in labels else -1
    table = np.array([labels.index(v) if v in labels else -1 for v in values] + [null], np.int8)
    return table[codes]  # type: ignore[no-any-return]
