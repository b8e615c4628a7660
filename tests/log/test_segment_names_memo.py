"""open_log's schema checks read a segment's footer once per file identity across processes, not
only within one: where the data directory has a replay cache, ``segments.NAMES_MEMO`` in it keeps
each segment's column names by file identity (device, inode, size, mtime in ns). A new process
(``segments._SCHEMAS`` empty) then reads no footer the memo holds; a segment replaced under its
name, or a new one, is read again and rewritten when it lacks columns; a memo that is damaged is
ignored and rewritten; without a replay cache (or with it turned off) nothing is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from llmgw_kernel.log import open_log, segments
from llmgw_kernel.log.segments import ANCHOR_NAME, NAMES_MEMO, log_dir, segment_name


def _footer_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    real = segments._read_names

    def counting(paths: list[Path]) -> dict[Path, frozenset[str]]:
        reads.extend(os.path.basename(str(p)) for p in paths)
        return real(paths)

    monkeypatch.setattr(segments, "_read_names", counting)
    return reads


def _segment(directory: Path, n: int, rid: str) -> Path:
    """Segment ``n`` written outside the log writer, with two columns only (open_log adds the rest)."""
    seg = directory / segment_name(n, n)
    tmp = directory / f".{n}.tmp"
    duckdb.sql(f"COPY (SELECT '{rid}' AS request_id, 200 AS status) TO '{tmp}' (FORMAT parquet)")
    os.replace(tmp, seg)  # another file (inode) under the name
    return seg


def _new_process() -> None:
    segments._SCHEMAS.clear()  # what a new process knows


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(segments.REPLAY_CACHE_ENV, raising=False)
    directory = log_dir(tmp_path)
    segments.ensure_anchor(directory)
    _segment(directory, 7, "req_a")
    (tmp_path / segments.REPLAY_CACHE_DIR).mkdir()  # a replay made its cache
    open_log(tmp_path)  # rewrites segment 7 with every column
    _new_process()
    open_log(tmp_path)  # reads its new footer once more: the memo now holds what is there
    _new_process()
    return tmp_path


def _rows(data_dir: Path) -> list[tuple[object, ...]]:
    return open_log(data_dir).execute("SELECT request_id, status, route FROM requests ORDER BY 1").fetchall()


def test_a_new_process_reads_no_footer_the_memo_holds(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _footer_reads(monkeypatch)
    assert _rows(data_dir) == [("req_a", 200, None)]
    assert reads == []  # neither the anchor's nor the segment's: no DuckDB schema query
    memo = json.loads((data_dir / segments.REPLAY_CACHE_DIR / NAMES_MEMO).read_bytes())
    assert sorted(memo["files"]) == [ANCHOR_NAME, segment_name(7, 7)]


def test_in_a_real_new_process(data_dir: Path) -> None:
    script = (
        "import sys; from llmgw_kernel.log import open_log, segments\n"
        "reads = []; real = segments._read_names\n"
        "segments._read_names = lambda paths: reads.extend(paths) or real(paths)\n"
        "open_log(sys.argv[1]); print(len(reads))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != segments.REPLAY_CACHE_ENV}
    got = subprocess.run(
        [sys.executable, "-c", script, str(data_dir)], capture_output=True, text=True, env=env, timeout=120
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "0"


def test_a_replaced_or_new_segment_is_read_again(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = log_dir(data_dir)
    _segment(directory, 7, "req_b")  # lacking columns again, under the name the memo holds
    _segment(directory, 8, "req_c")  # not in the memo
    reads = _footer_reads(monkeypatch)
    assert _rows(data_dir) == [("req_b", 200, None), ("req_c", 200, None)]  # both rewritten with every column
    assert sorted(reads) == [segment_name(7, 7), segment_name(8, 8)]
    have = segments._read_names([directory / segment_name(7, 7), directory / segment_name(8, 8)])
    assert all("route" in names for names in have.values()) and len(have) == 2


def test_a_deleted_segment_leaves_the_memo(data_dir: Path) -> None:
    directory = log_dir(data_dir)
    _segment(directory, 8, "req_c")
    open_log(data_dir)
    (directory / segment_name(7, 7)).unlink()
    _segment(directory, 9, "req_d")
    _new_process()
    open_log(data_dir)
    memo = json.loads((data_dir / segments.REPLAY_CACHE_DIR / NAMES_MEMO).read_bytes())
    assert sorted(memo["files"]) == [ANCHOR_NAME, segment_name(8, 8), segment_name(9, 9)]


@pytest.mark.parametrize("damage", [b"{not json", b'{"files": 3}', b'{"files": {"x": [1, 2]}}', b""])
def test_a_damaged_memo_is_ignored_and_rewritten(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes
) -> None:
    memo = data_dir / segments.REPLAY_CACHE_DIR / NAMES_MEMO
    memo.write_bytes(damage)
    reads = _footer_reads(monkeypatch)
    assert _rows(data_dir) == [("req_a", 200, None)]
    assert sorted(reads) == [ANCHOR_NAME, segment_name(7, 7)]
    assert sorted(json.loads(memo.read_bytes())["files"]) == [ANCHOR_NAME, segment_name(7, 7)]


def test_nothing_is_kept_without_a_replay_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(segments.REPLAY_CACHE_ENV, raising=False)
    directory = log_dir(tmp_path)
    segments.ensure_anchor(directory)
    _segment(directory, 7, "req_a")
    open_log(tmp_path)
    assert not (tmp_path / segments.REPLAY_CACHE_DIR).exists()  # a dashboard's open_log makes no cache
    (tmp_path / segments.REPLAY_CACHE_DIR).mkdir()
    monkeypatch.setenv(segments.REPLAY_CACHE_ENV, "off")
    _new_process()
    open_log(tmp_path)
    assert list((tmp_path / segments.REPLAY_CACHE_DIR).iterdir()) == []
