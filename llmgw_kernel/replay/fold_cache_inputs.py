"""The exact cache's arrays for the compiled fold (:mod:`.fold_inputs`): one code per (route,
scoped key), one store per route, the TTL and size bound of the settings that read or store,
and what bypasses the cache — each rule called once per distinct value of what it reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from ..cache.exact import SHARED_UNAVAILABLE
from ..decisions import cache as decide
from .fold_codes import ROWS_MAX, Codes, Cols, factorize, ran_live
from .fold_semantic_inputs import semantic_arrays
from .window import release_memory

if TYPE_CHECKING:
    from .fold import Composer


def cache_arrays(
    c: Composer, cols: Cols, routed: np.ndarray, settings: list[Any], route_code: np.ndarray,
    route_values: list[Any], a: dict[str, np.ndarray],
) -> tuple[tuple[np.ndarray, list[str]], np.ndarray]:  # fmt: skip
    """Exact- and semantic-cache facts of every row (window rows, then warm rows numbered after
    them), as ``cache_stage.prepare`` makes them; returns (why each window row bypasses the cache,
    as a code into the reasons: -1 it does not; may read) of the window rows."""
    n = cols.n
    bypass, reasons, read, has_s, ns_code = _exact_arrays(c, cols, routed, settings, route_code, route_values, a)
    release_memory()  # the exact facts' temporaries, freed: the semantic facts are made over them
    semantic_arrays(c, cols, has_s, settings, route_code, ns_code, a)
    _without_semantic_rows(a)
    return (bypass[:n], reasons), read[:n]


def _exact_arrays(
    c: Composer, cols: Cols, routed: np.ndarray, settings: list[Any], route_code: np.ndarray,
    route_values: list[Any], a: dict[str, np.ndarray],
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The exact cache's facts into ``a``; returns (the bypass code of every row, the reasons; may
    read; has a cache setting; namespace code) — what the semantic facts read. Its temporaries
    (~20 row-sized arrays) are freed when it returns, before the semantic facts are made."""
    n, m = cols.n, cols.m
    cached = np.array([s is not None for s in settings] + [False], np.bool_)
    has_s = cached[route_code] & cols.eq("endpoint", "chat.completions", both=True)
    exact = np.array([s is not None and s.exact is not None for s in settings] + [False], np.bool_)[route_code]
    control_code, controls = cols.codes("cache_control", both=True)
    read = np.array([v != decide.NO_CACHE for v in controls] + [True], np.bool_)[control_code]
    if "cache_reason" in cols.w:  # live, Redis did not answer the lookup: it found nothing
        read[:n] &= ~cols.eq("cache_reason", SHARED_UNAVAILABLE)
    bypass, reasons = _bypass(cols, has_s, settings, route_code, control_code, controls)
    key_code, key_values = _keys(cols, has_s, route_code, route_values)
    ns_code, ns_names = _namespaces(cols, has_s, settings, route_code, route_values)
    release_memory()  # the keys' and teams' Arrow and DuckDB buffers, freed: the arrays below are made over them
    skey = _scoped(has_s & exact & (key_code >= 0), ns_code, ns_names, route_code, route_values, key_code, key_values)
    scoped_ok = has_s & (key_code >= 0)  # a scoped key exists (exact or not)
    reads = has_s & exact & read & (key_code >= 0)
    stores = Codes()
    store_table = np.array([stores.code(r or "") for r in route_values] + [0], np.int64)
    # int32: a store never holds more entries than the rows (ROWS_MAX), so a bound clipped to it
    # evicts the same (the policy's bound is 10M)
    max_table = np.array([min(s.exact.max_entries, ROWS_MAX) if s is not None and s.exact else 0 for s in settings]
                         + [0], np.int32)  # fmt: skip
    ttl_table = np.array([s.exact.ttl_s if s is not None and s.exact else 0.0 for s in settings] + [0.0])
    ok = cols.eq("outcome", "ok", both=True)
    live_hit = cols.eq("cache", "hit", both=True) | cols.eq("cache", "semantic-hit", both=True)
    ts, end, stored = cols.num("ts", True), cols.num("ts_end", True), cols.num("cache_stored_ts", True)
    # a live miss stored nowhere (shared cache unreachable, answer over its size cap) fills no cache here either
    unstored = cols.eq("cache", "miss", both=True) & np.isnan(stored)
    storable = has_s & ((ok & ~unstored) | live_hit)
    entry_at = np.where(storable, np.where(np.isnan(stored), np.where(np.isnan(end), ts, end), stored), np.nan)
    with_exact = skey >= 0
    a["skey"] = skey.astype(np.int32)  # codes and rows are int32 (fold_inputs.ROWS_MAX)
    a["store_of"] = np.where(with_exact, store_table[route_code], -1).astype(np.int32)
    a["max_e"] = np.where(with_exact, max_table[route_code], np.int32(0))
    a["lkey"] = np.where(reads, skey, -1)[:n].astype(np.int32)
    a["ttl"] = np.where(reads, ttl_table[route_code], 0.0)
    a["entry_at"] = entry_at
    rid_code = cols.ids("request_id", both=True)
    last = np.full(int(rid_code.max(initial=-1)) + 1, -1, np.int64)  # the row a request id names: its last
    np.maximum.at(last, rid_code, np.arange(m, dtype=np.int64))
    a["canon"] = last[rid_code].astype(np.int32)
    attempts = cols.arrow("attempts")
    no_attempts = (
        np.ones(n, np.bool_) if pa.types.is_null(attempts.type)
        else pc.fill_null(pc.list_value_length(attempts), 0).to_numpy(zero_copy_only=False) == 0
    )  # fmt: skip
    never = cols.eq("outcome", "client_error") & (cols.codes("cache")[0] < 0) & no_attempts
    a["reached"] = has_s[:n] & routed & ~never
    a["bypass"] = bypass[:n] >= 0
    a["ts"] = ts[:n]
    a["flush_at"] = cols.num("cache_lookup_ts")
    a["ran_live"] = routed & ran_live(cols) & ~live_hit[:n]
    a["hit_logged"] = cols.eq("cache", "hit")
    a["sem_logged"] = cols.eq("cache", "semantic-hit")
    a["sem_read"] = read[:n]
    warm = np.flatnonzero(storable & ~np.isnan(stored) & scoped_ok)
    a["warm"] = warm[warm >= n].astype(np.int64)
    a["n_keys"] = np.array([max(int(skey.max(initial=-1)) + 1, 1)], np.int64)
    a["n_stores"] = np.array([max(len(stores), 1)], np.int64)
    a["hit_s"] = np.array([c.hit_ms["hit"] / 1000, c.hit_ms["semantic-hit"] / 1000])
    return bypass, reasons, read, has_s, ns_code


