"""Controls whose every move re-renders the outputs below them, in place.

``live(render, controls)`` displays the controls, then each output of
``render(**values)`` with a display id; any control's change calls ``render`` again and
replaces each output through its display handle (``update_display_data``). The outputs are
ordinary cell outputs: a static render or a saved notebook shows the first rendering, and
JupyterLab replaces them as the controls move. (``widgets.interactive(...)`` only shows
anything when it is itself displayed, and its output lives in widget state a static render
does not show.)

Sliders update when released or stepped by the keyboard (``continuous_update`` off): each
update is a replay, not an animation frame. An error while rendering replaces the first output
with its traceback, so a person sees it where they looked.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .figures import picture

CONTROL_PX, GAP_PX = 300, 16


def _shown(obj: Any) -> Any:
    """What ``display`` gets for one output: a matplotlib figure becomes a PNG picture."""
    from matplotlib.figure import Figure

    return picture(obj) if isinstance(obj, Figure) else obj


@dataclass
class LiveView:
    """The controls, their display handles, and the last values rendered."""

    controls: Mapping[str, Any]
    handles: list[Any]
    render: Callable[..., Sequence[Any]]
    values: dict[str, Any]

    def refresh(self, _change: Any = None) -> None:
        """Render with the controls' current values and replace every output in place."""
        from IPython.display import Pretty

        self.values = {name: w.value for name, w in self.controls.items()}
        try:
            outputs = list(self.render(**self.values))
        except Exception:  # shown in the notebook, not lost in the kernel's log
            outputs = [Pretty(traceback.format_exc())]
        outputs += [""] * (len(self.handles) - len(outputs))
        for handle, out in zip(self.handles, outputs, strict=False):
            handle.update(_shown(out))


def live(render: Callable[..., Sequence[Any]], controls: Mapping[str, Any], columns: int = 3) -> LiveView:
    """Display ``controls`` (ipywidgets, keyword names of ``render``) and ``render``'s outputs
    (figures, tables, text); every move of any control re-renders them in place."""
    import ipywidgets as widgets  # type: ignore[import-untyped]
    from IPython.display import display

    for w in controls.values():
        if hasattr(w, "continuous_update"):
            w.continuous_update = False
        w.style = {"description_width": "initial"}
    # at most ``columns`` per row, none narrower than a control (300 px: ipywidgets' inline width):
    # a narrow notebook wraps them instead of drawing one over the next
    width = f"max({CONTROL_PX}px, calc((100% - {columns - 1} * {GAP_PX}px) / {columns}))"
    layout = widgets.Layout(
        grid_template_columns=f"repeat(auto-fill, minmax({width}, 1fr))", grid_gap=f"4px {GAP_PX}px"
    )
    display(widgets.GridBox(list(controls.values()), layout=layout))
    values = {name: w.value for name, w in controls.items()}
    handles = [display(_shown(out), display_id=True) for out in render(**values)]
    view = LiveView(controls, handles, render, values)
    for w in controls.values():
        w.observe(view.refresh, names="value")
    return view
