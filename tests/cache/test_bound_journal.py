"""The outcome journal of the false-hit bound is bounded (cache/outcomes.py): past COMPACT_AT
outcome lines it folds all but the last KEEP into one line per region, crash-safely, and a bound
learns the folded line exactly as it learned the outcomes it folds — live after a restart, and
in replay for requests that arrive after the folded outcomes were known."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from llmgw_kernel.cache.bound import _BINS, MAX_FLOORS, Bound, Folded, Outcome
from llmgw_kernel.cache.core import Caches
from llmgw_kernel.cache.learning import Learning
from llmgw_kernel.cache.outcomes import (
    COMPACT_AT,
    KEEP,
    OUTCOMES_FILE,
    TMP_SUFFIX,
    OutcomeJournal,
    compact,
    folded_through,
    load_outcomes,
    read_journal,
)

N = 200_000
REGIONS = [("support", "minilm"), ("sales", "minilm"), ("support", "bge")]
DELTAS = [0.005, 0.01, 0.02, 0.05, 0.2]


def outcome(i: int) -> Outcome:
    """The i-th outcome of a deterministic stream: three regions, similarities 0.80-1.0, one in
    twelve answers wrong (each a new entry's floor), a tenth of them served hits."""
    h = int.from_bytes(hashlib.sha256(str(i).encode()).digest()[:8], "big")
    route, model = REGIONS[h % 3]
    sim = 0.80 + (h >> 8) % 2001 / 10_000
    by = "sampled" if (h >> 24) % 10 == 0 else "shadow"
    return Outcome(1_000.0 + i, route, model, f"e{i % 70_000}", f"q{i}", sim, (h >> 32) % 12 != 0, by)


def stream(n: int = N) -> bytes:
    return b"".join(orjson.dumps(outcome(i).to_json()) + b"\n" for i in range(n))


def reference(n: int = N) -> dict[tuple[str, str], Bound]:
    """Every outcome learned one by one (what the live gateway held before any compaction)."""
    bounds: dict[tuple[str, str], Bound] = {}
    for i in range(n):
        o = outcome(i)
        bounds.setdefault((o.route, o.model), Bound()).add(o)
    return bounds


@pytest.fixture(scope="module")
def full() -> dict[tuple[str, str], Bound]:
    return reference()


def restored(data_dir: Path) -> tuple[Caches, Learning, int]:
    caches = Caches()
    pool = ThreadPoolExecutor(1)
    learning = Learning(caches, pool, data_dir, lambda m: None)  # type: ignore[arg-type,return-value]
    n = learning.restore()
    pool.shutdown()
    return caches, learning, n


def same_state(a: dict[tuple[str, str], Bound], b: dict[tuple[str, str], Bound]) -> None:
    assert set(a) == set(b)
    for region in a:
        assert a[region].totals() == b[region].totals(), region  # bins, served, floors in eviction order
        assert [a[region].threshold(d) for d in DELTAS] == [b[region].threshold(d) for d in DELTAS]
    assert any(b[r].threshold(0.2) < 0.99 for r in b)  # the thresholds compared are learned ones


def outcome_lines(path: Path) -> int:
    return sum(not line.startswith(b'{"folded"') for line in path.read_bytes().splitlines())


def test_appending_200k_outcomes_keeps_the_journal_under_its_bound(tmp_path, full):
    path = tmp_path / OUTCOMES_FILE
    journal = OutcomeJournal(path)
    most = 0
    for i in range(N):
        journal.append(outcome(i))
        most = max(most, journal.lines)
        journal.wait()  # outcomes arrive slower than a compaction (see the next test otherwise)
    journal.close()
    assert most == COMPACT_AT + 1  # the line that starts a compaction
    lines = path.read_bytes().splitlines()
    folded = [orjson.loads(x)["folded"] for x in lines if x.startswith(b'{"folded"')]
    assert len(folded) == len(REGIONS) and KEEP <= outcome_lines(path) <= COMPACT_AT
    for f in folded:
        assert len(f["bins"]) <= _BINS and len(f["floors"]) <= MAX_FLOORS
    # at most COMPACT_AT outcome lines (half the stream's here) and the folded lines' few kB
    assert path.stat().st_size < 0.55 * len(stream())
    assert sum(len(x) for x in lines if x.startswith(b'{"folded"')) < 3e6
    # what the gateway learns from the bounded journal is what it learned outcome by outcome
    caches, _, _ = restored(tmp_path)
    same_state(full, caches.bounds)


def test_outcomes_appended_during_a_compaction_are_kept(tmp_path):
    """The cache worker appends while a compaction folds beside it: nothing is lost, the journal
    ends up bounded, and its line count stays true."""
    n = 2 * COMPACT_AT // 10
    path = tmp_path / OUTCOMES_FILE
    journal = OutcomeJournal(path, keep=KEEP // 10, compact_at=COMPACT_AT // 10)
    during = 0
    for i in range(n):
        journal.append(outcome(i))
        during += journal._compacting is not None
    journal.close()
    assert during > 0  # appends did land while a compaction ran
    assert journal.lines == outcome_lines(path) <= COMPACT_AT // 10 + during
    want = reference(n)
    caches, _, _ = restored(tmp_path)
    same_state(want, caches.bounds)


def test_a_legacy_journal_is_compacted_on_start_and_decisions_are_unchanged(tmp_path, full):
    path = tmp_path / OUTCOMES_FILE
    path.write_bytes(stream())
    tracemalloc.start()
    try:
        caches, learning, n = restored(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == N and learning.journal.lines == KEEP == outcome_lines(path)
    same_state(full, caches.bounds)
    # read line by line, never the 200k outcomes at once (they alone take ~100 MB as objects)
    assert peak < 40e6, peak
    # the next start reads the bounded journal: KEEP outcome lines and one folded line per region
    again, learning, n = restored(tmp_path)
    assert n == KEEP + len(REGIONS)
    same_state(full, again.bounds)


def test_replay_after_the_folded_outcomes_is_exact_and_before_it_is_named(tmp_path):
    n = 30_000
    path = tmp_path / OUTCOMES_FILE
    path.write_bytes(stream(n))
    whole = load_outcomes(path)
    assert folded_through(path) is None
    compact(path, keep=10_000)
    through = folded_through(path)
    assert through == outcome(n - 10_001).known_at
    compacted = load_outcomes(path)
    assert len(compacted) == 10_000 + len(REGIONS) and isinstance(compacted[0], Folded)
    # at every arrival after ``through``, a replay's core holds what it holds with every outcome
    for ts in [through + 0.5, through + 1.5, through + 5_000.5, 1_000.0 + n + 1]:
        a, b = Caches(), Caches()
        a.attach_outcomes(whole)
        b.attach_outcomes(compacted)
        a.catch_up(ts)
        b.catch_up(ts)
        same_state(a.bounds, b.bounds)
    # an arrival by then is decided without the folded evidence (journal_warnings names it)
    early = Caches()
    early.attach_outcomes(compacted)
    early.catch_up(through)
    assert early.bounds == {}
    # a window whose replay is bounded by ``until`` loads only what is known before its end
    assert load_outcomes(path, until=through) == []


KILLER = """
import sys
from pathlib import Path
from llmgw_kernel.cache.outcomes import compact
compact(Path(sys.argv[1]), int(sys.argv[2]))
"""


KEPT = 110_000  # a long write of the new file (the kill lands in it)


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.01])
def test_kill_9_during_a_compaction_loses_nothing(tmp_path, delay):
    n = 120_000
    path = tmp_path / OUTCOMES_FILE
    path.write_bytes(stream(n))
    want = reference(n)
    tmp = Path(str(path) + TMP_SUFFIX)
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(path), str(KEPT)])
    try:
        deadline = time.monotonic() + 60
        while not tmp.exists():  # the compaction is writing its new file
            assert proc.poll() is None and time.monotonic() < deadline, "no compaction started"
            time.sleep(0.0005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    caches, learning, _ = restored(tmp_path)  # the old journal whole, or the new one whole
    same_state(want, caches.bounds)
    assert not tmp.exists() and learning.journal.lines <= COMPACT_AT
    assert [o.request for o in read_journal(path) if not isinstance(o, Folded)][-1] == f"q{n - 1}"
