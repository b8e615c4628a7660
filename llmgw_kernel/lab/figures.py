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


def figure(
    width: float = 10.0, height: float = 3.2, nrows: int = 1, ncols: int = 1, **subplots: Any
) -> tuple[Figure, Any]:
    """A new figure (constrained layout) and its axes (``Figure.subplots``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **subplots)


def picture(fig: Figure) -> Image:
    """The figure as a PNG picture for ``display`` (the figure itself is not kept)."""
    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return Image(data=buf.getvalue(), format="png")
