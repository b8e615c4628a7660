"""The guardrails replay stage: what a candidate's guardrails would have blocked, redacted or
flagged on a logged window, per check, rule and type, with examples shown redacted.

Each logged request is checked by the live code itself — the route's compiled checks
(``policy._guardrails[route]``, :mod:`llmgw_kernel.guardrails.compile`) through
:class:`~llmgw_kernel.guardrails.request.RequestGuard` — on its logged ``request_body``
(input; a ``/v1/messages`` row is logged in the chat form the live checks read) and, when it
was not blocked there, on its logged ``response_body`` (output). The verdicts are those the
live proxy logs (:meth:`~llmgw_kernel.guardrails.verdicts.Verdicts.summary`), so the live
policy replayed over the traffic it served reproduces its ``guardrails`` column.

What the log allows (``summary["guardrails"]["not_replayable"]``, and a sentence in
``warnings`` for each, never silence):

- ``bodies: hashed | none``: no text, so no body check can be replayed on those rows
  (``hashed``, ``none``); a window with none replayable is *refused* (``refused``);
- ``bodies: redacted``: values the live input checks redacted are placeholders in the log,
  so a candidate cannot see them (``redacted_values``: those rows are not compared);
- output checks read the answer *as it was sent* (after the live output checks): a row whose
  live output checks redacted or blocked is not compared on its output side; a streamed answer
  is checked whole (live, a stream is checked a held-back window at a time), so a stream's
  output verdicts are estimates, not compared either;
- a ``/v1/responses`` answer passed through to an ``openai``/``azure`` target was checked live
  on texts the log's chat form does not hold (reasoning summaries, tool results, citation
  titles: docs/providers.md), so its output side is not compared either.

Distinct bodies are checked once (a window repeats prompts: retries, templates, cache hits).
A request the candidate blocks on input never reaches admission, the cache or the provider:
:func:`llmgw_kernel.replay.replay` leaves it out of the other stages and merges it back.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

if TYPE_CHECKING:
    from ..guardrails.compile import Guardrails
    from ..policy.model import Policy
    from .window import Window

#: the log columns the stage reads besides the replay's own (a window built with them exposes
#: them; each is read from the log when first used)
GUARDRAIL_COLUMNS = ("body_mode", "response_body", "guardrails")
#: the endpoints whose bodies the live input checks read
CHECKED_ENDPOINTS = ("chat.completions", "embeddings")
#: examples kept per (stage, check, type, action), and the characters shown around a finding
EXAMPLES_PER_VERDICT = 3
EXAMPLE_CONTEXT_CHARS = 80
_STRENGTH = {"flag": 1, "redact": 2, "block": 3}
_BY_STRENGTH = {s: a for a, s in _STRENGTH.items()}


@dataclass
class RowOutcome:
    """One distinct logged body's verdicts under the candidate (shared by identical bodies)."""

    verdicts: list[dict[str, Any]] | None
    blocked: str | None  # input | output | None
    examples: list[dict[str, Any]] = field(default_factory=list)  # redacted texts, one per verdict key


@dataclass
class GuardrailDecisions:
    """Per request (window order): the candidate's verdicts, and which rows the stage compared
    with the log (``compared``) or could not check (``reason``: hashed, none, redacted_values)."""

    verdicts: list[list[dict[str, Any]] | None]
    blocked: list[str | None]
    compared: np.ndarray
    differs: np.ndarray
    not_replayable: dict[str, int]
    examples: dict[tuple[str, str, str, str], list[dict[str, Any]]]
    scanned: int  # rows checked
    distinct: int  # distinct bodies checked

    @functools.cached_property
    def blocked_input(self) -> np.ndarray:
        """Rows the candidate blocks before they reach the provider (left out of the other stages)."""
        out = np.zeros(len(self.blocked), bool)
        if self.scanned:  # only checked rows can be blocked
            out[[i for i, b in enumerate(self.blocked) if b == "input"]] = True
        return out


