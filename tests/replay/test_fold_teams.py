"""The compiled fold's cache teams (``fold_cache_inputs._teams``, streamed from the log's metadata
batch by batch) equal the cache's own rule (``cache_stage._team`` of each row's metadata), for the
window's rows and the warm rows appended after them, on a real log whose segments hold rows out of
time order (the scan's order is not the window's)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter
from llmgw_kernel.replay.cache_stage import _team
from llmgw_kernel.replay.fold_cache_inputs import _teams
from llmgw_kernel.replay.fold_codes import Cols
from llmgw_kernel.replay.window import load_window

T0 = 1_790_000_000.0
#: metadata a client may send: plain teams, teams that are not strings, escapes, no team at all
METADATA = [
    {"team": "search"}, {"team": "ads", "session": "s1"}, {"team": 7}, {"team": 2.5}, {"team": True},
    {"team": None}, {"team": {"name": "x"}}, {"team": ["a"]}, {"team": 'quo"te'}, {"team": "back\\slash"},
    {"team": "é-ünï"}, {"team": ""}, {"user": "u"}, {}, None, {"nested": {"team": "not this"}},
]  # fmt: skip


def _record(i: int, at: float) -> RequestRecord:
    rec = RequestRecord(f"req_{i:05d}", at, "chat.completions", "openai")
    rec.route = "chat"
    rec.metadata = METADATA[i % len(METADATA)]
    rec.outcome, rec.status = "ok", 200
    return rec


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~600 rows in 6 segments, the later ones holding earlier times."""
    root = tmp_path_factory.mktemp("teams")
    writer = LogWriter(root, flush_ms=3_600_000, journal=False)
    order = list(range(600))
    random.Random(3).shuffle(order)
    for k in range(6):
        for i in order[k * 100 : (k + 1) * 100]:
            writer.append(_record(i, T0 + i))
        writer.flush()
    writer.close()
    return root


def test_teams_equal_the_caches_rule_for_window_and_warm_rows(log_dir: Path) -> None:
    window = load_window(log_dir, since=_iso(T0 + 200))
    warm = load_window(log_dir, until=_iso(T0 + 200))
    assert len(window) == 400 and len(warm) == 200
    codes, values = _teams(Cols(window, warm))
    got = [values[c] if c >= 0 else None for c in codes.tolist()]
    want = [_team(m) for m in window["metadata"] + warm["metadata"]]
    assert got == want
    assert {"search", "ads", "7", "2.5", "True", 'quo"te', "back\\slash", "é-ünï", ""} <= set(want)  # the cases ran


def test_teams_without_warm_rows_and_of_an_empty_window(log_dir: Path) -> None:
    window = load_window(log_dir)
    codes, values = _teams(Cols(window, None))
    assert [values[c] if c >= 0 else None for c in codes.tolist()] == [_team(m) for m in window["metadata"]]
    empty = load_window(log_dir, since=_iso(T0 + 10_000))
    codes, values = _teams(Cols(empty, None))
    assert len(codes) == 0 and values == []


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat()
