"""A journal whose last line a crash cut short (no newline) is ended at a line boundary before
the next append (cache/outcomes.end_torn_tail): an unreadable tail is dropped, a readable one
(only its newline lost) is kept, and the outcome appended next is read back whole."""

from __future__ import annotations

from pathlib import Path

import orjson

from llmgw_kernel.cache.bound import Outcome
from llmgw_kernel.cache.outcomes import OutcomeJournal, end_torn_tail, load_outcomes


def _outcome(i: int) -> Outcome:
    return Outcome(float(i), "r", "m", f"e{i}", f"q{i}", 0.9, True, "shadow")


def _journal(tmp_path: Path, *outcomes: Outcome) -> Path:
    path = tmp_path / "cache-outcomes.jsonl"
    j = OutcomeJournal(path)
    for o in outcomes:
        j.append(o)
    j.close()
    return path


def test_an_unreadable_torn_tail_is_dropped_and_the_next_outcome_is_read_back(tmp_path: Path) -> None:
    path = _journal(tmp_path, _outcome(1))
    whole = path.read_bytes()
    with path.open("ab") as f:
        f.write(b'{"known_at":2.0,"route":"r","mod')
    j = OutcomeJournal(path)
    assert [o.request for o in j.load()] == ["q1"]
    j.append(_outcome(3))
    j.close()
    assert path.read_bytes().startswith(whole)
    assert [o.request for o in load_outcomes(path)] == ["q1", "q3"]


def test_a_readable_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = _journal(tmp_path, _outcome(1))
    with path.open("ab") as f:
        f.write(orjson.dumps(_outcome(2).to_json()))  # the newline was not written
    assert end_torn_tail(path) == 0
    j = OutcomeJournal(path)
    j.append(_outcome(3))
    j.close()
    assert [o.request for o in load_outcomes(path)] == ["q1", "q2", "q3"]


def test_a_journal_that_is_only_a_torn_line_is_emptied(tmp_path: Path) -> None:
    path = tmp_path / "cache-outcomes.jsonl"
    path.write_bytes(b'{"known_at":1.0,"rou')
    assert end_torn_tail(path) == len(b'{"known_at":1.0,"rou')
    assert path.read_bytes() == b""


def test_a_whole_journal_is_left_as_it_is(tmp_path: Path) -> None:
    path = _journal(tmp_path, _outcome(1), _outcome(2))
    before = path.read_bytes()
    assert end_torn_tail(path) == 0
    assert path.read_bytes() == before
    assert end_torn_tail(tmp_path / "absent.jsonl") == 0
