"""Records out of export files, each with where it came from (``file:line``), so a malformed
one can be reported by its place and skipped while the rest are read.

- ``.jsonl`` / ``.ndjson``: one JSON object a line (blank lines skipped);
- ``.json``: an array of objects, or an object holding one under ``data`` / ``logs`` /
  ``records`` (an API page), places numbered ``file#N``;
- ``.csv``: a header row, then one record a row (place: the row's line number);
- ``.parquet``: one record a row (place: ``file#N``), read in batches.

A place's record is a dict, or the exception that explains why it is not one.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from .rows import Imported
from .values import BadValue

Record = tuple[str, "dict[str, Any] | Exception"]
Parsed = tuple[str, str, "Imported | Exception"]  # place, source key, the row or why not
MAX_LINE_BYTES = 64 * 1024 * 1024  # one request/response pair; a longer line is reported, not read


def records(path: Path) -> Iterator[Record]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _jsonl(path)
    elif suffix == ".json":
        yield from _json(path)
    elif suffix == ".csv":
        yield from _csv(path)
    elif suffix == ".parquet":
        yield from _parquet(path)
    else:
        raise ValueError(f"{path}: unknown file type {suffix or '(none)'} (expected .jsonl, .json, .csv or .parquet)")


def parsed(
    paths: list[Path], key_of: Callable[[dict[str, Any]], str | None], build: Callable[[dict[str, Any]], Imported]
) -> Iterator[Parsed]:
    """Each record of ``paths`` built into a row, keyed by the source's id (``key_of``; else its
    place); a record that cannot be read or built comes with the reason instead."""
    for path in paths:
        for where, obj in records(path):
            if isinstance(obj, Exception):
                yield where, where, obj
                continue
            key = key_of(obj) or where
            try:
                yield where, key, build(obj)
            except BadValue as exc:
                yield where, key, exc


def _jsonl(path: Path) -> Iterator[Record]:
    with path.open("rb") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{n}"
            if len(line) > MAX_LINE_BYTES:
                yield where, ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield where, ValueError(f"not JSON ({exc})")
                continue
            yield where, obj if isinstance(obj, dict) else ValueError(f"a JSON {type(obj).__name__}, not an object")


def _json(path: Path) -> Iterator[Record]:
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        yield path.name, ValueError(f"not JSON ({exc})")
        return
    if isinstance(doc, dict):
        doc = next((doc[k] for k in ("data", "logs", "records") if isinstance(doc.get(k), list)), [doc])
    if not isinstance(doc, list):
        yield path.name, ValueError("expected an array of objects")
        return
    for n, obj in enumerate(doc, start=1):
        yield f"{path.name}#{n}", obj if isinstance(obj, dict) else ValueError("not an object")


def _csv(path: Path) -> Iterator[Record]:
    csv.field_size_limit(min(sys.maxsize, MAX_LINE_BYTES))
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield f"{path.name}:{reader.line_num}", ValueError(f"not CSV ({exc})")
                continue
            where = f"{path.name}:{reader.line_num}"
            if None in row:  # more cells than the header names
                yield where, ValueError(f"{len(row) - 1 + len(row[None])} cells for {len(row) - 1} columns")  # type: ignore[index]
                continue
            yield where, dict(row)


def _parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            n += 1
            yield f"{path.name}#{n}", row