def guardrail_decisions(
    policy: Policy, window: Window, versions: Mapping[str, Policy] | None = None
) -> GuardrailDecisions:
    """The window's :class:`GuardrailDecisions`, decided once and kept on the window
    (``window["_guardrails"]``): the composition decides them before the other stages."""
    got = window.get("_guardrails")
    if not isinstance(got, GuardrailDecisions):
        got = window["_guardrails"] = decide_guardrails(policy, window, versions)
    return got


def decide_guardrails(
    policy: Policy, window: Window, versions: Mapping[str, Policy] | None = None
) -> GuardrailDecisions:
    """Check every logged request the live proxy routed with the candidate's guardrails on its
    route (``versions``: each row by the policy version that served it, when given)."""
    n = len(window)
    verdicts: list[list[dict[str, Any]] | None] = [None] * n
    blocked: list[str | None] = [None] * n
    compared = np.zeros(n, bool)
    differs = np.zeros(n, bool)
    missing = {"hashed": 0, "none": 0, "redacted_values": 0}
    examples: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    if not _any_rails(policy, versions) and not _any_logged(window):  # nothing to check, nothing to compare
        return GuardrailDecisions(verdicts, blocked, compared, differs, missing, examples, 0, 0)
    logged = _logged_verdicts(window)
    names = ("request_id", "route", "endpoint", "plan", "body_mode", "request_body", "response_body", "stream",
             "policy_version", "api", "target")  # fmt: skip
    window.prefetch(names)
    seen: dict[tuple[int, str, str, str | None], RowOutcome] = {}
    rows = zip(*(_col(window, name) for name in names), strict=True)
    scanned = 0
    for i, (rid, route, endpoint, plan, mode, req, resp, stream, version, api, target) in enumerate(rows):
        pol = versions.get(version, policy) if versions else policy
        rails = pol._guardrails.get(route) if plan is not None and endpoint in CHECKED_ENDPOINTS else None
        if rails is None:
            compared[i] = plan is not None
            differs[i] = compared[i] and logged[i] is not None
            continue
        if mode in ("hashed", "none") or req is None:
            missing[mode if mode in ("hashed", "none") else "none"] += 1
            continue
        scanned += 1
        answer = resp if endpoint == "chat.completions" and rails.output else None
        key = (id(rails), endpoint, req, answer)
        out = seen.get(key)
        if out is None:
            out = seen[key] = check_logged(rails, endpoint, req, answer)
        verdicts[i], blocked[i] = out.verdicts, out.blocked
        for ex in out.examples:
            kept = examples.setdefault(example_key(ex), [])
            if len(kept) < EXAMPLES_PER_VERDICT:
                kept.append({"request_id": rid, **ex})
        live_input_redacted = mode == "redacted" and _acted(logged[i], "input", ("redact",))
        if live_input_redacted:
            missing["redacted_values"] += 1
            continue
        output_exact = (
            not stream
            and not _acted(logged[i], "output", ("redact", "block"))
            and not _passed_through(pol, api, target)
        )
        compared[i] = True
        differs[i] = _comparable(verdicts[i], output_exact) != _comparable(logged[i], output_exact)
    return GuardrailDecisions(verdicts, blocked, compared, differs, missing, examples, scanned, len(seen))


def check_logged(rails: Guardrails, endpoint: str, request_body: str, response_body: str | None) -> RowOutcome:
    """The live checks of ``rails`` on one logged request (and its answer, when given): the
    verdicts the live proxy would log, which stage blocked, and one redacted example per
    verdict."""
    from ..guardrails.request import RequestGuard
    from ..guardrails.stage import GuardrailFailure
    from ..guardrails.verdicts import Blocked

    try:
        body = orjson.loads(request_body)
    except orjson.JSONDecodeError:
        return RowOutcome(None, None)
    if not isinstance(body, dict) or "unparsed" in body:
        return RowOutcome(None, None)
    guard = RequestGuard(rails)
    blocked: str | None = None
    try:
        guard.check_request(body, endpoint)
    except Blocked:
        blocked = "input"
    except GuardrailFailure:
        blocked = "input"  # live: a 500 that refuses the request, which never reaches the provider
    if blocked is None and response_body is not None:
        try:
            guard.check_completion(response_body.encode())
        except (Blocked, GuardrailFailure):
            blocked = "output"
    verdicts = guard.verdicts.summary()
    return RowOutcome(verdicts, blocked, _examples(rails, endpoint, request_body, response_body, guard))


