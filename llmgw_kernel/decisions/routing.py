"""Target selection: which targets a request tries, in which order, and why.

One implementation serves the live proxy (one request) and replay (a whole log).
A weighted route draws its first target from a hash of (policy version, request id), so a
replay of the same policy over the same request makes the same draw; the other targets stay
as fallbacks in their declared order. A route without weights tries its targets in order.

>>> from llmgw_kernel import load_policy
>>> p = load_policy({"providers": {"a": {"kind": "demo"}, "b": {"kind": "demo"}},
...     "routes": {"m": {"targets": [{"provider": "a", "model": "x", "weight": 70},
...                                  {"provider": "b", "model": "x", "weight": 30}]}}})
>>> plan = plan_route(p, "m", "req_1")
>>> sorted(plan.targets) == ["a/x", "b/x"] and plan.reason.startswith("weighted draw")
True

A route may also have a ``sticky`` key (the draw hashes that value instead of the request
id), ``rules`` (conditions; first match wins, the route's targets are the default) and a
``rule`` function (``module:function`` beside the policy file). The context those read is a
:class:`~.context.RouteContext` built by :func:`~.context.route_context` from the request.
See docs/routing.md.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from ..log.schema import ROUTE_DRAW, ROUTE_DRAW_V1
from ..policy.model import Policy, Route, Target
from .conditions import first_match
from .context import RouteChoice, RouteContext, route_context

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]  # loaded by draws(): the live proxy draws one at a time

log = logging.getLogger("llmgw.routing")


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The verdict: target ids in the order they are tried, with the reason for the order
    (steps joined by `` | ``: rule function, matched condition, draw)."""

    route: str
    targets: tuple[str, ...]
    reason: str

    @property
    def first(self) -> str:
        return self.targets[0]


_MASK = (1 << 64) - 1
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # splitmix64's finaliser (Stafford's mix 13)


def _mix(z: int) -> int:
    """splitmix64's finaliser: a bijection of 64-bit words in which every input bit moves every output bit."""
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


@lru_cache(maxsize=256)
def version_seed(policy_version: str) -> int:
    """The 64-bit word every draw of ``policy_version`` starts from (blake2b-64 of the version)."""
    return int.from_bytes(hashlib.blake2b(policy_version.encode(), digest_size=8).digest(), "little")


def draw(policy_version: str, key: str) -> float:
    """A uniform number in [0, 1) that depends only on (policy version, key) — the key is the
    request id, or a sticky route's value.

    The definition (one, in Python; :func:`draws` is the same arithmetic over many keys): the
    key's UTF-8 bytes, zero-padded to whole 8-byte little-endian words, each folded into the
    version's seed by ``h = mix(h ^ word)``, then the byte length, ``h = mix(h ^ length)``,
    where ``mix`` is splitmix64's finaliser; ``u = (h >> 11) / 2**53`` (exact in a double).
    Cheap enough to compute a million at a time with numpy, so replay draws in bulk what the
    live proxy draws per request."""
    data = key.encode()
    h = version_seed(policy_version)
    padded = data + b"\0" * (-len(data) % 8)
    for (word,) in _WORDS.iter_unpack(padded):
        h = _mix(h ^ word)
    h = _mix(h ^ len(data))
    return (h >> 11) * _TO_UNIT


_WORDS = struct.Struct("<Q")
_TO_UNIT = 2.0**-53
#: keys gathered into a byte matrix per step of :func:`draws` (bounded memory: rows x longest key)
DRAW_BATCH = 1 << 16


def draws(policy_version: str, keys: Iterable[str] | Any) -> np.ndarray:
    """:func:`draw` for many keys at once, as float64, bit-identical: ``keys`` as an Arrow
    string array (read in place, no Python object per key) or any iterable of str."""
    arr = _string_array(keys)
    out = np.empty(len(arr), np.float64)
    seed = np.uint64(version_seed(policy_version))
    for lo in range(0, len(arr), DRAW_BATCH):
        out[lo : lo + DRAW_BATCH] = _draw_batch(seed, arr.slice(lo, DRAW_BATCH))
    return out


