"""The columnar window equals the old contract (column -> Python list, oldest first) on a real
log: NULLs, lists, structs, JSON, embeddings, timestamps, ties on ``ts``, segments out of time
order, rows logged after the window was read; and its bulk views agree with the lists."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from llmgw_kernel.log.reader import open_log
from llmgw_kernel.log.record import RequestRecord
from llmgw_kernel.log.writer import LogWriter
from llmgw_kernel.replay.window import LENT, LOG_COLUMNS, _dictionary, as_window, load_window, split_plan

T0 = 1_790_000_000.0
DIM = 8


def _record(i: int, at: float, rng: random.Random) -> RequestRecord:
    rec = RequestRecord(
        f"req_{i:05d}_{rng.getrandbits(32):08x}", at, "chat.completions", "anthropic" if i % 9 else "openai"
    )
    rec.route = None if i % 13 == 0 else ["chat", "assistant", "é-route"][i % 3]
    rec.policy_version = "v1"
    if i % 5:
        rec.plan = ("p/a", "p/b") if i % 2 else ("p/b",)
        rec.target = rec.plan[0]
        rec.attempts = [{"target": "p/a", "status": 500, "latency_ms": 10.5, "error": "upstream_500"}] * (i % 3) + [
            {"target": rec.target, "status": 200, "latency_ms": float(i), "error": None}
        ]
        rec.usage = {"prompt_tokens": i, "completion_tokens": i % 7}
        rec.outcome, rec.status, rec.latency_ms = "ok", 200, 100.0 + i
    else:
        rec.error_type = "model_not_found"
    rec.metadata = {"team": f"t{i % 4}", "tags": ["a", "b"]} if i % 4 else None
    rec.request_raw = b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}' if i % 6 else b""
    rec.ts_end = at + 0.25 if i % 7 else None
    rec.admitted_ts = at + 0.001 if i % 3 == 0 else None
    rec.cache_stored_ts = at + 0.3 if i % 8 == 0 else None
    rec.temperature = 0.5 if i % 2 else None
    if i % 4 == 1:
        rec.embedding = np.asarray([rng.uniform(-1, 1) for _ in range(DIM)], np.float32)
        rec.embedding_model = "m"
    return rec


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~1,000 rows in 11 segments; the later segments hold earlier times (out of order), and
    some rows share a time stamp (ordered by request id)."""
    root = tmp_path_factory.mktemp("window")
    rng = random.Random(5)
    writer = LogWriter(root, flush_ms=3_600_000, journal=False)
    batches = [range(k * 90, (k + 1) * 90) for k in range(11)]
    for b, batch in enumerate(batches):
        for i in batch:
            at = T0 + (10 - b) * 100 + (i % 90) // 2  # later batches earlier; pairs share a second
            writer.append(_record(i, at, rng))
        writer.flush()
    writer.close()
    return root


def _reference(root: Path, where: str = "", params: list | None = None) -> dict[str, list]:
    """The old contract: the window as DuckDB's Python rows, ordered by (ts, request_id)."""
    con = open_log(root)
    rows = con.execute(
        f"SELECT {', '.join(LOG_COLUMNS)} FROM requests {where} ORDER BY ts, request_id", params or []
    ).fetchall()
    return {name: [r[i] for r in rows] for i, name in enumerate(LOG_COLUMNS)}


def test_every_column_equals_the_old_lists(log_dir: Path) -> None:
    ref = _reference(log_dir)
    window = load_window(log_dir)
    assert window._order is not None  # the fixture's segments are out of time order
    assert len(window) == len(ref["request_id"]) == 990
    assert list(window) == ["request_id", "ts", *[c for c in LOG_COLUMNS if c not in ("request_id", "ts")]]
    for name in LOG_COLUMNS:
        if name == "embedding":
            continue
        assert window[name] == ref[name], name
    assert window["embedding"] is window["embedding"]  # materialised once
    for got, want in zip(window["embedding"], ref["embedding"], strict=True):
        assert (got is None) == (want is None)
        if got is not None:
            assert got.dtype == np.float32 and np.array_equal(got, np.asarray(want, np.float32))


