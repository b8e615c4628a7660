"""A small synthetic log of ``benchmarks/replay_scale.py`` (its 1M-row benchmark's generator,
written through the real log writer) for tests of the replay cache: 3,000 rows in 3 segments."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def three_segment_log(tmp_path_factory: pytest.TempPathFactory, name: str, seed: int) -> Path:
    """A new ``<tmp>/<name>/log`` of 3,000 rows in 3 segments, drawn from ``seed``."""
    import replay_scale

    d = tmp_path_factory.mktemp(name) / "log"
    replay_scale.generate(d, 3_000, seed=seed, chunk=1_000)
    return d
