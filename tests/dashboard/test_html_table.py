"""Plain HTML tables (the overview's): every value escaped, numbers formatted and
right-aligned, missing values empty, long tables cut with a line saying how many rows more."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("panel")

from llmgw_kernel.dashboard.html_table import MAX_ROWS, HtmlTable, number, table_html  # noqa: E402


def _cells(html: str) -> list[list[str]]:
    body = html.split("<tbody>")[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def test_values_are_escaped_formatted_and_missing_values_empty():
    frame = pd.DataFrame(
        {
            "who": ["<script>alert(1)</script>", None],
            "n": [1234, 5],
            "rate": [0.125, np.nan],
            "x": [1.5, 2.0],
        }
    )
    html = table_html(frame, "t", {"rate": number("{:.1%}")})
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert _cells(html) == [["&lt;script&gt;alert(1)&lt;/script&gt;", "1,234", "12.5%", "1.5"], ["", "5", "", "2"]]
    assert re.findall(r"<th>(.*?)</th>", html) == ["who", "n", "rate", "x"]
    assert 'class="llmgw-table t"' in html and 'data-rows="2"' in html


def test_a_long_table_stops_at_max_rows_and_says_how_many_more():
    frame = pd.DataFrame({"i": range(MAX_ROWS + 7)})
    html = table_html(frame)
    assert len(_cells(html)) == MAX_ROWS
    assert "7 more rows not shown" in html


def test_an_empty_answer_is_an_empty_table_with_its_header():
    html = table_html(pd.DataFrame({"a": [], "b": []}))
    assert _cells(html) == [] and re.findall(r"<th>(.*?)</th>", html) == ["a", "b"]
    assert 'data-rows="0"' in table_html(None)


def test_update_changes_the_pane_only_when_the_rows_change():
    table = HtmlTable("t")
    table.update(pd.DataFrame({"a": [1]}))
    first = table.pane.object
    table.update(pd.DataFrame({"a": [1]}))
    assert table.pane.object is first
    table.update(pd.DataFrame({"a": [2]}))
    assert _cells(table.pane.object) == [["2"]]


def test_long_text_stays_on_one_line_with_all_of_it_on_hover():
    message = "team 'search' daily budget of $400.00 is exhausted <and more>"
    html = table_html(pd.DataFrame({"error_message": [message], "n": [1]}), long_text=("error_message",))
    escaped = message.replace("'", "&#x27;").replace("<", "&lt;").replace(">", "&gt;")
    assert f'<td class="long" title="{escaped}">{escaped}</td>' in html


def test_a_link_column_links_each_value_with_the_address_escaped():
    """The overview's request ids link to the request page; an id of quotes and markup (a client
    chose it) stays text, in the link's text and in its address."""
    from llmgw_kernel.dashboard.request_data import request_href

    frame = pd.DataFrame({"request_id": ["req_1", '"><script>x</script>', None], "n": [1, 2, 3]})
    html = table_html(frame, links={"request_id": request_href})
    assert "<script>" not in html
    cells = _cells(html)
    assert cells[0][0] == '<a href="/request?id=req_1">req_1</a>'
    assert (
        cells[1][0]
        == '<a href="/request?id=%22%3E%3Cscript%3Ex%3C%2Fscript%3E">&quot;&gt;&lt;script&gt;x&lt;/script&gt;</a>'
    )
    assert cells[2][0] == ""  # no id: no link