def test_bulk_views_agree_with_the_lists(log_dir: Path) -> None:
    window = load_window(log_dir)
    lat = window.numpy("latency_ms")
    assert [None if math.isnan(v) else v for v in lat.tolist()] == window["latency_ms"]
    assert window.valid("ts_end").tolist() == [v is not None for v in window["ts_end"]]
    assert window.epoch("ts").tolist() == [t.timestamp() for t in window["ts"]]
    ends = window.epoch("ts_end")
    assert [None if math.isnan(v) else v for v in ends.tolist()] == [
        None if t is None else t.timestamp() for t in window["ts_end"]
    ]
    assert [None if math.isnan(v) else v for v in window.epoch("admitted_ts").tolist()] == window["admitted_ts"]
    for name in ("route", "error_type", "api", "target"):
        codes, values = window.codes(name)
        assert codes.dtype == np.int32
        assert [values[c] if c >= 0 else None for c in codes.tolist()] == window[name], name
    codes, values = window.codes("plan")
    assert [split_plan(values[c]) if c >= 0 else None for c in codes.tolist()] == window["plan"]


def test_embeddings_as_one_matrix_in_chunks(log_dir: Path) -> None:
    window = load_window(log_dir)
    matrix, rows = window.embeddings(chunk_rows=7)
    listed = window["embedding"]
    assert matrix.dtype == np.float32 and matrix.shape == (sum(v is not None for v in listed), DIM)
    assert rows.tolist() == [i for i, v in enumerate(listed) if v is not None]
    assert all(np.array_equal(matrix[k], listed[i]) for k, i in enumerate(rows.tolist()))
    other, other_rows = load_window(log_dir).embeddings(chunk_rows=100_000)
    assert np.array_equal(matrix, other) and np.array_equal(rows, other_rows)


def test_dict_contract_for_stages(log_dir: Path) -> None:
    window = load_window(log_dir, since="2026-09-21T14:10:00Z", until="2026-09-21T14:25:00Z")
    ref = _reference(log_dir, "WHERE ts >= ? AND ts < ?", ["2026-09-21T14:10:00Z", "2026-09-21T14:25:00Z"])
    assert 0 < len(window) == len(ref["request_id"]) < 990
    assert window["request_id"] == ref["request_id"] and window["metadata"] == ref["metadata"]
    assert "route" in window and "nope" not in window and window.get("nope", 5) == 5
    assert window.get("attempts") == ref["attempts"]
    window["_key_history"] = "attached"
    assert "_key_history" in window and window["_key_history"] == "attached" and list(window)[-1] == "_key_history"
    assert dict(window.items())["cache_stored_ts"] == ref["cache_stored_ts"]
    with pytest.raises(KeyError):
        window["nope"]
    narrow = load_window(log_dir, where="route = ?", params=["chat"], columns=["route", "plan"], prefetch=["plan"])
    assert set(narrow) == {"request_id", "ts", "route", "plan"} and set(narrow["route"]) == {"chat"}


def test_lent_columns_are_read_when_asked_and_never_held(log_dir: Path) -> None:
    ref = _reference(log_dir)
    window = load_window(log_dir, prefetch=["request_body", "metadata", "route"])
    assert "route" in window.table.column_names
    assert not {"request_body", "metadata"} & set(window.table.column_names)  # prefetch skips them
    assert window.arrow("request_body").to_pylist() == ref["request_body"]  # in window order
    codes, values = window.codes("metadata")
    assert [values[c] if c >= 0 else None for c in codes.tolist()] == ref["metadata"]
    window.prefetch(["metadata"])
    assert not {"request_body", "metadata"} & set(window.table.column_names)
    assert window["metadata"] == ref["metadata"]  # the per-row contract still reads them


@pytest.mark.parametrize("name", ["request_body", "metadata", "route", "attempts"])
def test_take_reads_a_few_rows_of_a_column_in_the_order_asked(log_dir: Path, name: str) -> None:
    ref = _reference(log_dir)
    window = load_window(log_dir)
    assert window._order is not None  # the scan is not in window order: rows are mapped back
    rows = np.array([989, 3, 500, 3, 0, 411, 988], np.int64)  # unsorted, a repeat
    assert window.take(name, rows).to_pylist() == [ref[name][i] for i in rows.tolist()]
    assert name in LENT or name in window.table.column_names  # held columns are read as usual
    assert not LENT & set(window.table.column_names)  # lent ones are not kept
    assert window.take(name, np.array([], np.int64)).to_pylist() == []


