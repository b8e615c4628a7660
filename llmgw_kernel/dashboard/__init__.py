"""Dashboards' library side: data stores (filters -> cached query results) and the Panel
server thread. The page modules (views) live in the top-level ``dashboards/`` folder."""

from .store import (
    DEFAULT_WINDOW,
    ERROR_OUTCOMES,
    WINDOWS,
    Headline,
    Overview,
    OverviewStore,
    Window,
)

__all__ = ["DEFAULT_WINDOW", "ERROR_OUTCOMES", "WINDOWS", "Headline", "Overview", "OverviewStore", "Window"]