#: the per-row semantic facts the kernels read at a semantic row only (``s_on``: ``fold_semantic``'s
#: ``sem_add``/``sem_lookup``, ``cache_sweep_kernel``'s, ``cache_sweep_inputs``' lists of its members)
SEMANTIC_PER_ROW = ("s_store", "s_group", "s_mat", "s_vi", "s_feat", "s_max_e", "s_ttl", "s_thr", "s_verify")


def _without_semantic_rows(a: dict[str, np.ndarray]) -> None:
    """With no semantic row, each per-row semantic fact as one element of its type (the kernels'
    signatures unchanged; no row reads one): ~61 MB of zeros at 1M rows less, under the limit
    groups, the serving facts and the kernel — resident in a process's second replay, whose
    ``np.zeros`` reuse freed heap memory and write it (a first replay's stay untouched pages)."""
    if a["s_on"].any():
        return
    for k in SEMANTIC_PER_ROW:
        a[k] = a[k][:1].copy()


def _bypass(
    cols: Cols, rows: np.ndarray, settings: list[Any], route_code: np.ndarray, control_code: np.ndarray,
    controls: list[Any],
) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """Why each row bypasses the cache, as a code into the returned reasons (-1: it does not),
    per distinct (route, temperature, control): a few reasons, not a pointer per row."""
    out = np.full(cols.m, -1, np.int32)
    idx = np.flatnonzero(rows)
    if not len(idx):
        return out, []
    temp = cols.num("temperature", True)
    code, first = factorize(route_code[idx], temp[idx], control_code[idx])
    reasons = []
    for i in idx[first].tolist():
        t = temp[i]
        body = {} if t != t else {"temperature": float(t)}
        control = controls[int(control_code[i])] if control_code[i] >= 0 else None
        reasons.append(decide.bypass_reason(settings[int(route_code[i])], body, control))
    index: dict[str, int] = {}
    table = np.array([-1 if r is None else index.setdefault(r, len(index)) for r in reasons], np.int32)
    out[idx] = table[code]
    return out, list(index)


#: the rows that never reached a cache live (no logged cache decision, no logged key): the rows
#: whose key replay makes from the logged body, selected by DuckDB in the scan of the bodies
NEVER_CACHED = "cache IS NULL AND cache_key IS NULL"