def test_take_of_a_window_with_a_predicate(log_dir: Path) -> None:
    window = load_window(log_dir, where="route = ?", params=["chat"])
    ref = _reference(log_dir, "WHERE route = ?", ["chat"])
    rows = np.arange(len(window))[::-7]
    assert window.take("request_body", rows).to_pylist() == [ref["request_body"][i] for i in rows.tolist()]


def test_released_columns_are_freed_and_read_again_when_asked(log_dir: Path) -> None:
    ref = _reference(log_dir)
    window = load_window(log_dir, prefetch=["ts_end", "route", "latency_ms"])
    route_codes = window.codes("route")
    lat = window.numpy("latency_ms")
    window.release(["route", "latency_ms", "request_id", "ts", "not-a-column"])
    assert window.table.column_names == ["request_id", "ts", "ts_end"]  # the order's columns stay
    assert window.codes("route") is route_codes  # codes are kept
    again = window.numpy("latency_ms")
    assert again is not lat and np.array_equal(again, lat, equal_nan=True)
    assert window.arrow("route").to_pylist() == ref["route"] and "route" in window.table.column_names


def test_rows_logged_after_the_window_was_read_are_left_out(tmp_path: Path) -> None:
    rng = random.Random(9)
    writer = LogWriter(tmp_path, flush_ms=3_600_000, journal=False)
    for i in range(50):
        writer.append(_record(i, T0 + i, rng))
    writer.flush()
    con = open_log(tmp_path)
    window = load_window(con)  # only request_id and ts are read now
    for i in range(50, 80):
        writer.append(_record(i, T0 + i - 60, rng))  # earlier times: they would sort into the window
    writer.flush()
    writer.close()
    ids = window["request_id"]
    assert len(window) == 50 and len(ids) == 50
    ref = _reference(tmp_path, "WHERE request_id IN (SELECT unnest(?))", [ids])
    assert ref["request_id"] == ids
    assert window["latency_ms"] == ref["latency_ms"] and window["plan"] == ref["plan"]
    assert len(window.embeddings()[1]) == sum(v is not None for v in ref["embedding"])


def test_empty_window(tmp_path: Path) -> None:
    window = load_window(tmp_path)
    assert len(window) == 0 and window["route"] == [] and window["embedding"] == []
    assert window.codes("route")[0].shape == (0,) and window.embeddings()[0].shape == (0, 0)


def test_a_predicate_whose_scans_come_back_in_another_order_keeps_columns_aligned(log_dir: Path) -> None:
    """Regression: each column is read by its own scan, and the window assumed every scan
    returns rows in the same order. A predicate that joins (a partition's id list) returns them
    in hash order, different per scan: a row got another row's route. Every scan is now
    checked against the window's request ids and matched by id when they differ."""
    con = open_log(log_dir)
    picked = "SELECT request_id FROM requests WHERE hash(request_id) % 5 < 3"
    where = f"request_id IN ({picked} ORDER BY random())"
    ref = _reference(log_dir, f"WHERE request_id IN ({picked})")
    assert 300 < len(ref["request_id"]) < 900
    ref_con_rows = {rid: i for i, rid in enumerate(ref["request_id"])}
    for _ in range(3):
        window = load_window(con, where=where)
        assert window["request_id"] == ref["request_id"]
        for name in ("route", "cost_usd", "latency_ms", "key_id", "metadata"):
            assert window[name] == [ref[name][ref_con_rows[rid]] for rid in window["request_id"]], name


def test_a_log_in_time_order_but_for_tied_time_stamps_reads_in_window_order(tmp_path: Path) -> None:
    """Only the tied rows move (the window gathers just those runs, slicing the rest): every
    column, read up front or later, equals the rows ordered by (ts, request_id)."""
    rng = random.Random(7)
    writer = LogWriter(tmp_path, flush_ms=3_600_000, journal=False)
    for i in range(600):
        rec = _record(i, T0 + i - (1 if i % 100 in (11, 51) else 0), rng)  # 12 pairs share a second
        if i % 100 in (10, 50):  # the first of a tied pair gets the larger request id
            rec.request_id = "zz" + rec.request_id
        writer.append(rec)
    writer.close()
    ref = _reference(tmp_path)
    window = load_window(tmp_path, prefetch=["route", "plan"])
    assert window._order is not None and int(np.sum(window._order.to_numpy() != np.arange(600))) == 24
    for name in LOG_COLUMNS:
        if name != "embedding":
            assert window[name] == ref[name], name