def _string_array(keys: Iterable[str] | Any) -> pa.Array:
    """``keys`` as one Arrow ``string`` array without NULLs (a key is never NULL)."""
    import pyarrow as pa  # type: ignore[import-untyped]

    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks() if keys.num_chunks != 1 else keys.chunk(0)
    arr = keys if isinstance(keys, pa.Array) else pa.array(list(keys), pa.string())
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    if arr.null_count:
        raise ValueError("draws: a key is NULL")
    return arr


def _draw_batch(seed: np.uint64, arr: pa.Array) -> np.ndarray:
    """:func:`draws` of one slice of a string array, keys of one byte length at a time (a
    gateway's request ids are all one length: their bytes are then one block, read in place)."""
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], np.int32, n + 1, arr.offset * 4).astype(np.int64)
    data = np.frombuffer(arr.buffers()[2] or b"\0", np.uint8)
    lengths = np.diff(offsets)
    out = np.empty(n, np.float64)
    if n and lengths.min() == lengths.max():  # one length: the keys' bytes are contiguous, rows of it
        width = int(lengths[0])
        out[:] = _fold(seed, data[offsets[0] : offsets[-1]].reshape(n, width), width)
        return out
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        block = data[offsets[rows, None] + np.arange(length, dtype=np.int64)] if length else np.empty((len(rows), 0))
        out[rows] = _fold(seed, block, length)
    return out


def _fold(seed: np.uint64, block: np.ndarray, length: int) -> np.ndarray:
    """The draws of keys of ``length`` bytes each, given as the rows of a uint8 ``block``: the
    rows zero-padded to whole words, each word folded into the seed, then the length. In place
    over two arrays of the block's size (a batch of keys: no temporary per step)."""
    n = len(block)
    words = (length + 7) // 8
    padded = np.zeros((n, words * 8), np.uint8)
    padded[:, :length] = block
    h = np.full(n, seed, np.uint64)
    tmp = np.empty(n, np.uint64)
    as_words = padded.view("<u8")
    for j in range(words):
        h ^= as_words[:, j]
        _mix_into(h, tmp)
    h ^= np.uint64(length)
    _mix_into(h, tmp)
    h >>= np.uint64(11)
    out = h.astype(np.float64)
    out *= _TO_UNIT  # a power of two: exact, as (h >> 11) * 2**-53
    return out


def _mix_into(z: np.ndarray, tmp: np.ndarray) -> None:
    """:func:`_mix` of every word of a uint64 array, in place (``tmp``: scratch of its size;
    numpy's uint64 products wrap mod 2**64)."""
    for shift, mult in ((_S30, _U1), (_S27, _U2)):
        np.right_shift(z, shift, out=tmp)
        z ^= tmp
        z *= mult
    np.right_shift(z, _S31, out=tmp)
    z ^= tmp


_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_U1, _U2 = np.uint64(_M1), np.uint64(_M2)


# -- the first draw, kept for the rows it routed ----------------------------------------------
#: keys hashed per batch by :func:`draws_v1` (a few thousand Python strings alive at a time)
DRAW_V1_BATCH = 1 << 14


def draw_v1(policy_version: str, key: str) -> float:
    """The proxy's weighted draw until 2026-12-05 (``route_draw`` 1): blake2b-64 of
    ``version\\0key``, big-endian, over 2**64. Replay draws a logged row by the function that
    routed it, so a log written before the change replays its own weighted routes exactly."""
    h = hashlib.blake2b(f"{policy_version}\x00".encode(), digest_size=8)
    h.update(key.encode())
    return int.from_bytes(h.digest(), "big") / 2**64


def draws_v1(policy_version: str, keys: Iterable[str] | Any) -> np.ndarray:
    """:func:`draw_v1` for many keys (an Arrow string array or any iterable of str), bit-identical:
    the 64-bit digest rounded to the nearest double and scaled by 2**-64, as ``int / 2**64`` does.
    One blake2b per key (~0.27 CPU s per million): only the rows the first draw routed pay it."""
    arr = _string_array(keys)
    copy = hashlib.blake2b(f"{policy_version}\x00".encode(), digest_size=8).copy
    out = bytearray()
    for lo in range(0, len(arr), DRAW_V1_BATCH):
        digests = []
        for key in arr.slice(lo, DRAW_V1_BATCH).to_pylist():
            h = copy()
            h.update(key.encode())
            digests.append(h.digest())
        out += b"".join(digests)
    return np.frombuffer(out, ">u8").astype(np.float64) / 2.0**64


