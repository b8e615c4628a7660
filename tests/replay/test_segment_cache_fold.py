"""The compiled fold's own columns (and the log's ``exact_key`` / ``cache_team``) are read through the
columnar cache of sealed segments when the window was (``Window.prefetch`` → ``segment_cache.load_more``):
a warm full replay (routing, budgets, rpm, exact cache) decodes no Parquet page — the same decisions
as a replay through the view; a segment that changes after the window was loaded is read again from
the log (rewritten in place: another entry; deleted by a merge: the view, as before).

The log is ``benchmarks/replay_scale.py``'s synthetic log, written through the real log writer."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from llmgw_kernel import replay
from llmgw_kernel.log import segments as seg_layout
from llmgw_kernel.replay import fold, load_window, segment_cache
from llmgw_kernel.replay import window as window_mod
from llmgw_kernel.replay.fold_inputs import FOLD_COLUMNS
from llmgw_kernel.replay.stages import REPLAY_COLUMNS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("segcachefold") / "log"
    replay_scale.generate(d, 6_000, seed=7, chunk=600)
    return d


@pytest.fixture
def log(synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "log"
    shutil.copytree(synthetic, d)
    monkeypatch.setattr(segment_cache, "MIN_BYTES", 0)  # every segment cached
    monkeypatch.delenv(segment_cache.ENV, raising=False)
    return d


class Reads:
    """Counts the log's reads that decode Parquet: the window's scans through the view, and the
    segments the cache reads from Parquet."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        for owner, name in ((window_mod._Log, "scan"), (window_mod._Log, "batches"),
                            (segment_cache.SegmentCache, "_parquet")):  # fmt: skip
            real = getattr(owner, name)

            def spy(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
                self.calls.append(f"{_name}{args[1:2]}")
                return _real(*args, **kw)

            monkeypatch.setattr(owner, name, spy)


def test_a_warm_full_replay_reads_no_parquet(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fold, "COMPILED_FROM_ROWS", 0)  # the compiled fold, as at scale
    policy = log / "policy-live.yaml"
    monkeypatch.setenv(segment_cache.ENV, "off")
    plain = replay(policy, str(log))
    monkeypatch.delenv(segment_cache.ENV)
    cold = replay(policy, str(log))  # builds the cache: the window's columns and the fold's
    reads = Reads(monkeypatch)
    warm = replay(policy, str(log))
    assert reads.calls == []  # before: the fold's ~20 columns and the logged keys and teams were scanned
    for got in (cold, warm):
        pd.testing.assert_frame_equal(got.decisions, plain.decisions, check_exact=True)
        assert got.summary == plain.summary
    assert plain.summary["differs_from_log"]["any"] == 0
    assert (plain.decisions["replay_cache"] == "hit").sum() > 100  # the exact cache decided something


def _fold_window(log: Path) -> Any:
    return load_window(str(log), prefetch=REPLAY_COLUMNS)


def _same(a: Any, b: Any, names: list[str]) -> None:
    for name in names:
        assert a.arrow(name).equals(b.arrow(name)), name
        if name in b.coded:
            ca, va = a.codes(name)
            cb, vb = b.codes(name)
            assert np.array_equal(ca, cb) and va == vb, name


def test_a_segment_that_changes_after_the_window_was_loaded(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rewritten in place (a new inode: another entry) — read from Parquet into a new entry, the
    same values; deleted (as a merge deletes its inputs) — the window scans the view, as a window
    read without the cache does."""
    names = [n for n in FOLD_COLUMNS if n not in REPLAY_COLUMNS and n not in window_mod.LENT]
    _fold_window(log).prefetch(names)  # every entry holds the fold's columns
    segs = [s.path for s in seg_layout.list_segments(seg_layout.log_dir(log)) if s.path.name != seg_layout.ANCHOR_NAME]
    cached = _fold_window(log)
    assert cached._segments is not None
    monkeypatch.setattr(window_mod, "CACHE", False)
    plain = _fold_window(log)
    monkeypatch.setattr(window_mod, "CACHE", True)
    copy = segs[2].with_suffix(".tmp")
    shutil.copy2(segs[2], copy)
    copy.replace(segs[2])  # same rows, another inode
    cached.prefetch(names[: len(names) // 2])
    plain.prefetch(names[: len(names) // 2])
    assert cached._segments is not None
    _same(cached, plain, names[: len(names) // 2])
    segs[4].unlink()
    cached.prefetch(names[len(names) // 2 :])
    plain.prefetch(names[len(names) // 2 :])
    assert cached._segments is None  # read through the view from then on
    _same(cached, plain, names[len(names) // 2 :])
    assert cached.logged("exact_key") is None
