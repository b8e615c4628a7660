"""The notebooks' own data folders, kept with ``LLMGW_DATA_DIR`` (found by HLAB, an analyst's outside test).

tune_budgets says "set LLMGW_DATA_DIR to keep the log there": run again the next day with the
same folder, its first cell stopped with ``FileExistsError: ... already holds a request log``
and a traceback. Now the history it wrote is read back (the same teams, requests and spend),
and a folder holding any other log stops the notebook with one sentence (IPython shows a
:class:`llmgw_kernel.lab.Stop` as its message alone). The notebook's own first cell is run here,
as JupyterLab runs it, twice over one folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from log_records import chat_record

from llmgw_kernel import lab
from llmgw_kernel.log.writer import LogWriter

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "tune_budgets.ipynb"


def _first_code_cell() -> str:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def _run(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, str(NOTEBOOK), "exec"), namespace)  # noqa: S102 (the notebook's own cell)
    return namespace


def test_tune_budgets_runs_again_over_the_folder_it_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGW_DATA_DIR", str(tmp_path / "data"))
    first = _run(_first_code_cell())["history"]
    again = _run(_first_code_cell())["history"]
    assert again.rows == first.rows > 1000
    assert list(again.teams) == list(first.teams)  # the notebook's plots and tables follow this order
    for team, t in first.teams.items():
        assert again.teams[team]["requests"] == t["requests"]
        assert again.teams[team]["cost_usd"] == pytest.approx(t["cost_usd"], abs=1e-5)
    assert again.cost_usd == pytest.approx(first.cost_usd)
    assert (again.start, again.end, again.policy) == (first.start, first.end, first.policy)


def test_tune_budgets_over_a_folder_holding_another_log_stops_with_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = LogWriter(tmp_path / "served")
    writer.append(chat_record("r1", 1_800_000_000.0, "hello", "full", "miss"))
    writer.close()
    monkeypatch.setenv("LLMGW_DATA_DIR", str(tmp_path / "served"))
    with pytest.raises(lab.Stop) as stopped:
        _run(_first_code_cell())
    sentence = stopped.value._render_traceback_()
    assert sentence == [str(stopped.value)] and "not a spend history" in sentence[0]
    assert "set LLMGW_DATA_DIR to an empty or new directory" in sentence[0]