def _keys(cols: Cols, rows: np.ndarray, route_code: np.ndarray, route_values: list[Any]) -> tuple[np.ndarray, list]:
    """Each row's exact key (code into the returned keys; -1: none): the logged one, else, for a
    window row of ``rows`` that never reached a cache live (:data:`NEVER_CACHED`), the key of
    its logged body (``bodies: full``)."""
    code, values = cols.codes("cache_key", True)
    code, values = code.copy(), list(values)
    if "request_body" not in cols.w or not rows[: cols.n].any():
        return code, values
    logged = _logged_keys(cols, rows)  # the writer's keys of these rows' bodies (log.record.replay_scalars)
    if logged is not None:
        missing, keys = logged
        if len(missing):
            enc = keys.dictionary_encode()
            index = {k: j for j, k in enumerate(values)}
            table = np.array([index.setdefault(k, len(index)) if k else -1 for k in enc.dictionary.to_pylist()]
                             + [-1], np.int64)  # fmt: skip
            values = list(index)
            code[missing] = table[pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)]
        return code, values
    missing, raw_bodies = cols.w.where("request_body", NEVER_CACHED)  # only these rows' bodies are read
    keep = rows[missing]
    missing = missing[keep]
    if len(missing):  # coded, and parsed once per distinct (route, body)
        enc = raw_bodies.filter(pa.array(keep)).dictionary_encode()
        body_code = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        bodies = enc.dictionary.to_pylist()
        pair, first = factorize(route_code[missing], body_code)
        got = []
        for j in first.tolist():
            i = int(missing[j])
            raw = bodies[int(body_code[j])] if body_code[j] >= 0 else None
            route = route_values[int(route_code[i])] if route_code[i] >= 0 else None
            got.append(_key_from_body(route or "", raw))
        index = {k: j for j, k in enumerate(values)}
        table = np.array([-1 if k is None else index.setdefault(k, len(index)) for k in got], np.int64)
        values = list(index)
        code[missing] = table[pair]
    return code, values


def _logged_keys(cols: Cols, rows: np.ndarray) -> tuple[np.ndarray, pa.Array] | None:
    """(the window rows of ``rows`` that never reached a cache live, ascending; the exact key the
    log writer made of each one's body, '' for none) from the log's ``exact_key`` column — no body
    read or parsed. None when some such row has no ``exact_key`` (written before the column: the
    keys are made from the bodies, every row's, as before) or the window is not read from a log.
    A window read through the segment cache reads the column from it (no Parquet page decoded)
    and tells :data:`NEVER_CACHED`'s rows by the codes it holds; else DuckDB selects them."""
    window = cols.w
    if not _in_log(window, "exact_key"):
        return None
    column = window.logged("exact_key")
    if column is not None:  # NEVER_CACHED by the held codes: NULL is code -1
        missing = np.flatnonzero((cols.codes("cache")[0] < 0) & (cols.codes("cache_key")[0] < 0))
        keys = column.take(pa.array(missing))
        keys = keys.dictionary_decode() if pa.types.is_dictionary(keys.type) else keys
    else:
        missing, keys = window.where("exact_key", NEVER_CACHED)
    keep = rows[missing]
    keys = keys.filter(pa.array(keep))
    if keys.null_count:
        return None
    return missing[keep], keys


def _in_log(window: Any, name: str) -> bool:
    """Column ``name`` is in the log ``window`` is read from (a log written before it has none; a
    window given as columns reads no log)."""
    log = getattr(window, "_log", None)
    return log is not None and name in log.present


def _key_from_body(route: str, raw: Any) -> str | None:
    from .columns import json_value

    body = json_value(raw)
    if not isinstance(body, dict) or "unparsed" in body:
        return None
    return decide.exact_key(route, body)


def _namespaces(
    cols: Cols, rows: np.ndarray, settings: list[Any], route_code: np.ndarray, route_values: list[Any]
) -> tuple[np.ndarray, list[str]]:
    """Each of ``rows``' cache namespace (``decide.namespace``, once per distinct (route, key,
    team, header)) as a code into the returned texts (-1: not one of ``rows``)."""
    out = np.full(cols.m, -1, np.int64)
    idx = np.flatnonzero(rows)
    if not len(idx):
        return out, []
    kid_code, kids = cols.codes("key_id", True)
    hdr_code, hdrs = cols.codes("cache_ns_header", True)
    team_code, teams = _teams(cols)
    ns_of, first = factorize(route_code[idx], kid_code[idx], team_code[idx], hdr_code[idx])
    names = []
    for i in idx[first].tolist():
        r = route_values[int(route_code[i])] or ""
        kid = kids[int(kid_code[i])] if kid_code[i] >= 0 else None
        team = teams[int(team_code[i])] if team_code[i] >= 0 else None
        hdr = hdrs[int(hdr_code[i])] if hdr_code[i] >= 0 else None
        names.append(decide.namespace(settings[int(route_code[i])], r, kid, team, hdr))
    # coded by their text: other tenant parts may make the same namespace
    index: dict[str, int] = {}
    out[idx] = np.array([index.setdefault(t, len(index)) for t in names], np.int64)[ns_of]
    return out, list(index)