def test_permuted_equals_take_for_any_order() -> None:
    import pyarrow as pa

    from llmgw_kernel.replay.window import _permuted

    table = pa.table({"a": pa.array(range(1000)), "l": pa.array([[str(i)] * (i % 3) for i in range(1000)])})
    rng = np.random.default_rng(0)
    orders = [np.arange(1000), rng.permutation(1000)]
    for swaps in ([(5, 6)], [(0, 1), (998, 999)], [(10, 12)], [(3, 900)], [(7, 8), (8, 9)]):
        o = np.arange(1000)
        for a, b in swaps:
            o[[a, b]] = o[[b, a]]
        orders.append(o)
    for o in orders:
        order = pa.array(o)
        assert _permuted(table, order).equals(table.take(order))


def _lengths(column: pa.Array) -> pa.Array:
    return pc.binary_length(column)


@pytest.mark.parametrize("name", ["metadata", "request_body", "route"])
def test_mapped_streams_a_lent_column_in_window_order(log_dir: Path, name: str) -> None:
    """``mapped`` equals ``fn`` of the whole column, in window order, for a scan out of window
    order (segments with earlier times, ties), a predicate, and a column that is held; the lent
    column is not kept."""
    ref = _reference(log_dir)
    window = load_window(log_dir)
    assert window._order is not None
    want = [None if v is None else len(v.encode()) for v in ref[name]]
    assert window.mapped(name, _lengths).to_pylist() == want
    assert not LENT & set(window.table.column_names)
    chat = load_window(log_dir, where="route = ?", params=["chat"])
    ref_chat = _reference(log_dir, "WHERE route = ?", ["chat"])
    assert chat.mapped(name, _lengths).to_pylist() == [None if v is None else len(v.encode()) for v in ref_chat[name]]


def test_mapped_when_the_log_changed_or_the_scan_comes_back_in_another_order(log_dir: Path, tmp_path: Path) -> None:
    con = open_log(log_dir)
    picked = "SELECT request_id FROM requests WHERE hash(request_id) % 5 < 3"
    ref = _reference(log_dir, f"WHERE request_id IN ({picked})")
    by_id = dict(zip(ref["request_id"], ref["metadata"], strict=True))
    window = load_window(con, where=f"request_id IN ({picked} ORDER BY random())")
    got = window.mapped("metadata", _lengths).to_pylist()
    assert got == [None if by_id[r] is None else len(by_id[r].encode()) for r in window["request_id"]]
    rng = random.Random(3)
    writer = LogWriter(tmp_path, flush_ms=3_600_000, journal=False)
    for i in range(40):
        writer.append(_record(i, T0 + i, rng))
    writer.flush()
    grown = load_window(open_log(tmp_path))
    assert grown._order is None  # the scan is in window order
    before = _reference(tmp_path)["metadata"]
    assert grown.mapped("metadata", _lengths).to_pylist() == [None if v is None else len(v.encode()) for v in before]
    for i in range(40, 70):
        writer.append(_record(i, T0 + i - 50, rng))  # earlier times, logged after the window was read
    writer.close()
    ref = _reference(tmp_path, "WHERE request_id IN (SELECT unnest(?))", [grown["request_id"]])
    assert grown.mapped("metadata", _lengths).to_pylist() == [
        None if v is None else len(v.encode()) for v in ref["metadata"]
    ]
    assert load_window(tmp_path / "empty").mapped("metadata", _lengths).to_pylist() == []


