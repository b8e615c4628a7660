"""What the columnar replay cache (``replay/segment_cache.py``) costs a replay besides reading:
a cold replay writes each entry once, and a replay checks each column of an entry's file once.

A full replay scans the log several times (the window's first scan, then the composed fold's
columns in a few scans, then the writer's scalars): each scan that asked an entry for columns it
did not hold rewrote the whole entry with them (every column written, and its CRC computed, again),
and each scan checked the CRC of every column it read, ``request_id`` and ``ts`` in each.

The log is ``benchmarks/replay_scale.py``'s synthetic log, written through the real log writer.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from llmgw_kernel import replay
from llmgw_kernel.replay import segment_cache
from llmgw_kernel.replay import window as window_mod

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("segwrites") / "log"
    replay_scale.generate(d, 6_000, seed=11, chunk=600)  # 10 flushes: no merge
    return d


@pytest.fixture
def log(synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the synthetic log (the cache is written into it); every segment cached."""
    d = tmp_path / "log"
    shutil.copytree(synthetic, d)
    monkeypatch.setattr(segment_cache, "MIN_BYTES", 0)
    monkeypatch.delenv(segment_cache.ENV, raising=False)
    return d


def _replayed(policy: Path, log: Path, cache: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(window_mod, "CACHE", cache)
    try:
        return replay(policy, str(log))
    finally:
        monkeypatch.setattr(window_mod, "CACHE", True)


def test_a_cold_full_replay_writes_each_entry_once(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: Counter[str] = Counter()
    write = segment_cache._write

    def counted(path: Path, pieces: Any) -> None:
        writes[path.name] += 1
        write(path, pieces)

    monkeypatch.setattr(segment_cache, "_write", counted)
    policy = log / "policy-live.yaml"
    cold = _replayed(policy, log, True, monkeypatch)
    entries = sorted(p.name for p in (log / "replay-cache").glob("seg-*.arrow"))
    assert len(entries) >= 5, entries
    assert sorted(writes) == entries  # every entry written by the cold replay ...
    assert set(writes.values()) == {1}, writes  # ... once (before: 22 times each: this 6k-row window's
    # Python fold reads its columns a few at a time)
    writes.clear()
    warm = _replayed(policy, log, True, monkeypatch)
    assert not writes  # the warm replay finds every column it reads
    plain = _replayed(policy, log, False, monkeypatch)
    for got in (cold, warm):
        pd.testing.assert_frame_equal(got.decisions, plain.decisions, check_exact=True)
        assert got.summary == plain.summary


def test_a_replay_checks_each_column_of_an_entry_once(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = log / "policy-live.yaml"
    _replayed(policy, log, True, monkeypatch)  # builds the cache
    checked: Counter[tuple[str, int]] = Counter()  # (column's first buffer address, length): one column of one file
    crc = segment_cache._crc

    def counted(col: Any) -> int:
        first = next(b for b in col.chunks[0].buffers() if b is not None)
        checked[(first.address, first.size)] += 1
        return crc(col)

    monkeypatch.setattr(segment_cache, "_crc", counted)
    warm = _replayed(policy, log, True, monkeypatch)
    assert checked and max(checked.values()) == 1, checked.most_common(3)  # before: request_id and ts 23 times
    assert warm.summary["differs_from_log"]["any"] == 0


def test_a_file_replaced_after_its_check_is_checked_again(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo of checked columns is per file identity: an entry renamed over by another
    entry's file (damage copied in by hand) after the cache checked it is checked, and read
    from Parquet again — never a wrong answer."""
    policy = log / "policy-live.yaml"
    plain = _replayed(policy, log, False, monkeypatch)
    _replayed(policy, log, True, monkeypatch)  # builds the cache
    entries = sorted((log / "replay-cache").glob("seg-*.arrow"))
    cache = segment_cache.SegmentCache(log, log / "replay-cache")
    first = segment_cache._read(entries[0], ["request_id", "ts"], cache.sound)
    assert first and cache.sound
    shutil.copyfile(entries[1], entries[0].with_name(".tmp-copy"))
    (entries[0].with_name(".tmp-copy")).replace(entries[0])  # another file (inode) under the first's name
    assert segment_cache._read(entries[0], ["request_id", "ts"], cache.sound) == {}  # checked again: unsound
    again = _replayed(policy, log, True, monkeypatch)
    pd.testing.assert_frame_equal(again.decisions, plain.decisions, check_exact=True)