def _scoped(
    rows: np.ndarray, ns_code: np.ndarray, names: list[str], route_code: np.ndarray, route_values: list[Any],
    key_code: np.ndarray, key_values: list[Any],
) -> np.ndarray:  # fmt: skip
    """The code of each row's (route, scoped key) in its exact store (-1: none): one entry per
    (route, namespace, key) — the scoped key is their SHA-256, so it is told apart by them."""
    out = np.full(len(rows), -1, np.int64)
    idx = np.flatnonzero(rows)
    if not len(idx):
        return out
    if any("\x00" in t for t in names) or any("\x00" in k for k in key_values if k):  # joins ambiguously
        return _scoped_by_text(out, idx, names, ns_code, key_code, key_values, route_code, route_values)
    code, _ = factorize(route_code[idx], ns_code[idx], key_code[idx])  # per store (route), as the live stores
    out[idx] = code
    return out


def _scoped_by_text(
    out: np.ndarray, idx: np.ndarray, names: list[str], ns_code: np.ndarray, key_code: np.ndarray,
    key_values: list[Any], route_code: np.ndarray, route_values: list[Any],
) -> np.ndarray:  # fmt: skip
    """:func:`_scoped` through the scoped keys' text (namespaces or keys holding a NUL)."""
    pair, first = factorize(route_code[idx], ns_code[idx], key_code[idx])
    keys = Codes()
    table = []
    for j in first.tolist():
        i = int(idx[j])
        route = route_values[int(route_code[i])] or ""
        table.append(keys.code((route, decide.scoped(names[int(ns_code[i])], key_values[int(key_code[i])]))))
    out[idx] = np.array(table, np.int64)[pair]
    return out


#: the ``team`` member of a row's metadata as JSON text (NULL: none, or the metadata is not JSON)
TEAM_JSON = "try(json_extract(metadata, '$.team'))"


def _teams(cols: Cols) -> tuple[np.ndarray, list[Any]]:
    """The team each row's metadata names (``cache_stage._team``): DuckDB's JSON path over the
    metadata, computed in the window's scan (:meth:`.window.Window.computed`: the metadata
    never comes into Arrow, only the teams' JSON text); a plain JSON string is unquoted here,
    any other value (a number, an escaped string, ...) goes through Python as ``str(value)``."""
    windows = [cols.w] if cols.warm is None else [cols.w, cols.warm]
    logged = [_logged_teams(w) for w in windows]
    if all(t is not None for t in logged):  # the log writer's (log.record.replay_scalars): no metadata read
        team = pa.concat_arrays(logged)
        team = pc.if_else(pc.equal(team, ""), pa.scalar(None, pa.string()), team) if len(team) else team
        enc = team.dictionary_encode()
        return pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()
    parts = [(w, _team_json(w)) for w in windows]
    raw = pa.concat_arrays([p for _, p in parts])
    if not len(raw):
        return np.full(0, -1, np.int64), []
    plain = pc.and_(pc.starts_with(raw, '"'), pc.invert(pc.match_substring(raw, "\\")))
    team = pc.if_else(plain, pc.utf8_slice_codeunits(raw, 1, -1), pa.scalar(None, pa.string()))
    odd = pc.and_(pc.invert(pc.fill_null(plain, False)), pc.not_equal(pc.fill_null(raw, "null"), "null"))
    odd_rows = np.flatnonzero(odd.to_numpy(zero_copy_only=False))
    if len(odd_rows):
        from .cache_stage import _team

        values = team.to_pylist()
        at = 0
        for window, part in parts:  # the odd rows' metadata, from the window (or warm rows) holding them
            mine = odd_rows[(odd_rows >= at) & (odd_rows < at + len(part))]
            for i, v in zip(mine.tolist(), window.take("metadata", mine - at).to_pylist(), strict=True):
                values[i] = _team(v)
            at += len(part)
        team = pa.array(values, pa.string())
    enc = team.dictionary_encode()
    return pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()


def _logged_teams(window: Any) -> pa.Array | None:
    """The ``cache_team`` column of ``window``'s rows ('' none) — None when the log has no such
    column or some row has none (written before it, or its team is not a string)."""
    if not len(window):
        return pa.array([], pa.string())
    if not _in_log(window, "cache_team"):
        return None
    got = window.logged("cache_team")  # through the segment cache, when the window was read through it
    if got is None:
        got = window.computed("_cache_team", "cache_team")
    got = got.dictionary_decode() if pa.types.is_dictionary(got.type) else got
    got = got.cast(pa.string())
    return None if got.null_count else got


def _team_json(window: Any) -> pa.Array:
    """:data:`TEAM_JSON` of each of ``window``'s rows, as text."""
    if not len(window):
        return pa.array([], pa.string())
    return window.computed("_team_json", TEAM_JSON).cast(pa.string())
