"""Matplotlib figures shown as PNG pictures: the one plotting style of every notebook.

A figure is drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot: no global current
figure, nothing shown twice by the inline backend's end-of-cell hook) and displayed as an
``image/png`` output. A PNG renders the same in JupyterLab, in a static render (nbconvert
HTML, GitHub) and in a saved notebook, with no JavaScript and no network; it can be replaced
in place by a display handle when a control moves (:mod:`.live`).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from IPython.display import Image
    from matplotlib.figure import Figure

DPI = 96
#: the widest figure, in inches: 912 px, drawn at >= 2/3 of its size (10 pt text >= 9 px) in the
#: ~624 px a notebook's output has at 800 px with the file browser closed; a 14-inch row of four
#: panels was shrunk to under half and its labels could not be read
MAX_WIDTH_IN = 9.5


def figure(
    width: float = 10.0, height: float = 3.2, nrows: int = 1, ncols: int = 1, **subplots: Any
) -> tuple[Figure, Any]:
    """A new figure (constrained layout) and its axes (``Figure.subplots``); at most
    :data:`MAX_WIDTH_IN` wide (more panels: more rows)."""
    from matplotlib.figure import Figure

    if width > MAX_WIDTH_IN:
        raise ValueError(f"a figure {width} in wide is shrunk illegibly in a narrow notebook: at most {MAX_WIDTH_IN}")

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **subplots)


def picture(fig: Figure) -> Image:
    """The figure as a PNG picture for ``display`` (the figure itself is not kept)."""
    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return Image(data=buf.getvalue(), format="png")
