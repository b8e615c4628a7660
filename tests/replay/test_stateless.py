"""A policy with no stateful stage is replayed over columns (``replay/stateless.py``), and that
replay equals the composed fold's, column for column and figure for figure.

Logs: the synthetic log of ``benchmarks/replay_scale.py`` (written through the real log writer
by the live decision functions: fallbacks after failures, unknown models, budget and rpm
refusals, exact hits) and the composition test's log, served by a real ``llmgw serve``. Each
candidate is replayed twice in the same process — columnar (``stages.COLUMNAR``, the default)
and folded — and the two results are compared with ``assert_frame_equal`` and ``==``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from test_composition import composed_policy, served  # noqa: F401  (a fixture: the served log)

from llmgw_kernel import load_policy, replay
from llmgw_kernel.keys.store import KeyHistory
from llmgw_kernel.replay import load_window, stages
from llmgw_kernel.replay.stateless import is_stateless

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import replay_scale  # noqa: E402


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("stateless") / "log"
    replay_scale.generate(d, 12_000, seed=3, chunk=4000)
    return d


def _write(doc: dict[str, Any], tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def both_ways(policy: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """(the columnar replay, the folded replay) of one candidate."""
    seen: list[bool] = []
    decide = stages.decide

    def spy(*args: Any, **kwargs: Any) -> Any:
        d = decide(*args, **kwargs)
        seen.append(d.stateless is not None)
        return d

    monkeypatch.setattr(stages, "decide", spy)
    columnar = replay(policy, str(data_dir))
    monkeypatch.setattr(stages, "COLUMNAR", False)
    folded = replay(policy, str(data_dir))
    monkeypatch.setattr(stages, "COLUMNAR", True)
    assert seen == [True, False], "the columnar path was not taken for a stateless policy"
    return columnar, folded


def assert_equal(columnar: Any, folded: Any) -> None:
    pd.testing.assert_frame_equal(columnar.decisions, folded.decisions)
    assert columnar.summary == folded.summary
    assert columnar.differences == folded.differences


def _candidates() -> dict[str, dict[str, Any]]:
    base = replay_scale.policy_doc("routing")
    same_as_live = replay_scale.policy_doc("live")
    for key in ("budgets", "rate_limits", "cache"):
        same_as_live.pop(key)
    unpriced = copy.deepcopy(base)  # a target without a price, never attempted in the log
    unpriced["routes"]["assistant"]["targets"].insert(0, {"provider": "openai", "model": "mystery-1", "weight": 30})
    retries = copy.deepcopy(base)  # expected costs with failure rates raised to 3 attempts
    for route in retries["routes"].values():
        route["retry"] = {"attempts": 3}
    reordered = copy.deepcopy(base)  # fallbacks in another order, other prices
    reordered["routes"]["batch"]["targets"].reverse()
    reordered["pricing"]["gpt-4o-mini"] = {"input_per_1m": 0.3, "output_per_1m": 1.2, "cached_input_per_1m": 0.1}
    return {"routing": base, "live-plans": same_as_live, "unpriced": unpriced, "retries": retries,
            "reordered": reordered}  # fmt: skip


@pytest.mark.parametrize("name", list(_candidates()))
def test_a_stateless_candidate_replays_over_columns_as_the_fold_replays_it(
    name: str, synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    columnar, folded = both_ways(_write(_candidates()[name], tmp_path, name), synthetic, monkeypatch)
    assert_equal(columnar, folded)
    s = columnar.summary
    assert s["requests"] == 12_000 and s["outcome"]["served_upstream"] > 11_900
    assert s["differs_from_log"]["limits"] > 0 and s["differs_from_log"]["cache"] > 0  # live refusals, live hits
    if name == "unpriced":
        assert s["cost_usd"] is None and s["basis"]["unpriced_targets"] == ["openai/mystery-1"]
        assert s["basis"]["unmeasured_targets"] == ["openai/mystery-1"]
    else:
        assert s["cost_usd"] is not None and s["cost_usd"] > 0


def test_the_served_log_replays_over_columns_as_the_fold_replays_it(
    served: Any,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gw, rows = served
    doc = yaml.safe_load(Path(gw.policy_path).read_text())
    for key in ("budgets", "rate_limits", "cache"):
        doc.pop(key, None)
    columnar, folded = both_ways(_write(doc, tmp_path, "no-limits"), Path(gw.data_dir), monkeypatch)
    assert_equal(columnar, folded)
    assert columnar.summary["requests"] == len(rows)


def test_a_limit_a_cache_or_a_key_of_its_own_is_folded(synthetic: Path, tmp_path: Path) -> None:
    window = load_window(str(synthetic))
    base = replay_scale.policy_doc("routing")
    assert is_stateless(load_policy(base), window, None, None)
    live = load_policy(replay_scale.policy_doc("live"))
    for key in ("budgets", "rate_limits", "cache"):
        doc = {**base, key: replay_scale.policy_doc("live")[key]}
        assert not is_stateless(load_policy(doc), window, None, None), key
    assert not is_stateless(load_policy(base), window, None, [live])  # rows decided by several versions
    create = {"type": "create", "id": "k1", "ts": 0.0, "hash": "h", "last4": "abcd", "settings": {"name": "a"}}
    keys = KeyHistory([create])
    assert is_stateless(load_policy(base), window, keys, None)
    keys.apply({"type": "update", "id": "k1", "ts": 1.0, "settings": {"name": "a", "rpm": 10}})
    keys.apply(
        {"type": "update", "id": "k1", "ts": 2.0, "settings": {"name": "a"}}
    )  # limited once: its requests then couple
    assert not is_stateless(load_policy(base), window, keys, None)


def test_a_coded_column_reads_as_the_list_it_codes() -> None:
    """``columns.Coded`` (the string columns of the routing and stateless stages) becomes in
    pandas what the list of str | None it codes becomes, and reads as that list."""
    import numpy as np

    from llmgw_kernel.replay.columns import Coded, as_objects

    for values, codes in ((["a", "b"], [0, -1, 1, 1]), (["a"], [-1, -1]), ([], [-1]), (["x"], [])):
        coded = Coded(values, np.asarray(codes))
        plain = [values[c] if c >= 0 else None for c in codes]
        assert list(coded) == plain == [coded[i] for i in range(len(coded))] == list(as_objects(coded))
        pd.testing.assert_frame_equal(pd.DataFrame({"c": coded.to_pandas()}), pd.DataFrame({"c": plain}))


def test_the_decisions_frame_is_built_when_first_read(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller that reads only the summary (the benchmark, a sweep) never pays for the frame;
    ``compare_to_log()`` counts what the frame's ``differs`` column would; the frame is built once."""
    from llmgw_kernel.replay import columns

    built: list[int] = []
    to_pandas = columns.to_pandas

    def counting(column: Any) -> Any:
        built.append(1)
        return to_pandas(column)

    monkeypatch.setattr(columns, "to_pandas", counting)
    result = replay(_write(_candidates()["routing"], tmp_path, "routing"), str(synthetic))
    assert result.summary["requests"] == 12_000 and not built
    differs = result.compare_to_log()
    assert differs == result.summary["differs_from_log"]["any"] > 0 and not built
    frame = result.decisions
    assert built and result.decisions is frame
    assert int(frame["differs"].sum()) == differs == result.compare_to_log()
    assert len(frame) == 12_000 and frame.index.name == "request_id"
