"""Figures a narrow notebook can still read (found by HLAB, an analyst's outside test).

At 800 px (file browser closed) a notebook's output is ~624 px wide; policy_lab's row of four
panels, 14 in (1344 px), was drawn at under half its size and no label could be read; the
routing and semantic-cache sweeps (13 in) and the budgets' spend bars (12 in) barely better.
``lab.figure`` now refuses a figure wider than ``MAX_WIDTH_IN`` (more panels: more rows), and
test_jupyterlab measures every picture of every notebook at 800 px in the browser.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmgw_kernel import lab
from llmgw_kernel.lab.figures import MAX_WIDTH_IN

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_a_figure_wider_than_a_narrow_notebook_reads_is_refused():
    fig, axes = lab.figure(MAX_WIDTH_IN, 6, 2, 2)
    assert axes.shape == (2, 2) and fig.get_figwidth() == MAX_WIDTH_IN
    with pytest.raises(ValueError, match="at most 9.5"):
        lab.figure(14, 3.4, 1, 4)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_notebook_asks_for_a_figure_wider_than_that(nb: Path):
    source = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
    widths = [float(w) for w in re.findall(r"lab\.figure\(\s*([\d.]+)", source)]
    assert widths and max(widths) <= MAX_WIDTH_IN, widths