#: the weighted draw of each ``route_draw`` a log row may hold: (one key, many keys)
DRAWS: dict[int, tuple[Callable[[str, str], float], Callable[[str, Any], np.ndarray]]] = {
    ROUTE_DRAW_V1: (draw_v1, draws_v1),
    ROUTE_DRAW: (draw, draws),
}


def draw_function(route_draw: int) -> Callable[[str, str], float]:
    """The one-key draw a ``route_draw`` names; ``ValueError`` for one this release does not know
    (a row written by a later release: replayed with another draw it would differ silently)."""
    try:
        return DRAWS[route_draw][0]
    except KeyError:
        raise ValueError(f"route_draw {route_draw!r} is not a draw this release knows ({sorted(DRAWS)})") from None


def draws_by_row(policy_version: str, keys: Iterable[str] | Any, route_draws: np.ndarray | None = None) -> np.ndarray:
    """The draw of every key by its own row's draw (``route_draws``, one per key; None: all
    :data:`ROUTE_DRAW`). Each function hashes only its rows: a log of current rows pays nothing."""
    if route_draws is None:
        return draws(policy_version, keys)
    kinds = np.unique(route_draws).tolist()
    if kinds == [ROUTE_DRAW]:
        return draws(policy_version, keys)
    import pyarrow as pa  # type: ignore[import-untyped]

    arr = _string_array(keys)
    out = np.empty(len(arr), np.float64)
    for kind in kinds:
        draw_function(kind)  # an unknown one raises
        mine = route_draws == kind
        out[mine] = DRAWS[kind][1](policy_version, arr.filter(pa.array(mine)))
    return out


