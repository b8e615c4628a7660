"""``llmgw import``: traffic served elsewhere, written into a request log so that replay,
notebooks and dashboards work on it — the moment a team evaluating llmgw replays its own
LiteLLM, Portkey or OpenAI traffic against a candidate policy.

Formats (one module each, plus one entry in :data:`FORMATS`): ``openai`` (Batch API input and
output files, or request/response pairs), ``litellm`` (``LiteLLM_SpendLogs`` as CSV/JSON),
``portkey`` (Portkey's log export), ``table`` (any CSV/Parquet/JSON with ``--map``).

Rows go through the real :class:`~llmgw_kernel.log.writer.LogWriter` with
``origin = 'import:<format>'``; fields the source lacks are NULL. A malformed record is
reported by its place (``file:line``) and skipped; the rest are imported. Ids are stable
hashes of the source record, so importing a file twice imports it once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from . import litellm, openai_jsonl, portkey, tabular
from .files import Parsed
from .report import ImportReport
from .rows import Imported, request_id, to_record

Parser = Callable[[list[Path], "dict[str, str] | None"], Iterator[Parsed]]
FORMATS: dict[str, Parser] = {
    "openai": openai_jsonl.parse,
    "litellm": litellm.parse,
    "portkey": portkey.parse,
    "table": tabular.parse,
}
FLUSH_EVERY = 20_000  # rows handed to the writer between flushes (bounds its buffer)


def import_traffic(
    fmt: str,
    paths: Sequence[str | os.PathLike[str]],
    data_dir: str | os.PathLike[str],
    mapping: dict[str, str] | None = None,
) -> ImportReport:
    """Import ``paths`` (of format ``fmt``) into ``data_dir``'s request log. The caller holds
    the data directory (no server may write it meanwhile: ``llmgw import`` takes its lock)."""
    from ..log.writer import LogWriter

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    files = [Path(p) for p in paths]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"no such file: {f}")
    if fmt == "table":
        tabular.check_mapping(mapping or {})
    report = ImportReport(fmt, Path(data_dir))
    seen = _imported_ids(data_dir)
    writer = LogWriter(data_dir, flush_ms=1000, journal=False)
    try:
        for where, key, row in FORMATS[fmt](files, mapping):
            report.read += 1
            if isinstance(row, Exception):
                report.skip(where, str(row))
                continue
            rid = request_id(fmt, key)
            if rid in seen:
                report.already += 1
                continue
            try:  # the writer refuses a row it cannot hold (a time out of range): that record alone is skipped
                writer.append(to_record(row, fmt, key))
            except ValueError as exc:
                report.skip(where, str(exc))
                continue
            seen.add(rid)
            report.count(row)
            if report.imported % FLUSH_EVERY == 0:
                writer.flush()
    finally:
        writer.close()
    return report


def _imported_ids(data_dir: str | os.PathLike[str]) -> set[str]:
    """Ids of rows earlier imports wrote (so a re-import adds nothing)."""
    from ..log.reader import open_log
    from ..log.segments import log_dir

    if not any(log_dir(data_dir).glob("seg-*.parquet")):
        return set()
    con = open_log(data_dir)
    return {r[0] for r in con.execute("SELECT request_id FROM requests WHERE origin IS NOT NULL").fetchall()}


__all__ = ["FORMATS", "ImportReport", "Imported", "import_traffic"]
