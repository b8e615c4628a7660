"""Outside-style: the columnar replay cache (`<data-dir>/replay-cache/`, docs/replay.md) with an entry
file that is not what its name says.

docs/replay.md: replays with and without the cache are equal. An entry is trusted by its name
(segment name, size, mtime, inode, anchor) and read as it is. By hand on a 60,000-row log of
`benchmarks/replay_scale.py` (3 segments of 2.2 MB, `llmgw replay --json`, policy-routing.yaml):
- one entry copied over another (a restore, a sync, a hand's `cp`): exit 0, cost 78.87 instead of
  75.29 USD, p50 latency 1607.6 instead of 1590.2 ms — another segment's rows replayed;
- 4 KB scribbled in an entry (a torn page, bit rot): a wrong summary at two offsets, and at a
  third `IndexError: index 189472054 is out of bounds` (a traceback).
A truncated entry was detected (rewritten from Parquet); these were not. Expected: the same answer
as with LLMGW_REPLAY_CACHE=off (the entry re-read from Parquet), or a clear error. Fixed: each
entry's sums (its name, rows, a CRC-32 per column) are checked on read (segment_cache.SUMS).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from replay_logs import three_segment_log


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return three_segment_log(tmp_path_factory, "cachelog", seed=7)


def _replay(data: Path) -> tuple[str, object]:
    from llmgw_kernel import replay

    out = replay(str(data / "policy-routing.yaml"), str(data))
    return json.dumps(out.summary, sort_keys=True, default=str), out.decisions


def _swap(entries: list[Path]) -> None:
    shutil.copyfile(entries[0], entries[1])


def _scribble(entries: list[Path]) -> None:
    size = entries[1].stat().st_size
    with open(entries[1], "r+b") as f:
        for at in range(size // 8, size - size // 8, size // 8):
            f.seek(at)
            f.write(b"\xa5" * 2048)


def _swap_with_sums(entries: list[Path]) -> None:
    from llmgw_kernel.replay.segment_cache import SUMS

    shutil.copyfile(entries[0], entries[1])
    shutil.copyfile(f"{entries[0]}{SUMS}", f"{entries[1]}{SUMS}")


def _no_sums(entries: list[Path]) -> None:
    from llmgw_kernel.replay.segment_cache import SUMS

    Path(f"{entries[1]}{SUMS}").unlink()


@pytest.mark.parametrize(
    "damage",
    [_swap, _scribble, _swap_with_sums, _no_sums],
    ids=["entry-replaced", "entry-scribbled", "entry-and-sums-replaced", "sums-gone"],
)
def test_a_damaged_entry_changes_nothing(made: Path, tmp_path: Path, monkeypatch, damage) -> None:
    from llmgw_kernel.replay import segment_cache

    data = tmp_path / "log"
    shutil.copytree(made, data)
    monkeypatch.setattr(segment_cache, "MIN_BYTES", 0)  # this small log's segments are cached too
    monkeypatch.setenv("LLMGW_REPLAY_CACHE", "off")
    off_summary, off_decisions = _replay(data)
    monkeypatch.delenv("LLMGW_REPLAY_CACHE")
    assert _replay(data)[0] == off_summary  # cold: builds the entries
    entries = sorted((data / "replay-cache").glob("seg-*.arrow"))
    assert len(entries) == 3, entries
    damage(entries)
    try:
        summary, decisions = _replay(data)
    except Exception as exc:  # a clear error is acceptable; a wrong answer is not
        pytest.fail(f"the damaged entry raised {type(exc).__name__}: {exc}")
    assert summary == off_summary
    assert decisions.equals(off_decisions)  # type: ignore[attr-defined]
    # the damaged entry was written again, sound: the next replay reads every entry from the cache
    from llmgw_kernel.replay import segment_cache

    stats: list[dict[str, int]] = []
    real = segment_cache.SegmentCache.read

    def spy(self, con, seg, names):  # type: ignore[no-untyped-def]
        stats.append(self.stats)
        return real(self, con, seg, names)

    monkeypatch.setattr(segment_cache.SegmentCache, "read", spy)
    assert _replay(data)[0] == off_summary
    assert stats and stats[-1]["written"] == 0 and stats[-1]["cached"] >= 3, stats[-1]


def test_a_cache_elsewhere_names_each_data_directory_apart(tmp_path: Path, monkeypatch) -> None:
    """LLMGW_REPLAY_CACHE=<dir>: /x/a/b_c and /x/a_b/c had one folder (each replay then pruned the
    other's entries: always cold)."""
    from llmgw_kernel.replay.segment_cache import cache_root

    monkeypatch.setenv("LLMGW_REPLAY_CACHE", str(tmp_path / "cache"))
    one, two = tmp_path / "a" / "b_c", tmp_path / "a_b" / "c"
    assert cache_root(one) != cache_root(two)
    assert cache_root(one) == cache_root(tmp_path / "a" / "." / "b_c")  # the same directory: one folder
