"""Request: why did this request end as it did? One request looked up by its id — the
gateway's (``x-request-id`` / ``x-llmgw-request-id``) or the client's own ``x-request-id`` —
with its time, route, key / team / user, model, outcome and status, the error message, every
attempt (skipped targets shown as skipped), retries and fallback, the cache's decision, the
admission's refusal, the guardrails' verdicts, the policy version, tokens, cost, latency and
time to first token; the bodies only when they were logged (``/request?id=...``).

A view only: the lookup is :func:`llmgw_kernel.dashboard.request_data.request`.
"""

from __future__ import annotations

import contextlib
import html
import json
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

import pandas as pd
import panel as pn
import param
from panel.custom import JSComponent

from llmgw_kernel.dashboard.context import Context
from llmgw_kernel.dashboard.filters import Filters
from llmgw_kernel.dashboard.frame import PageSpec, heading, kpi_html, kpi_pane, ms, note, page_frame, usd
from llmgw_kernel.dashboard.html_table import HtmlTable, number
from llmgw_kernel.dashboard.request_data import MAX_ID_CHARS, RequestData, request, request_href

_ATTEMPT_FORMATS = {"status": number("{:.0f}"), "latency_ms": number("{:,.1f}")}

SEARCH_CSS = """
.search { display: flex; gap: 8px; align-items: flex-end; font: 13px sans-serif; }
.search label { display: inline-flex; flex-direction: column; gap: 2px; color: #333; }
.search input { font: inherit; width: 420px; max-width: 70vw; padding: 4px; border: 1px solid #ccc;
  border-radius: 4px; }
.search button { font: inherit; padding: 5px 12px; border: 1px solid #1f5fa8; background: #1f5fa8; color: #fff;
  border-radius: 4px; cursor: pointer; }
.search :focus-visible { outline: 2px solid #1f5fa8; outline-offset: 1px; }
"""


class SearchForm(JSComponent):  # type: ignore[misc]
    """A plain HTML form (a labelled text input and a submit button), as the filter bar's
    :class:`~llmgw_kernel.dashboard.frame.FilterForm`: submitting sets ``value`` — the page looks
    the id up over its websocket (no page load) and the address bar follows (``?id=...``)."""

    value = param.String(default="")
    _stylesheets: ClassVar[list[str]] = [SEARCH_CSS]
    _esm = f"""
export function render({{ model, el }}) {{
  const form = document.createElement("form")
  form.className = "search"
  form.setAttribute("role", "search")
  form.setAttribute("action", "/request")
  const label = document.createElement("label"), input = document.createElement("input")
  input.name = "id"
  input.type = "search"
  input.maxLength = {MAX_ID_CHARS}
  input.placeholder = "req_… (x-llmgw-request-id) or the client's x-request-id"
  input.value = model.value
  label.append("Request id", input)
  const button = document.createElement("button")
  button.type = "submit"
  button.textContent = "Look up"
  form.append(label, button)
  form.addEventListener("submit", (event) => {{
    event.preventDefault()
    model.value = input.value.trim()
  }})
  model.on("value", () => {{ if (input.value.trim() !== model.value) input.value = model.value }})
  el.append(form)
}}
"""


def spec() -> PageSpec:
    """This page: how a session builds it."""
    return PageSpec("/request", "Request", _Body, refresh_ms=30_000)


def page(ctx: Context) -> pn.viewable.Viewable:
    return page_frame(ctx, spec())


