"""The built-in price table (``prices.yaml``) and the policy-then-table price resolution.

>>> entry = lookup("gpt-4o-2024-08-06")          # a dated snapshot resolves to its family
>>> entry.model, entry.input_per_1m, entry.cached_input_per_1m
('gpt-4o', 2.5, 1.25)
>>> lookup("openai/gpt-4o-mini").model, lookup("no-such-model")
('gpt-4o-mini', None)

The table is read once per process (``load_table`` is cached). Prices are USD per 1M tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import yaml

# A dated or versioned snapshot suffix: -2024-08-06, -20250514, -latest, -001 (Gemini).
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest|\d{3})$")


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """One model's list price, USD per 1M tokens, with where and when it was read."""

    model: str
    provider: str
    input_per_1m: float
    output_per_1m: float
    cached_input_per_1m: float | None
    source: str
    as_of: date


@dataclass(frozen=True, slots=True)
class ResolvedPrice:
    """The price a cost is computed with, and where it came from ("policy" or "table:<version>")."""

    input_per_1m: float
    output_per_1m: float
    cached_input_per_1m: float | None
    source: str


@dataclass(frozen=True)
class PriceTable:
    version: str
    updated: date
    entries: Mapping[str, PriceEntry]  # model id -> entry
    aliases: Mapping[str, str]  # other id -> model id

    @property
    def providers(self) -> frozenset[str]:
        return frozenset(e.provider for e in self.entries.values())

    def lookup(self, model: str) -> PriceEntry | None:
        """Exact id or alias first, then the id without a snapshot suffix; ``provider/`` prefixes are ignored
        unless they name a different provider of the table (``anthropic/gpt-4o`` is None)."""
        name = model.strip().lower()
        prefix = None
        if "/" in name:
            prefix, name = name.rsplit("/", 1)
            prefix = prefix.rsplit("/", 1)[-1]
        entry = self._get(name)
        if entry is None:
            stripped = _SNAPSHOT.sub("", name)
            entry = self._get(stripped) if stripped != name else None
        if entry is not None and prefix in self.providers and prefix != entry.provider:
            return None
        return entry

    def _get(self, name: str) -> PriceEntry | None:
        return self.entries.get(self.aliases.get(name, name))


def parse_table(doc: Mapping[str, Any], origin: str = "prices.yaml") -> PriceTable:
    """Validate a raw price document into a ``PriceTable`` (errors name the path)."""
    entries: dict[str, PriceEntry] = {}
    aliases: dict[str, str] = {}
    for key in ("version", "updated", "providers"):
        if key not in doc:
            raise ValueError(f"{origin}: missing {key}")
    for provider, block in doc["providers"].items():
        for model, spec in (block.get("models") or {}).items():
            path = f"{origin}: providers.{provider}.models.{model}"
            source, as_of = spec.get("source", block.get("source")), spec.get("as_of", block.get("as_of"))
            if not source or not isinstance(as_of, date):
                raise ValueError(f"{path}: needs a source URL and an as_of date")
            try:
                prices = [spec["input"], spec["output"], spec.get("cached_input")]
            except KeyError as e:
                raise ValueError(f"{path}: missing {e.args[0]}") from None
            if any(p is not None and (not isinstance(p, int | float) or p < 0) for p in prices):
                raise ValueError(f"{path}: prices must be numbers >= 0")
            if model in entries:
                raise ValueError(f"{path}: listed twice")
            entries[model] = PriceEntry(
                model,
                provider,
                float(prices[0]),
                float(prices[1]),
                None if prices[2] is None else float(prices[2]),
                str(source),
                as_of,
            )
            for alias in spec.get("aliases") or ():
                aliases[alias] = model
    return PriceTable(str(doc["version"]), doc["updated"], entries, aliases)


@cache
def load_table() -> PriceTable:
    """The packaged table, read once."""
    text = resources.files(__package__).joinpath("prices.yaml").read_text(encoding="utf-8")
    return parse_table(yaml.safe_load(text))


def lookup(model: str) -> PriceEntry | None:
    """The built-in price of ``model`` (see ``PriceTable.lookup``), or None."""
    return load_table().lookup(model)


def resolve(pricing: Mapping[str, Any], target_id: str, table: PriceTable | None = None) -> ResolvedPrice | None:
    """Policy ``pricing["provider/model"]``, then ``pricing["model"]``, then the built-in table.

    ``target_id`` is the gateway's ``<policy provider name>/<model>``. A policy price without a
    cached-input price bills cached tokens at its input price (never less than the policy says).
    """
    model = target_id.split("/", 1)[1] if "/" in target_id else target_id
    price = pricing.get(target_id)
    if price is None:
        price = pricing.get(model)
    if price is not None:
        cached = getattr(price, "cached_input_per_1m", None)
        return ResolvedPrice(price.input_per_1m, price.output_per_1m, cached, "policy")
    table = table or load_table()
    entry = table.lookup(model)
    if entry is None:
        return None
    return ResolvedPrice(entry.input_per_1m, entry.output_per_1m, entry.cached_input_per_1m, f"table:{table.version}")