class UnknownRoute(KeyError):
    """The policy has no route for the model name (a ``KeyError`` that says which routes it has)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown route"


def route_spec(policy: Policy, route: str) -> Route:
    """``policy.routes[route]``, or :class:`UnknownRoute` naming the routes there are."""
    try:
        return policy.routes[route]
    except KeyError:
        known = ", ".join(sorted(policy.routes)) or "none"
        raise UnknownRoute(f"unknown model {route!r}: the policy has no such route (routes: {known})") from None


def plan_route(
    policy: Policy, route: str, request_id: str, ctx: RouteContext | None = None, route_draw: int = ROUTE_DRAW
) -> RoutePlan:
    """The ordered targets for ``request_id`` on ``route`` under ``policy``.

    ``ctx`` (see :func:`~.context.route_context`) feeds sticky draws, rules and rule
    functions; without it they see an empty context. ``route_draw``: the weighted draw
    (:data:`DRAWS`; replay passes a logged row's own). Raises :class:`UnknownRoute` (a
    ``KeyError``) for an unknown route.
    """
    spec = route_spec(policy, route)
    if ctx is None:
        ctx = RouteContext(request_id, route)
    notes: list[str] = []
    func = policy._functions.get(route)
    if func is not None:
        chosen, note = _call_rule(func[0], spec, ctx)
        if chosen is not None:
            return RoutePlan(route, chosen, note)
        notes.append(note)
    targets: Sequence[Target] = spec.targets
    if spec.rules:
        index, why = first_match(spec.rules, ctx)
        if index is not None:
            targets = spec.rules[index].targets
        notes.append(why)
    targets_, reason = _order(policy.version, spec, targets, request_id, ctx, route_draw)
    return RoutePlan(route, targets_, " | ".join([*notes, reason]))


def _order(
    version: str, spec: Route, targets: Sequence[Target], request_id: str, ctx: RouteContext,
    route_draw: int = ROUTE_DRAW,
) -> tuple[tuple[str, ...], str]:  # fmt: skip
    if len(targets) == 1:
        return (targets[0].id,), "single target"
    if targets[0].weight is None:
        return tuple(t.id for t in targets), "declared order (no weights)"
    key, sticky_note = request_id, ""
    if spec.sticky is not None:
        value = sticky_value(spec.sticky, ctx)
        if value is not None:
            key, sticky_note = f"{spec.sticky}={value}", f"sticky {spec.sticky}={value}: "
        else:
            sticky_note = f"sticky {spec.sticky} absent, drawn by request id: "
    u = draw_function(route_draw)(version, key)
    index = _weighted_index(targets, u)
    return _weighted_order(targets, index), sticky_note + _weighted_reason(targets, index, f"{u:.4f}")


def _weighted_order(targets: Sequence[Target], index: int) -> tuple[str, ...]:
    """The drawn target first, the others as fallbacks in their declared order."""
    return (targets[index].id, *(t.id for i, t in enumerate(targets) if i != index))


def _weighted_reason(targets: Sequence[Target], index: int, u_text: str) -> str:
    return f"weighted draw u={u_text}{_picked(targets)[index]}"


def _picked(targets: Sequence[Target]) -> list[str]:
    """What a weighted reason says after its draw, per target index."""
    total = sum(t.weight or 0.0 for t in targets)
    return [f" picked {t.id} (weight {t.weight:g} of {total:g}); rest in order" for t in targets]


def _weighted_reasons(targets: Sequence[Target], indices: np.ndarray, u_texts: np.ndarray) -> list[str]:
    """:func:`_weighted_reason` of many (target index, u text index) pairs (one concatenation each)."""
    picked, texts = _picked(targets), _u_texts()
    return [f"weighted draw u={texts[k]}{picked[i]}" for i, k in zip(indices.tolist(), u_texts.tolist(), strict=True)]


def sticky_value(sticky: str, ctx: RouteContext) -> str | None:
    """The value a sticky route hashes: ``user`` or ``metadata.<key>`` (None when absent)."""
    if sticky == "user":
        return ctx.user or None
    value = ctx.metadata.get(sticky.removeprefix("metadata."))
    return None if value is None or value == "" else str(value)


def _call_rule(func, spec: Route, ctx: RouteContext) -> tuple[tuple[str, ...] | None, str]:  # type: ignore[no-untyped-def]
    """Run a rule function; (targets, reason) or (None, why it was not used)."""
    ref = spec.rule
    try:
        out = func(replace(ctx, targets=tuple(t.id for t in spec.all_targets)))
    except Exception as exc:  # the contract: any failure falls back to the declared targets
        log.warning("rule %s raised %s for %s; declared targets used", ref, exc, ctx.request_id)
        return None, f"rule function {ref} raised {type(exc).__name__}: {exc}; fell back to declared targets"
    ids, why = (out.targets, out.reason) if isinstance(out, RouteChoice) else (out, "")
    known = {t.id for t in spec.all_targets}
    if isinstance(ids, str) or not isinstance(ids, (list, tuple)) or not ids:
        problem = f"returned {type(ids).__name__} {ids!r}, not a non-empty list of target ids"
    else:
        unknown = [i for i in ids if i not in known]
        problem = f"returned unknown target(s) {unknown}" if unknown else ""
    if problem:
        log.warning("rule %s %s for %s; declared targets used", ref, problem, ctx.request_id)
        return None, f"rule function {ref} {problem}; fell back to declared targets"
    chosen = tuple(dict.fromkeys(str(i) for i in ids))
    return chosen, f"rule function {ref} chose {list(chosen)}" + (f": {why}" if why else "")


def _cumulative(targets: Sequence[Target]) -> tuple[float, list[int], list[float]]:
    """(total weight, positions of the positive weights, running sums over them): the draw
    ``u`` picks the first positive target whose running sum exceeds ``u * total``, else the
    last positive one (guards float rounding at u→1)."""
    total = sum(t.weight or 0.0 for t in targets)
    positions: list[int] = []
    sums: list[float] = []
    acc = 0.0
    for i, t in enumerate(targets):
        w = t.weight or 0.0
        if w > 0:
            acc += w
            positions.append(i)
            sums.append(acc)
    return total, positions or [0], sums or [0.0]


def _weighted_index(targets: Sequence[Target], u: float) -> int:
    total, positions, sums = _cumulative(targets)
    return positions[min(bisect_right(sums, u * total), len(positions) - 1)]


def _weighted_indices(targets: Sequence[Target], u: np.ndarray) -> np.ndarray:
    """:func:`_weighted_index` of every draw in ``u`` (the same running sums, searched in bulk)."""
    total, positions, sums = _cumulative(targets)
    at = np.minimum(np.searchsorted(np.asarray(sums), u * total, side="right"), len(positions) - 1)
    return np.asarray(positions, np.int32)[at]


# -- in bulk ---------------------------------------------------------------------------------
def draws_per_request(policy: Policy, route: str) -> bool:
    """Whether a route's order depends on the request at all (a weighted draw, or a rule,
    rule function or sticky key): the others give every request the same plan."""
    targets = policy.routes[route].targets
    return needs_context(policy, route) or (len(targets) > 1 and targets[0].weight is not None)


def needs_context(policy: Policy, route: str) -> bool:
    """Whether a route's plan reads the request (rules, a rule function, a sticky key); the
    others depend on the request id alone."""
    spec = policy.routes[route]
    return bool(spec.rules) or spec.sticky is not None or route in policy._functions


@dataclass(frozen=True)
class BulkPlans:
    """The plans of many requests on one route, interned: row ``i`` tries
    ``plans[codes[i]]`` for the reason ``reasons[reason_codes[i]]``."""

    route: str
    plans: list[tuple[str, ...]]
    codes: np.ndarray  # int32, one per request
    reasons: list[str]
    reason_codes: np.ndarray  # int32, one per request

    def plan(self, i: int) -> RoutePlan:
        """Row ``i`` as :func:`plan_route` returns it."""
        return RoutePlan(self.route, self.plans[self.codes[i]], self.reasons[self.reason_codes[i]])


def plan_routes(
    policy: Policy,
    route: str,
    request_ids: Sequence[str] | Any,
    contexts: Sequence[RouteContext] | None = None,
    route_draws: np.ndarray | None = None,
) -> BulkPlans:
    """:func:`plan_route` for many requests on ``route`` at once: ``result.plan(i) ==
    plan_route(policy, route, request_ids[i], contexts[i], route_draws[i])``. A route that reads
    the request (:func:`needs_context`) is planned row by row through :func:`plan_route`
    (``request_ids`` as str); the others draw in bulk (:func:`draws_by_row`, the same running
    sums as the live pick; ``request_ids`` may be an Arrow string array). ``route_draws``: each
    request's draw (None: all :data:`ROUTE_DRAW`). Raises ``KeyError`` for an unknown route."""
    spec = route_spec(policy, route)
    n = len(request_ids)
    if needs_context(policy, route):
        ctxs: Sequence[RouteContext | None] = contexts if contexts is not None else [None] * n
        kinds = route_draws.tolist() if route_draws is not None else [ROUTE_DRAW] * n
        return _interned(route, [plan_route(policy, route, rid, c, k)
                                 for rid, c, k in zip(request_ids, ctxs, kinds, strict=True)])  # fmt: skip
    zeros = np.zeros(n, np.int32)
    targets = spec.targets
    if not draws_per_request(policy, route):  # the order does not depend on the request
        order, reason = _order(policy.version, spec, targets, "", RouteContext("", route))
        return BulkPlans(route, [order], zeros, [reason], zeros)
    return weighted_plans(route, targets, weighted_codes(policy.version, targets, request_ids, route_draws))