def test_few_valued_string_columns_are_held_as_codes_and_read_as_the_log_holds_them(log_dir: Path) -> None:
    """route, plan (a list), error_type... are held as dictionary columns (an int32 code per row):
    every reader sees the log's type and values, and codes() is in order of first appearance in
    window order, as encoding the column read plainly gives it. Distinct-valued columns stay as
    they are."""
    ref = _reference(log_dir)
    window = load_window(log_dir, prefetch=["route", "plan", "error_type", "api", "latency_ms"])
    held = window.table
    for name in ("route", "plan", "error_type", "api"):
        assert pa.types.is_dictionary(held.column(name).type), name
        col = window.arrow(name)
        assert not pa.types.is_dictionary(col.type) and col.to_pylist() == ref[name], name
        plain = col.combine_chunks()
        if pa.types.is_list(plain.type):
            plain = pc.binary_join(plain, "\x1f")
        enc = plain.dictionary_encode()
        codes, values = window.codes(name)
        assert values == enc.dictionary.to_pylist(), name  # first appearance, window order
        assert codes.tolist() == pc.fill_null(enc.indices, -1).to_pylist(), name
        held_codes = np.frombuffer(held.column(name).chunk(0).indices.buffers()[1], np.int32, len(window))
        assert np.shares_memory(codes, held_codes) and codes.flags.writeable, name  # held once, numpy's own
        rows = np.array([5, 0, 989, 5], np.int64)
        assert window.take(name, rows).to_pylist() == [ref[name][i] for i in rows.tolist()], name
        assert window.valid(name).tolist() == [v is not None for v in ref[name]], name
    assert pa.types.is_list(window.arrow("plan").type) and None in window["plan"]
    assert held.column("request_id").type == pa.string() and held.column("latency_ms").type == pa.float64()
    plain_bytes = sum(window.arrow(n).nbytes for n in ("route", "plan", "error_type", "api"))
    assert sum(held.column(n).nbytes for n in ("route", "plan", "error_type", "api")) < plain_bytes


def test_an_empty_plan_and_a_null_plan_stay_apart_when_coded() -> None:
    plans = pa.array([["p/a", "p/b"], [], None, ["p/b"], [], ["p/a", "p/b"]], pa.list_(pa.string()))
    coded, (codes, values) = _dictionary(plans)
    assert pa.types.is_dictionary(coded.type) and coded.dictionary_decode().to_pylist() == plans.to_pylist()
    assert coded.indices.to_pylist() == [0, 1, None, 2, 1, 0]
    assert codes.tolist() == [0, 1, -1, 2, 1, 0] and values == ["p/a\x1fp/b", "", "p/b"]
    view = np.frombuffer(coded.indices.buffers()[1], np.int32, len(coded))
    assert np.shares_memory(view, codes)  # the codes are the indices, held once


def test_a_scan_puts_the_connections_threads_setting_back(log_dir: Path) -> None:
    con = open_log(log_dir)
    con.execute("SET threads = 3")
    window = load_window(con, prefetch=["route"])
    window.prefetch(["latency_ms", "target"])
    assert con.execute("SELECT current_setting('threads')").fetchall()[0][0] == 3
    assert window["target"] == _reference(log_dir)["target"]


def _team_of(meta: str | None) -> str | None:
    import json

    value = json.loads(meta) if meta else None
    return json.dumps(value["team"]) if isinstance(value, dict) and "team" in value else None


TEAM = "try(json_extract(metadata, '$.team'))"
NO_END = "ts_end IS NULL AND temperature IS NULL"


def _no_end_rows(ref: dict[str, list]) -> list[int]:
    return [
        i for i, (e, t) in enumerate(zip(ref["ts_end"], ref["temperature"], strict=True)) if e is None and t is None
    ]


def test_where_reads_only_the_rows_a_predicate_selects_in_window_order(log_dir: Path) -> None:
    """``Window.where``: DuckDB selects the rows in its scan (segments out of time order, tied
    time stamps, a predicate that joins and returns rows in hash order, a window given as lists)."""
    picked = "SELECT request_id FROM requests WHERE hash(request_id) % 5 < 3"
    for where in (None, f"request_id IN ({picked} ORDER BY random())"):
        window = load_window(open_log(log_dir), where=where)
        ref = _reference(log_dir, f"WHERE request_id IN ({picked})" if where else "")
        by_id = {rid: i for i, rid in enumerate(ref["request_id"])}
        ref = {k: [v[by_id[r]] for r in window["request_id"]] for k, v in ref.items()}  # in window order
        rows, bodies = window.where("request_body", NO_END)
        want = _no_end_rows(ref)
        assert 20 < len(want) < len(window) and rows.tolist() == want
        assert bodies.to_pylist() == [ref["request_body"][i] for i in want]
        given = as_window({k: ref[k] for k in ("request_id", "ts", "ts_end", "temperature", "request_body")})
        rows, bodies = given.where("request_body", NO_END)
        assert rows.tolist() == want and bodies.to_pylist() == [ref["request_body"][i] for i in want]