def _session_id() -> str:
    args = pn.state.session_args if pn.state.curdoc is not None else {}
    values = (args or {}).get("id") or [b""]
    raw = values[0]
    return (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip()


class _Body:
    def __init__(self) -> None:
        self.search = SearchForm(value=_session_id(), sizing_mode="stretch_width", margin=(5, 10))
        self.kpis = kpi_pane()
        self.summary = note()
        self.facts = HtmlTable("llmgw-request-facts", max_height=2000)
        self.attempts = HtmlTable("llmgw-attempts", _ATTEMPT_FORMATS, long_text=("error",))
        self.guardrails = HtmlTable("llmgw-request-guardrails")
        self.guardrail_note = note()
        self.bodies = pn.pane.HTML("", sizing_mode="stretch_width", margin=(5, 10))
        self._found: RequestData | None = None  # the request shown, found by its gateway id
        self.search.param.watch(self._address, "value")

    def controls(self) -> list[Any]:
        return [self.search]

    def panes(self) -> list[Any]:
        return [
            self.search, self.summary, self.kpis, heading("Attempts"), self.attempts.pane,
            heading("Request"), self.facts.pane,
            heading("Guardrail verdicts"), self.guardrail_note, self.guardrails.pane, heading("Bodies"), self.bodies,
        ]  # fmt: skip

    def query(self, ctx: Context, filters: Filters) -> RequestData:
        asked, found = self.search.value.strip(), self._found
        if found is not None and found.asked == asked:
            return found  # a logged request never changes: the page's refreshes cost no scan
        data = request(ctx, asked)
        if data.row is not None and data.row.get("request_id") == asked:  # unique; a client's id may be reused
            self._found = data
        return data

    def show(self, data: RequestData) -> None:
        row = data.row or {}
        self.kpis.object = _kpis(row) if data.found else ""
        self.attempts.update(_attempts(data) if data.found else None)
        self.facts.update(_facts(row) if data.found else None)
        verdicts = row.get("guardrails") or []
        self.guardrails.update(pd.DataFrame(verdicts) if verdicts else None)
        self.guardrail_note.object = (
            '<p class="note" data-guardrails="none">no guardrail check fired on this request</p>'
            if data.found and not verdicts
            else ""
        )
        self.bodies.object = _bodies(row) if data.found else ""
        self.summary.object = _summary(data)  # last: its data-found says the rest is there

    def _address(self, *_: Any) -> None:
        """The address bar names the id looked up (the other parameters kept)."""
        location = pn.state.location
        if location is None:
            return
        pairs = [(k, v) for k, v in parse_qsl((location.search or "").lstrip("?")) if k != "id"]
        if self.search.value:
            pairs.append(("id", self.search.value))
        query = urlencode(pairs)
        location.search = f"?{query}" if query else ""


def link(request_id: str) -> str:
    """An escaped link to the request page of ``request_id``."""
    return f'<a href="{html.escape(request_href(request_id) or "")}">{html.escape(request_id)}</a>'


def _summary(d: RequestData) -> str:
    if not d.asked:
        return (
            '<p class="note" data-found="none">Paste a request id: the gateway\'s (<code>x-request-id</code> / '
            "<code>x-llmgw-request-id</code> of the answer, <code>req_…</code>) or the client's own "
            "<code>x-request-id</code>. The whole log is searched, whatever the window.</p>"
        )
    asked = html.escape(d.asked)
    if d.refused is not None:
        return f'<p class="note status error" data-found="refused">{html.escape(d.refused)}</p>'
    if not d.found:
        first, last, rows = d.log_range or (None, None, 0)
        span = f"from {first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S} UTC" if first and last else "empty"
        return (
            f'<p class="note status error" data-found="0">Not found in the log: no request has the id '
            f"<code>{asked}</code>, as the gateway's id or the client's. The log holds {rows:,} requests, "
            f"{span} (a request still in flight is logged when it ends).</p>"
        )
    row = d.row or {}
    by = "the gateway's id" if row.get("request_id") == d.asked else "the client's x-request-id"
    text = f'<p class="note" data-found="{len(d.matches)}">Found by {by}'
    if len(d.matches) > 1:
        others = ", ".join(f"{link(rid)} ({ts:%Y-%m-%d %H:%M:%S})" for ts, rid in d.matches[1:])
        more, plus = (" and more", "+") if d.more_matches else ("", "")
        text += f"; {len(d.matches)}{plus} requests have it, the newest shown; the others: {others}{more}"
    source = row.get("cache_source")
    came = f"; the answer came from {link(source)}" if source and row.get("cache") in ("hit", "semantic-hit") else ""
    return text + f": {_verdict(row, tuple(a.result for a in d.attempts))}{came}</p>"


def _verdict(row: dict[str, Any], results: tuple[str, ...]) -> str:
    """One sentence: how the request ended and why."""
    outcome, status = row.get("outcome"), row.get("status")
    failed = results.count("failed")
    if row.get("admission") in ("budget_exceeded", "rate_limited"):
        why = f"refused by {row['admission'].replace('_', ' ')} ({html.escape(str(row.get('admission_reason') or ''))})"
    elif outcome == "ok" and failed:
        why = f"served after {failed} failed attempt{'s' if failed > 1 else ''} (rescued by a retry or fallback)"
    elif outcome == "ok":
        hit = row.get("cache") in ("hit", "semantic-hit")
        why = "served" + (f" from the cache ({html.escape(str(row.get('cache')))})" if hit else "")
    else:
        why = html.escape(str(row.get("error_message") or row.get("error_type") or "no error message logged"))
    return f"<b>{html.escape(str(outcome))}</b>, HTTP {html.escape(str(status))} — {why}"


def _kpis(row: dict[str, Any]) -> str:
    bad = row.get("outcome") != "ok"
    tokens = row.get("total_tokens")
    return kpi_html([
        ("outcome", str(row.get("outcome") or "–"), "outcome", bad),
        ("status", str(row.get("status") or "–"), "HTTP status", bad),
        ("latency", ms(row.get("latency_ms")), "latency", False),
        ("ttft", ms(row.get("ttft_ms")), "time to first token", False),
        ("tokens", f"{tokens:,}" if tokens is not None else "–", "tokens", False),
        ("cost", usd(row.get("cost_usd")), "cost", False),
    ])  # fmt: skip


def _attempts(d: RequestData) -> pd.DataFrame:
    rows = [
        {"#": i, "target": a.target, "result": a.result, "status": a.status,
         "latency_ms": None if a.skipped else a.latency_ms, "error": a.error or ""}
        for i, a in enumerate(d.attempts, 1)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["#", "target", "result", "status", "latency_ms", "error"])


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.6f}".rstrip("0").rstrip(".") if abs(value) < 1 else f"{value:,.1f}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if hasattr(value, "strftime"):
        return f"{value:%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC"
    return str(value)