def weighted_codes(
    policy_version: str, targets: Sequence[Target], keys: Iterable[str] | Any, route_draws: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """The weighted draw of every key coded as ``index * len(_u_texts()) + k`` (int32): ``index``
    the target it picks (:func:`_weighted_indices`), ``k`` its reason's text (:func:`_u_text_index`).
    Drawn :data:`DRAW_BATCH` keys at a time, so the draws and their temporaries are a batch's
    (written into ``out`` when given: one int32 per key is all a million keys leave behind)."""
    arr = _string_array(keys)
    n = len(arr)
    out = np.empty(n, np.int32) if out is None else out
    width = len(_u_texts())
    for lo in range(0, n, DRAW_BATCH):
        kinds = route_draws[lo : lo + DRAW_BATCH] if route_draws is not None else None
        u = draws_by_row(policy_version, arr.slice(lo, DRAW_BATCH), kinds)
        code = _weighted_indices(targets, u)
        code *= width
        code += _u_text_index(u)
        out[lo : lo + len(u)] = code
    return out


def weighted_plans(route: str, targets: Sequence[Target], codes: np.ndarray) -> BulkPlans:
    """The :class:`BulkPlans` of weighted draws coded by :func:`weighted_codes`: a plan per
    target, a reason per (target, draw text) that occurs. ``codes`` becomes the plans' codes
    (each target's index, in place: no second array of a million rows)."""
    width = len(_u_texts())
    used = np.flatnonzero(np.bincount(codes, minlength=len(targets) * width))
    remap = np.full(len(targets) * width, -1, np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    reasons = _weighted_reasons(targets, used // width, used % width)
    plans = [_weighted_order(targets, i) for i in range(len(targets))]
    reason_codes = remap[codes]
    codes //= width
    return BulkPlans(route, plans, codes, reasons, reason_codes)


def _interned(route: str, plans: list[RoutePlan]) -> BulkPlans:
    by_plan: dict[tuple[str, ...], int] = {}
    by_reason: dict[str, int] = {}
    codes = [by_plan.setdefault(p.targets, len(by_plan)) for p in plans]
    reason_codes = [by_reason.setdefault(p.reason, len(by_reason)) for p in plans]
    return BulkPlans(route, list(by_plan), np.asarray(codes, np.int32), list(by_reason),
                     np.asarray(reason_codes, np.int32))  # fmt: skip


_U_TEXTS: list[str] = []


def _u_texts() -> list[str]:
    """``f"{u:.4f}"`` for u = 0.0000 … 1.0000 (how a reason writes its draw)."""
    if not _U_TEXTS:
        _U_TEXTS.extend(f"{k / 1e4:.4f}" for k in range(10_001))
    return _U_TEXTS


def _u_text_index(u: np.ndarray) -> np.ndarray:
    """k such that ``f"{u:.4f}" == _u_texts()[k]`` for every draw: u x 10^4 rounded, and
    formatted by Python where the product lies too close to a half for its rounding to be sure."""
    scaled = u * 1e4
    k = np.rint(scaled).astype(np.int64)
    for j in np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6):
        k[j] = int(f"{u[j]:.4f}".replace(".", ""))
    return k


# -- replay face ----------------------------------------------------------------------------
ROUTABLE_ERRORS = frozenset({"model_not_found"})
UNKNOWN_ROUTE = "unknown model (no such route)"


def routed_live(plan: list[str] | None, error_type: str | None, origin: str | None = None) -> bool:
    """Whether the live proxy reached the routing decision for a logged request.

    Requests rejected before routing for reasons that are not the policy's (malformed JSON,
    a schema error, a body over the limit, a client that left) have no routing decision
    live or in replay. An unknown model *is* the policy's decision: a candidate that adds
    the route would route it. A row ``llmgw import`` wrote (``origin``) was served by another
    system, which routed it whether or not its export names the target.
    """
    return plan is not None or error_type in ROUTABLE_ERRORS or origin is not None


def replay_routing(
    policy: Policy,
    request_id: str,
    route: str | None,
    logged_plan: list[str] | None,
    error_type: str | None,
    ctx: RouteContext | None = None,
    origin: str | None = None,
    route_draw: int = ROUTE_DRAW,
) -> RoutePlan | None:
    """The routing decision ``policy`` makes for one logged request (None: not routed), drawn
    by the row's ``route_draw``."""
    if not routed_live(logged_plan, error_type, origin) or route is None:
        return None
    if route not in policy.routes:
        return RoutePlan(route, (), UNKNOWN_ROUTE)
    return plan_route(policy, route, request_id, ctx, route_draw)


__all__ = [
    "DRAWS", "ROUTE_DRAW", "ROUTE_DRAW_V1", "BulkPlans", "RoutePlan", "draw", "draw_function", "draw_v1", "draws",
    "draws_by_row", "draws_per_request", "draws_v1", "needs_context", "plan_route", "plan_routes",
    "replay_routing", "route_context", "routed_live", "sticky_value",
]  # fmt: skip