def test_where_and_computed_when_rows_were_logged_after_the_window_was_read(tmp_path: Path) -> None:
    rng = random.Random(11)
    writer = LogWriter(tmp_path, flush_ms=3_600_000, journal=False)
    for i in range(60):
        writer.append(_record(i, T0 + i, rng))
    writer.flush()
    window = load_window(open_log(tmp_path))
    for i in range(60, 90):
        writer.append(_record(i, T0 + i - 70, rng))  # earlier times: they would sort into the window
    writer.close()
    ref = _reference(tmp_path, "WHERE request_id IN (SELECT unnest(?))", [window["request_id"]])
    rows, bodies = window.where("request_body", NO_END)
    assert rows.tolist() == _no_end_rows(ref) and bodies.to_pylist() == [ref["request_body"][i] for i in rows]
    got = window.computed("_team_json", TEAM).cast(pa.string()).to_pylist()
    assert got == [_team_of(m) for m in ref["metadata"]]


def test_computed_is_duckdbs_expression_per_row_in_window_order(log_dir: Path) -> None:
    picked = "SELECT request_id FROM requests WHERE hash(request_id) % 5 < 3"
    window = load_window(open_log(log_dir), where=f"request_id IN ({picked} ORDER BY random())")
    ref = _reference(log_dir, f"WHERE request_id IN ({picked})")
    by_id = dict(zip(ref["request_id"], ref["metadata"], strict=True))
    got = window.computed("_team_json", TEAM).cast(pa.string()).to_pylist()
    assert got == [_team_of(by_id[r]) for r in window["request_id"]]
    assert {"t1", "t2", "t3"} <= {g.strip('"') for g in got if g} and None in got
    assert "metadata" not in window.table.column_names and "_team_json" not in window.table.column_names
    with pytest.raises(ValueError, match="already computed"):
        window.computed("_team_json", "1")
    given = as_window({"request_id": window["request_id"], "metadata": window["metadata"]})
    assert given.computed("_team_json", TEAM).cast(pa.string()).to_pylist() == got


def test_release_with_codes_drops_the_codes_too(log_dir: Path) -> None:
    ref = _reference(log_dir)
    window = load_window(log_dir, prefetch=["route", "key_id"])
    route_codes = window.codes("route")
    window.codes("key_id")
    assert {"route", "key_id"} <= window.coded
    window.release(["route", "key_id"], codes=True)
    assert not ({"route", "key_id"} & window.coded)
    assert window.table.column_names == ["request_id", "ts"]
    again = window.codes("route")  # read again from the log
    assert again is not route_codes and [again[1][c] if c >= 0 else None for c in again[0]] == ref["route"]


def test_take_from_a_window_of_chunked_columns_equals_arrows_take() -> None:
    """``Window.take`` of a held column a chunk (or more) per segment, as a warm window holds it
    (segment_cache.py): ascending rows are taken from the chunks that hold them — the values of
    Arrow's own take, for any rows (unordered, repeated, none); a row outside still raises."""
    from llmgw_kernel.replay.window import Window

    chunks = [pa.array([f"req_{i:04d}" if i % 5 else None for i in range(k, k + 7)]) for k in range(0, 70, 7)]
    col = pa.chunked_array([*chunks[:3], pa.array([], pa.string()), *chunks[3:]])
    w = Window(None, pa.table({"request_id": col}), None, ["request_id"], False)
    for rows in ([], [0], [3, 6, 7, 8, 69], [69, 0, 5], [4, 4, 4, 20], list(range(70))):
        r = np.asarray(rows, np.int64)
        got = w.take("request_id", r)
        assert isinstance(got, pa.Array) and got.equals(col.take(pa.array(r, pa.int64())).combine_chunks()), rows
    for outside in ([70], [-1], [3, 70]):
        with pytest.raises(IndexError):
            w.take("request_id", np.asarray(outside, np.int64))