#: (label, columns shown joined by " / ") in the facts table's order
_FACTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("request id", ("request_id",)), ("client's x-request-id", ("client_request_id",)),
    ("time (arrival / end)", ("ts", "ts_end")), ("endpoint / API", ("endpoint", "api")),
    ("route", ("route",)), ("key / team / user", ("key_id", "team", "end_user")),
    ("served by (target / provider / model)", ("target", "provider", "upstream_model")),
    ("outcome / status", ("outcome", "status")), ("error type", ("error_type",)), ("error message", ("error_message",)),
    ("plan (targets in order)", ("plan",)), ("routing reason", ("route_reason",)),
    ("retries / backoff ms", ("retries", "backoff_ms")),
    ("cache (decision / reason)", ("cache", "cache_reason")),
    ("cache similarity / threshold", ("cache_similarity", "cache_threshold")),
    ("cache source (the request whose answer it got)", ("cache_source",)),
    ("cache namespace / header", ("cache_namespace", "cache_control")), ("saved USD", ("saved_usd",)),
    ("admission (decision / limit)", ("admission", "admission_reason")), ("soft budgets exceeded", ("budget_flags",)),
    ("reserved USD / tokens", ("reserved_usd", "reserved_tokens")), ("policy version", ("policy_version",)),
    ("tokens (prompt / completion / cached)", ("prompt_tokens", "completion_tokens", "cached_tokens")),
    ("usage source", ("usage_source",)), ("cost USD", ("cost_usd",)),
    ("latency / TTFT / upstream ms", ("latency_ms", "ttft_ms", "upstream_ms")), ("stream", ("stream",)),
    ("bodies logged", ("body_mode",)), ("request / response bytes", ("request_bytes", "response_bytes")),
    ("request / response hash", ("request_hash", "response_hash")), ("user agent", ("user_agent",)),
    ("origin", ("origin",)),
)  # fmt: skip


def _facts(row: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for label, columns in _FACTS:
        values = [_text(row.get(c)) for c in columns]
        rows.append({"field": label, "value": " / ".join(v or "–" for v in values) if any(values) else "–"})
    fell_back = bool(row.get("plan")) and row.get("target") not in (None, (row.get("plan") or [None])[0])
    rows.insert(11, {"field": "fell back", "value": "yes" if fell_back else "no"})
    return pd.DataFrame(rows, columns=["field", "value"])


def _bodies(row: dict[str, Any]) -> str:
    mode = row.get("body_mode")
    if mode not in ("full", "redacted"):
        return (
            f'<p class="note" data-bodies="none">Bodies not logged (<code>log.bodies: '
            f"{html.escape(str(mode))}</code>); the hashes above identify them.</p>"
        )
    parts = []
    for name in ("request", "response"):
        text, chars = row.get(f"{name}_body"), row.get(f"{name}_body_chars")
        if text is None:
            parts.append(f"<h4>{name}</h4><p class=note>none logged</p>")
            continue
        cut = f" (the first {len(text):,} of {chars:,} characters)" if chars and chars > len(text) else ""
        if cut:
            text += "…"
        else:  # the whole body came: indented
            with contextlib.suppress(ValueError):
                text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        parts.append(
            f"<h4>{name} ({html.escape(str(mode))}){cut}</h4>"
            f'<pre data-body="{name}" style="max-height: 360px; overflow: auto; white-space: pre-wrap; '
            f'border: 1px solid #dde1e6; padding: 6px">{html.escape(text)}</pre>'
        )
    return "".join(parts)


__all__ = ["SearchForm", "link", "page", "spec"]