def _examples(
    rails: Guardrails, endpoint: str, request_body: str, response_body: str | None, guard: Any
) -> list[dict[str, Any]]:
    """One example per (stage, check, type, action): the text the finding was in, with every
    value any check found there replaced by its placeholder (the live redaction, every check
    acting as ``redact``), cut around the first placeholder of the finding's type."""
    if not guard.verdicts.reasons:
        return []
    texts = {"input": _redacted_all(rails, endpoint, request_body, None), "output": None}
    if response_body is not None and any(r.stage == "output" for r in guard.verdicts.reasons):
        texts["output"] = _redacted_all(rails, endpoint, request_body, response_body)
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for r in guard.verdicts.reasons:
        key = (r.stage, r.check, r.type, r.action)
        if key in out or texts[r.stage] is None:
            continue
        text = _at(texts[r.stage], r.where)
        out[key] = {"stage": r.stage, "check": r.check, "rule": r.rule, "type": r.type, "action": r.action,
                    "where": r.where, "text": _around(text, r.type) if isinstance(text, str) else None}  # fmt: skip
    return list(out.values())


def _redacted_all(rails: Guardrails, endpoint: str, request_body: str, response_body: str | None) -> Any:
    """The request (``response_body`` None) or the answer with every finding of every check
    replaced by its placeholder: a check that blocks or flags redacts here, so no detected
    value is ever shown."""
    import dataclasses

    from ..guardrails.compile import Guardrails
    from ..guardrails.redact import Redactor
    from ..guardrails.stage import GuardrailFailure, guard_completion, guard_request
    from ..guardrails.verdicts import Verdicts

    def redacting(checks: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(dataclasses.replace(c, action="redact") for c in checks)

    all_redact = Guardrails(redacting(rails.input), redacting(rails.output), rails.holdback)
    redactor = Redactor()
    try:
        body = orjson.loads(request_body)
        guard_request(all_redact.input, body, endpoint, redactor, Verdicts())
        if response_body is None:
            return body
        answer = orjson.loads(response_body)
        if isinstance(answer, dict):
            guard_completion(all_redact.output, answer, redactor, Verdicts())
        return answer
    except (orjson.JSONDecodeError, GuardrailFailure):
        return None


def redacted_request(rails: Guardrails, endpoint: str, request_body: str) -> Any:
    """A logged request (JSON text) with every value ``rails``' input checks find replaced by
    its placeholder, whatever the checks' actions (a notebook shows texts this way)."""
    return _redacted_all(rails, endpoint, request_body, None)


_PATH = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def _at(doc: Any, where: str) -> Any:
    """The value at a reason's ``where`` (``messages[1].content[0].text``) in ``doc``; inside
    tool-call arguments (a JSON string) the path goes on into the parsed arguments."""
    value = doc
    for index, key in _PATH.findall(where):
        if isinstance(value, str) and key:
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                return value
        if index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        elif key and isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return value if isinstance(value, str) else None
    return value


def _around(text: str, type_: str) -> str:
    """``text`` cut to :data:`EXAMPLE_CONTEXT_CHARS` on each side of its first placeholder of ``type_``."""
    at = text.find(f"<{type_.upper()}_")
    if at < 0 or len(text) <= 2 * EXAMPLE_CONTEXT_CHARS:
        return text if len(text) <= 2 * EXAMPLE_CONTEXT_CHARS else text[: 2 * EXAMPLE_CONTEXT_CHARS] + "…"
    start = max(0, at - EXAMPLE_CONTEXT_CHARS)
    end = min(len(text), at + EXAMPLE_CONTEXT_CHARS)
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def example_key(ex: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """The verdict an example shows: ``EXAMPLES_PER_VERDICT`` are kept per key."""
    return (ex["stage"], ex["check"], ex["type"], ex["action"])


def _any_rails(policy: Policy, versions: Mapping[str, Policy] | None) -> bool:
    return bool(policy._guardrails) or any(p._guardrails for p in (versions or {}).values())


def _col(window: Window, name: str) -> list[Any]:
    """A column as a list (all None when the window does not expose it)."""
    return window[name] if name in window else [None] * len(window)


def _any_logged(window: Window) -> bool:
    """Whether any row of the window has logged verdicts (read in bulk: most rows have none)."""
    return "guardrails" in window and window.arrow("guardrails").null_count < len(window)


def _passed_through(policy: Policy, api: str | None, target: str | None) -> bool:
    """Whether a row's answer was a Responses answer passed through (its live output checks also
    read texts its logged chat form does not hold)."""
    if api != "responses" or not target:
        return False
    provider = policy.providers.get(target.split("/", 1)[0])
    return provider is not None and provider.kind in ("openai", "azure") and provider.passthrough is not False


def _logged_verdicts(window: Window) -> list[list[dict[str, Any]] | None]:
    """The live verdicts of each row (the log's ``guardrails`` column; None on a log without it)."""
    return _col(window, "guardrails") if _any_logged(window) else [None] * len(window)


def _acted(verdicts: list[dict[str, Any]] | None, stage: str, actions: tuple[str, ...]) -> bool:
    return any(v["stage"] == stage and v["action"] in actions for v in verdicts or ())


def _comparable(verdicts: list[dict[str, Any]] | None, output: bool) -> list[tuple[Any, ...]]:
    """The verdicts as compared with the log: every field, the confidence to 6 places; output
    entries only when the logged answer is what the live output checks read (``output``)."""
    return sorted(
        (v["stage"], v["name"], v["rule"], v["type"], v["action"], int(v["count"]), round(float(v["score"]), 6))
        for v in verdicts or ()
        if output or v["stage"] == "input"
    )


def strongest(verdicts: list[dict[str, Any]] | None) -> str | None:
    """The strongest action in ``verdicts`` (block, then redact, then flag; None: nothing fired)."""
    best = max((_STRENGTH.get(v["action"], 0) for v in verdicts or ()), default=0)
    return _BY_STRENGTH.get(best)


def _actions(verdicts: list[list[dict[str, Any]] | None]) -> Counter[str | None]:
    """Requests per strongest action (rows without a verdict — most of a window — skipped)."""
    return Counter(strongest(v) for v in verdicts if v)


def guardrail_columns(window: Window, d: GuardrailDecisions) -> tuple[dict[str, Any], np.ndarray | None]:
    """The stage's columns of ``.decisions`` and its differs (None when neither the candidate
    nor the log has a guardrail verdict: nothing to compare, ``differs_from_log`` as before)."""
    if not d.scanned and not _any_logged(window):  # no verdict either way: nothing compared, no object per row
        nones = np.full(len(window), None, object)
        names = ("logged_guardrail_action", "replay_guardrail_action", "replay_guardrail_blocked", "replay_guardrails")
        return dict.fromkeys(names, nones), None
    logged = _logged_verdicts(window)
    cols = {
        "logged_guardrail_action": [strongest(v) if v else None for v in logged],
        "replay_guardrail_action": [strongest(v) if v else None for v in d.verdicts],
        "replay_guardrail_blocked": d.blocked,
        "replay_guardrails": d.verdicts,
    }
    return cols, d.differs


def guardrail_summary(policy: Policy, window: Window, d: GuardrailDecisions) -> dict[str, Any]:
    """``summary["guardrails"]``: requests per verdict (stage, check, rule, type, action) beside
    the log's, requests blocked/redacted/flagged, what could not be replayed and why, and
    redacted examples."""
    # no verdict either way (only checked rows have one): nothing to count, no loop over a million Nones
    none = not d.scanned and not _any_logged(window)
    logged = [] if none else _logged_verdicts(window)
    verdicts = [] if none else d.verdicts
    replayed_rows = _per_verdict(verdicts)
    logged_rows = _per_verdict(logged)
    per_action, logged_action = _actions(verdicts), _actions(logged)
    warnings = not_replayable_warnings(d.not_replayable)
    has_rails = bool(policy._guardrails)
    refused = None
    if has_rails and d.scanned == 0 and (d.not_replayable["hashed"] or d.not_replayable["none"]):
        refused = "cannot replay guardrails: no request of the window kept its body (log.bodies: hashed | none)"
    return {
        "guardrails": {
            "requests_checked": d.scanned,
            "distinct_bodies": d.distinct,
            "blocked": per_action["block"],
            "blocked_input": int(d.blocked_input.sum()),
            "blocked_output": sum(1 for b in d.blocked if b == "output") if d.scanned else 0,
            "redacted": per_action["redact"],
            "flagged": per_action["flag"],
            "logged": {
                "blocked": logged_action["block"],
                "redacted": logged_action["redact"],
                "flagged": logged_action["flag"],
            },  # fmt: skip
            "verdicts": _verdict_table(replayed_rows, logged_rows),
            "compared": int(d.compared.sum()),
            "not_replayable": dict(d.not_replayable),
            "refused": refused,
            "warnings": warnings,
            "examples": [ex for key in sorted(d.examples) for ex in d.examples[key]],
        }
    }


def _per_verdict(verdicts: list[list[dict[str, Any]] | None]) -> dict[tuple[str, ...], list[int]]:
    """Per (stage, check, rule, type, action): [requests, findings]."""
    out: dict[tuple[str, ...], list[int]] = {}
    for row in verdicts:
        for v in row or ():
            got = out.setdefault((v["stage"], v["name"], v["rule"], v["type"], v["action"]), [0, 0])
            got[0] += 1
            got[1] += int(v["count"])
    return out


def _verdict_table(
    replayed: dict[tuple[str, ...], list[int]], logged: dict[tuple[str, ...], list[int]]
) -> list[dict[str, Any]]:
    rows = []
    for key in sorted(set(replayed) | set(logged)):
        stage, name, rule, type_, action = key
        r, lg = replayed.get(key, [0, 0]), logged.get(key, [0, 0])
        row = {"stage": stage, "name": name, "rule": rule, "type": type_, "action": action}
        rows.append({**row, "requests": r[0], "findings": r[1], "logged_requests": lg[0], "logged_findings": lg[1]})
    return rows


def not_replayable_warnings(m: Mapping[str, int]) -> list[str]:
    """What the replay could not see (``not_replayable`` counts), in words (never silence); a
    partitioned replay words its summed counts with it (:mod:`.merge`)."""
    out = []
    if m["hashed"] or m["none"]:
        out.append(
            f"{m['hashed'] + m['none']} request(s) logged with bodies: hashed ({m['hashed']}) or none ({m['none']}) "
            "cannot be replayed for guardrails that read the body: they count as allowed, not checked"
        )
    if m["redacted_values"]:
        out.append(
            f"{m['redacted_values']} request(s) logged with bodies: redacted had values redacted by the live input "
            "checks: the candidate sees their placeholders, not the values (not compared with the log)"
        )
    return out


# -- composition: a request blocked on input is decided by no other stage ----------------------


def without_blocked(
    con: Any,
    since: Any,
    until: Any,
    where: str | None,
    params: Any,
    window: Window,
    d: GuardrailDecisions,
    load: Any,
) -> Window:
    """The window the other stages decide over: ``window`` without the requests the candidate
    blocks on input (``window`` itself when it blocks none). Live, such a request never reaches
    the cache or a provider and costs nothing; leaving it out of the fold means it fills no
    cache, spends no budget and takes no rate-limit slot from a later request. ``load`` is
    :func:`.window.load_window`."""
    blocked = d.blocked_input
    if not blocked.any():
        return window
    ids = sorted({r for r, b in zip(window["request_id"], blocked.tolist(), strict=True) if b})
    cond = "NOT list_contains(?::VARCHAR[], request_id) AND ts <= ?"
    last = window.arrow("ts")[len(window) - 1].as_py()  # rows logged since the window was read stay out
    kept = load(con, since, until, f"({where}) AND {cond}" if where else cond, [*params, ids, last],
                columns=window.columns, prefetch=window.table.column_names)  # fmt: skip
    expected = [r for r, b in zip(window["request_id"], blocked.tolist(), strict=True) if not b]
    if kept["request_id"] != expected:
        raise RuntimeError("the log changed while the replay read it; replay a window that has ended")
    return kept


def merged_back(
    cols: dict[str, Any], differs: Any, window: Window, d: GuardrailDecisions
) -> tuple[dict[str, Any], Any]:
    """A stage's columns decided over the window without the blocked requests, back at full
    length: a blocked request is ``replay_served_by = 'blocked'`` at cost 0, its other replayed
    decisions None (it reached none), its logged values read from the log, and it differs from
    the log in no other stage (its verdict is the guardrails stage's)."""
    from .columns import to_pandas

    keep = np.flatnonzero(~d.blocked_input)
    gone = np.flatnonzero(d.blocked_input)
    n = len(window)
    fills = _blocked_values(window, gone)
    out: dict[str, Any] = {}
    for name, column in cols.items():
        values = np.empty(n, object)
        values[keep] = np.asarray(to_pandas(column), dtype=object) if len(keep) else []
        values[gone] = fills.get(name, [None] * len(gone))
        out[name] = values.tolist()  # a list: pandas infers its dtype as it does the unmerged column's
    if differs is None:
        return out, None
    full = np.zeros(n, bool)
    full[keep] = np.asarray(differs, bool)
    return out, full


def _blocked_values(window: Window, rows: np.ndarray) -> dict[str, list[Any]]:
    """The values a blocked request takes in the other stages' columns."""
    take = rows.tolist()
    plans = window["plan"]
    logged = {name: [window[name][i] for i in take] for name in ("admission", "cache", "cost_usd")}
    return {
        "logged_target": [plans[i][0] if plans[i] else None for i in take],
        "logged_admission": logged["admission"],
        "logged_cache": logged["cache"],
        "logged_cost_usd": logged["cost_usd"],
        "replay_cost_usd": [0.0] * len(take),
        "replay_served_by": ["blocked"] * len(take),
    }


def blocked_summary(summary: dict[str, Any], window: Window, d: GuardrailDecisions) -> None:
    """The whole window's figures in ``summary`` when the other stages decided without the
    blocked requests: they are counted (``outcome.blocked``, ``outcome.logged_spend_blocked_usd``),
    their logged spend is in ``logged_cost_usd``, and the cost per 1k requests is over all."""
    from .costs_columnar import float_sum

    gone = np.flatnonzero(d.blocked_input)
    # their logged costs, NULL as 0 (and -0.0 as 0.0, as ``cost or 0.0`` reads them): no list of the window's costs
    spend = round(float_sum(np.where(window.valid("cost_usd")[gone], window.numpy("cost_usd")[gone], 0.0) + 0.0), 6)
    outcome = summary.setdefault("outcome", {})
    outcome["blocked"] = len(gone)
    outcome["logged_spend_blocked_usd"] = spend
    if summary.get("logged_cost_usd") is not None:
        summary["logged_cost_usd"] = round(summary["logged_cost_usd"] + spend, 6)
    spent, n = summary.get("cost_usd"), summary.get("requests", len(window))  # checks of semantic hits: no requests
    if "cost_per_1k_requests" in summary:
        summary["cost_per_1k_requests"] = round(spent / n * 1000, 6) if spent is not None and n else None
