"""open_log's checks of the segments' schemas read each file's footer once per file identity in
a process (segments.column_names, by DuckDB's parquet_schema): a repeated open reads none, and a file replaced under the
same name (another inode, size or mtime) is read again — a segment lacking columns renamed over
a complete one is still found and rewritten, and the view reads it with the anchor's schema."""

from __future__ import annotations

import os

import duckdb

from llmgw_kernel.log import open_log, segments
from llmgw_kernel.log.segments import ANCHOR_NAME, log_dir, segment_name


def _footer_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = segments._read_names

    def counting(paths):
        reads.extend(os.path.basename(str(p)) for p in paths)
        return real(paths)

    monkeypatch.setattr(segments, "_read_names", counting)
    return reads


def test_a_repeated_open_reads_no_footer_and_a_replaced_segment_is_read_again(tmp_path, monkeypatch):
    directory = log_dir(tmp_path)
    segments.ensure_anchor(directory)
    seg = directory / segment_name(7, 7)
    duckdb.sql(f"COPY (SELECT 'req_a' AS request_id, 200 AS status) TO '{seg}' (FORMAT parquet)")
    reads = _footer_reads(monkeypatch)

    con = open_log(tmp_path)  # rewrites seg with every column (a new file: read again next time)
    assert con.execute("SELECT request_id, status, route FROM requests").fetchall() == [("req_a", 200, None)]
    open_log(tmp_path)
    reads.clear()
    open_log(tmp_path)
    assert reads == []  # nothing changed: no footer read, no DuckDB schema query

    # another file renamed over the complete segment, lacking columns again: read and rewritten
    tmp = directory / ".other.tmp"
    duckdb.sql(f"COPY (SELECT 'req_b' AS request_id, 201 AS status) TO '{tmp}' (FORMAT parquet)")
    os.replace(tmp, seg)
    con = open_log(tmp_path)
    assert reads == [segment_name(7, 7)]
    assert con.execute("SELECT request_id, status, route FROM requests").fetchall() == [("req_b", 201, None)]
    assert ANCHOR_NAME not in reads


def test_a_vanished_or_foreign_segment_is_skipped(tmp_path):
    directory = log_dir(tmp_path)
    segments.ensure_anchor(directory)
    (directory / segment_name(3, 3)).write_bytes(b"not parquet")
    assert segments.ensure_columns(directory) == 0
    assert segments.ensure_columns(directory / "nowhere") == 0


def test_the_writer_s_schema_checks_import_no_pyarrow_parquet(tmp_path):
    """The proxy's log writer checks the anchor and the segments' schemas as it starts: through
    DuckDB, which it loads anyway — pyarrow.parquet cost the proxy ~13 MB of resident memory
    (test_dashboard's start-up bound of 150 MB failed at 163)."""
    import subprocess
    import sys

    code = (
        "import sys, duckdb\n"
        "from pathlib import Path\n"
        "from llmgw_kernel.log.segments import ensure_anchor, ensure_columns, log_dir, segment_name\n"
        f"d = log_dir(Path({str(tmp_path)!r}))\n"
        "ensure_anchor(d)\n"
        "duckdb.sql(f\"COPY (SELECT 'req_a' AS request_id) TO '{d / segment_name(7, 7)}' (FORMAT parquet)\")\n"
        "ensure_anchor(d); assert ensure_columns(d) == 1\n"
        "print('pyarrow.parquet' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
