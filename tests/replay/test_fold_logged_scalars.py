"""The scalar columns the log writer makes for replay's exact cache (``cache_team``, ``exact_key``:
``log.record.replay_scalars``) hold what replay derives from the row's JSON, and the compiled fold
reads them instead of the bodies and metadata (issue 11: a full replay's CPU) — with the same
decisions; a log written before the columns (or mixing such segments) keeps the JSON path.

Logs are written through the real ``LogWriter``: records by hand (teams of every kind, bodies
that are not objects, rows refused before the cache) and ``benchmarks/replay_scale.py``'s
synthetic log under its live policy (a run-out budget refuses part of it: those rows never
reached a cache live and are keyed from their bodies)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pytest

from llmgw_kernel import load_policy, replay
from llmgw_kernel.log.reader import open_log
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter
from llmgw_kernel.replay import _state_before, fold_cache_inputs, load_window
from llmgw_kernel.replay import window as window_mod
from llmgw_kernel.replay.cache_stage import _team
from llmgw_kernel.replay.fold import Composer
from llmgw_kernel.replay.fold_cache_inputs import NEVER_CACHED, _key_from_body, _teams
from llmgw_kernel.replay.fold_codes import Cols
from llmgw_kernel.replay.fold_inputs import inputs
from llmgw_kernel.replay.stages import decide

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402

T0 = 1_790_000_000.0
METADATA = [{"team": "search"}, {"team": "ads", "s": 1}, {"team": ""}, {"team": None}, {"user": "u"}, {}, None,
            {"team": 'quo"te'}, {"team": "é\\x"}]  # fmt: skip
ODD_METADATA = [{"team": 7}, {"team": 2.5}, {"team": True}, {"team": {"name": "x"}}]
BODIES = [b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}',
          b'{"messages": [{"content": "hi", "role": "user"}], "model": "chat", "metadata": {"a": 1}}',
          b'[1, 2]', b'not json', b'{"unparsed": "x"}', b'']  # fmt: skip


def _record(i: int, metadata: list[Any]) -> RequestRecord:
    rec = RequestRecord(f"req_{i:05d}", T0 + i, "chat.completions", "openai")
    rec.route = ("chat", "other", None)[i % 3]
    rec.metadata = metadata[i % len(metadata)]
    rec.request_raw = BODIES[i % len(BODIES)]
    rec.body_mode = ("full", "redacted", "hashed", "none")[i % 4]
    rec.outcome, rec.status = "ok", 200
    if i % 5 == 0:  # the cache saw it live: no key made from the body
        rec.cache, rec.cache_key = "miss", f"k{i}"
    elif i % 5 == 1:  # refused before the cache
        rec.admission, rec.outcome, rec.status = "budget_exceeded", "client_error", 429
    elif i % 5 == 2:  # a key logged without an outcome (bodies: none drops it from the row)
        rec.cache_key = f"k{i}"
    return rec


def _write(root: Path, n: int, metadata: list[Any], start: int = 0) -> Path:
    writer = LogWriter(root, flush_ms=3_600_000, journal=False)
    for i in range(start, start + n):
        writer.append(_record(i, metadata))
    writer.flush()
    writer.close()
    return root


def test_the_scalars_hold_what_replay_derives_from_the_logged_json(tmp_path: Path) -> None:
    root = _write(tmp_path / "log", 360, METADATA + ODD_METADATA)
    con = open_log(str(root))
    rows = con.sql(
        "SELECT route, metadata, request_body, cache, cache_key, cache_team, exact_key FROM requests"
    ).fetchall()
    assert len(rows) == 360
    seen_keys = set()
    for route, meta, body, cache, cache_key, cache_team, key in rows:
        team = _team(meta)
        if cache_team is None:  # not a string: replay reads the metadata
            assert isinstance((orjson.loads(meta) or {}).get("team"), (int, float, bool, dict)), meta
        else:
            assert (cache_team or None) == (team or None), (meta, cache_team)
        if cache is None and cache_key is None:
            assert key is not None
            assert (key or None) == _key_from_body(route or "", body), (route, body, key)
            seen_keys.add(bool(key))
        else:
            assert key is None
    assert seen_keys == {True, False}  # keyed bodies and bodies that make no key both ran


def _inputs_both_ways(window: Any, warm: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """(namespace text of each row's team, key of each row) via the scalars, then via the JSON."""

    def read() -> tuple[list[Any], list[Any]]:
        cols = Cols(window, warm)
        codes, values = _teams(cols)
        teams = [(values[c] if c >= 0 else None) or None for c in codes.tolist()]
        route_code, routes = cols.codes("route", both=True)
        kc, kv = fold_cache_inputs._keys(cols, np.ones(cols.m, np.bool_), route_code, routes)
        return teams, [kv[c] if c >= 0 else None for c in kc.tolist()]

    fast = read()
    monkeypatch.setattr(fold_cache_inputs, "_in_log", lambda w, name: False)
    slow = read()
    return fast, slow


def test_teams_and_keys_from_the_scalars_equal_the_json_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _write(tmp_path / "log", 300, METADATA)
    at = datetime.fromtimestamp(T0 + 100, UTC).isoformat()
    window, warm = load_window(str(root), since=at), load_window(str(root), until=at)
    assert len(window) and len(warm)
    fast, slow = _inputs_both_ways(window, warm, monkeypatch)
    assert fast == slow
    assert {"search", "ads", 'quo"te', "é\\x"} <= set(fast[0]) and None in fast[0]
    assert any(k is not None for k in fast[1])


def _old_segment(root: Path) -> None:
    """Rewrite the log's first segment with rows as a release before the columns wrote it (without them)."""
    seg = next(s for s in sorted(root.rglob("*.parquet")) if duckdb.sql(f"SELECT count(*) FROM '{s}'").fetchall()[0][0])
    tmp = seg.with_name("old.tmp")
    duckdb.sql(
        f"COPY (SELECT * EXCLUDE (cache_team, exact_key) FROM read_parquet('{seg}')) TO '{tmp}' (FORMAT parquet)"
    )
    tmp.replace(seg)


def test_a_log_mixing_segments_from_before_the_columns_reads_the_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "log"
    _write(root, 150, METADATA)
    _old_segment(root)
    _write(root, 150, METADATA, start=150)
    window = load_window(str(root))
    con = open_log(str(root))
    assert con.sql("SELECT count(*) FROM requests WHERE cache_team IS NULL").fetchall()[0][0] == 150
    fast, slow = _inputs_both_ways(window, None, monkeypatch)
    assert fast == slow


@pytest.fixture(scope="module")
def scale_log(scale_log_6000: Path) -> Path:
    """replay_scale.generate(6_000): built once per session (tests/conftest.py), only read here."""
    return scale_log_6000


def _composer(data_dir: Path) -> Composer:
    pol = load_policy(replay_scale.policy_doc("live"))
    con = open_log(str(data_dir))
    window = load_window(con)
    history, start, warm = _state_before(pol, con, window, None)
    c = decide(pol, window, history, start, warm, fold=False).composer
    assert c is not None
    return c


def test_the_fold_reads_no_body_and_no_metadata_from_a_log_with_the_columns(
    scale_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the view (a window read through the segment cache reads the columns from it:
    tests/replay/test_segment_cache_fold.py)."""
    pytest.importorskip("numba")
    monkeypatch.setattr(window_mod, "CACHE", False)
    c = _composer(scale_log)
    log: Any = c.window._log
    seen: list[list[str]] = []
    scan, batches = log.scan, log.batches

    def spied_scan(names: list[str], where: str | None = None) -> Any:
        seen.append([*names, str(where)])
        return scan(names, where)

    def spied_batches(names: list[str], rows: int = 65_536, where: str | None = None) -> Any:
        seen.append([*names, str(where)])
        return batches(names, rows, where)

    log.scan, log.batches = spied_scan, spied_batches
    assert inputs(c) is not None
    assert not [s for s in seen if "request_body" in s or "_team_json" in s or "metadata" in s], seen
    assert ["request_id", "ts", "exact_key", NEVER_CACHED] in seen, seen  # the refused rows' keys, as logged
    assert ["request_id", "_cache_team", "None"] in seen, seen


def test_replay_decides_alike_from_the_scalars_and_from_the_json(
    scale_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("numba")
    policy = replay_scale.policy_doc("live")
    fast = replay(policy, str(scale_log))
    monkeypatch.setattr(fold_cache_inputs, "_in_log", lambda w, name: False)
    slow = replay(policy, str(scale_log))
    assert fast.summary == slow.summary
    assert fast.decisions.equals(slow.decisions)
    assert fast.summary["differs_from_log"]["any"] == 0
    refused = int(fast.decisions["replay_admission"].isin(["budget_exceeded", "rate_limited"]).sum())
    assert refused > 0  # rows keyed from their bodies (refused before the cache) ran
