"""The shared filters: URL query round trip, the one SQL condition, chart buckets."""

from __future__ import annotations

import pytest

from llmgw_kernel.dashboard.filters import Filters, parse_time

NOW = 1_800_000_000.0


def test_the_url_query_round_trips_and_ignores_what_it_does_not_know():
    f = Filters.from_query({"window": [b"24 h"], "team": [b"search"], "user": ["u 1"], "bogus": ["x"]})
    assert (f.window, f.team, f.user, f.route) == ("24 h", "search", "u 1", None)
    assert Filters.from_query({"window": ["24 h"], "team": ["search"], "user": ["u 1"]}) == f
    assert Filters.from_query(_parse(f.to_query())) == f
    assert Filters.from_query({"window": ["3 weeks"]}).window == "1 h"  # an unknown preset: the default


def test_an_explicit_range_wins_over_the_preset_and_round_trips():
    f = Filters.from_query({"since": ["2027-01-15T08:00:00"], "until": ["1800003600"], "route": ["chat"]})
    assert f.bounds(NOW) == (parse_time("2027-01-15T08:00:00"), 1_800_003_600.0)
    assert "window=" not in f.to_query()
    assert Filters.from_query(_parse(f.to_query())) == f
    assert f.with_(window="15 min").bounds(NOW) == (NOW - 900, NOW)  # choosing a preset drops the range


@pytest.mark.parametrize("bad", ["garbage", "inf", "-inf", "nan", "-1e20", "1e20", "0001-01-01T00:00"])
def test_a_bound_that_is_not_a_time_is_dropped_alone(bad):
    """A link with an unusable since/until opens on the other filters it carries, and every
    page link and label can still be made from what is kept (no OverflowError in to_query)."""
    f = Filters.from_query({"since": [bad], "until": ["1800003600"], "team": ["search"], "window": ["24 h"]})
    assert (f.since, f.until, f.team) == (None, 1_800_003_600.0, "search")
    g = Filters.from_query({"until": [bad], "team": ["search"]})
    assert (g.until, g.team) == (None, "search")
    for kept in (f, g):
        assert Filters.from_query(_parse(kept.to_query())) == kept
        assert kept.label(NOW)
    with pytest.raises(ValueError):
        parse_time(bad)


def test_where_names_every_filter_set_and_nothing_else():
    where, params = Filters(window="15 min", key="sha256:abc", model="gpt", provider="openai").where(NOW)
    assert where == (
        "ts >= to_timestamp($since) AND ts <= to_timestamp($until) AND key_id = $key "
        "AND upstream_model = $model AND provider = $provider"
    )
    assert params == {"since": NOW - 900, "until": NOW, "key": "sha256:abc", "model": "gpt", "provider": "openai"}


@pytest.mark.parametrize(("window", "width"), [("15 min", 60), ("1 h", 60), ("24 h", 600), ("7 d", 3 * 3600)])
def test_buckets_cover_the_window_with_at_most_150(window, width):
    start, got, n = Filters(window=window).buckets(NOW)
    assert got == width and n <= 151 and start <= Filters(window=window).bounds(NOW)[0]
    assert start + n * width >= NOW


def test_a_range_that_ended_long_ago_is_not_refreshed():
    from llmgw_kernel.dashboard.page_fill import may_change as _may_change

    assert _may_change(Filters(window="1 h"), NOW)
    assert _may_change(Filters(since=NOW - 3600, until=NOW - 60), NOW)
    assert not _may_change(Filters(since=NOW - 7200, until=NOW - 3600), NOW)


def _parse(query: str) -> dict[str, list[str]]:
    from urllib.parse import parse_qs

    return parse_qs(query)
