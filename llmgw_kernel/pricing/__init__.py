"""Prices and token counts: the built-in price table, importers for published pricing files,
and offline token counting. ``decisions/cost.py`` turns these into a request's cost."""

from .importers import import_litellm, import_portkey, main_import, render_pricing_yaml
from .table import PriceEntry, PriceTable, ResolvedPrice, load_table, lookup, resolve
from .tokens import count_tokens, encoding_name

__all__ = [
    "PriceEntry",
    "PriceTable",
    "ResolvedPrice",
    "count_tokens",
    "encoding_name",
    "import_litellm",
    "import_portkey",
    "load_table",
    "lookup",
    "main_import",
    "render_pricing_yaml",
    "resolve",
]
