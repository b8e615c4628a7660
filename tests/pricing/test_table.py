"""The built-in price table: it loads, every entry says where and when, names resolve."""

from __future__ import annotations

from datetime import date

import pytest

from llmgw_kernel.pricing import PriceEntry, load_table, lookup
from llmgw_kernel.pricing.table import parse_table


def test_table_loads_once_with_version_and_date():
    table = load_table()
    assert table is load_table()
    assert table.version and isinstance(table.updated, date)
    assert {"openai", "anthropic", "google"} <= table.providers
    assert len(table.entries) >= 25


def test_every_entry_has_a_source_url_an_as_of_date_and_sane_prices():
    for entry in load_table().entries.values():
        assert entry.source.startswith("https://"), entry.model
        assert isinstance(entry.as_of, date) and entry.as_of <= load_table().updated, entry.model
        assert entry.input_per_1m >= 0 and entry.output_per_1m >= 0
        if entry.cached_input_per_1m is not None:
            assert entry.cached_input_per_1m < entry.input_per_1m, entry.model


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),  # dated snapshot -> family
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # exact name first: that snapshot has its own price
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("openai/gpt-4.1-mini", "gpt-4.1-mini"),  # provider/model
        ("my-openai/gpt-4.1", "gpt-4.1"),  # a gateway's own provider name is not a table provider
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),  # alias
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("anthropic/claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
    ],
)
def test_lookup_resolves_aliases_snapshots_and_prefixes(name, model):
    entry = lookup(name)
    assert isinstance(entry, PriceEntry) and entry.model == model


@pytest.mark.parametrize(
    "name",
    ["no-such-model", "gpt-4o-audio-preview", "gpt-4o-realtime-preview-2024-10-01", "anthropic/gpt-4o", "gpt-4"],
)
def test_lookup_never_guesses(name):
    assert lookup(name) is None


def test_figures_of_a_few_entries():
    assert (lookup("gpt-4o").input_per_1m, lookup("gpt-4o").output_per_1m) == (2.5, 10.0)
    assert lookup("gpt-4o-2024-05-13").input_per_1m == 5.0
    assert lookup("claude-opus-4-1").cached_input_per_1m == 1.5
    assert lookup("text-embedding-3-small").output_per_1m == 0
    assert lookup("gemini-2.5-flash").cached_input_per_1m is None  # not confirmed, so not listed


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ({"version": "1", "updated": date(2026, 1, 1)}, "missing providers"),
        (
            {
                "version": "1",
                "updated": date(2026, 1, 1),
                "providers": {"p": {"models": {"m": {"input": 1, "output": 2}}}},
            },
            "providers.p.models.m: needs a source URL and an as_of date",
        ),
        (
            {
                "version": "1",
                "updated": date(2026, 1, 1),
                "providers": {
                    "p": {"source": "https://x", "as_of": date(2026, 1, 1), "models": {"m": {"input": -1, "output": 2}}}
                },
            },
            "providers.p.models.m: prices must be numbers >= 0",
        ),
        (
            {
                "version": "1",
                "updated": date(2026, 1, 1),
                "providers": {"p": {"source": "https://x", "as_of": date(2026, 1, 1), "models": {"m": {"output": 2}}}},
            },
            "providers.p.models.m: missing input",
        ),
    ],
)
def test_parse_errors_name_the_path(doc, error):
    with pytest.raises(ValueError, match=error.replace(".", r"\.")):
        parse_table(doc)
