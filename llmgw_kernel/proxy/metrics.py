"""Prometheus metrics (prometheus-client), one registry per gateway.

Label children are cached per (route, model, status) so the hot path does a dict lookup
and an increment, not a label resolution.

No label value is text a client chose: the ``route`` label is a route of a policy this
process has served, or ``""`` (:data:`NO_ROUTE`) for a request that names none (a model that
is no route, or refused before its model was read), so made-up model names cannot add
series without bound.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector

_CIRCUIT_VALUES = {"closed": 0, "open": 1, "half_open": 2}
NO_ROUTE = ""
"""The ``route`` label of a request that names no route of the policy."""
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, float("inf"))


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)
        self.requests = Counter(
            "llmgw_requests",
            "Requests by route, served model and HTTP status",
            ["route", "model", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "llmgw_request_duration_seconds", "Arrival to last byte", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "llmgw_time_to_first_token_seconds", "Arrival to first streamed content", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter("llmgw_tokens", "Tokens by route, model and kind", ["route", "model", "kind"], registry=r)
        self.upstream_errors = Counter(
            "llmgw_upstream_errors", "Failed upstream attempts", ["provider", "model", "kind", "status"], registry=r
        )
        self.cache = Counter(
            "llmgw_cache_requests",
            "Cache outcomes by route (hit, semantic-hit, miss, bypass)",
            ["route", "result"],
            registry=r,
        )
        self.cache_saved = Counter("llmgw_cache_saved_usd", "USD saved by cache hits", ["route"], registry=r)
        self.cost = Counter("llmgw_cost_usd", "USD spent, by route and target (priced requests)", ["route", "target"],
                            registry=r)  # fmt: skip
        self.admissions = Counter(
            "llmgw_limited_requests", "Requests refused by a budget or rate limit", ["route", "kind"], registry=r
        )
        self.guardrails = Counter(
            "llmgw_guardrail_verdicts",
            "Guardrail verdicts: requests on which a check acted, by stage, check, rule, type and action",
            ["stage", "check", "rule", "type", "action"],
            registry=r,
        )
        self.in_flight = Gauge("llmgw_in_flight_requests", "Requests being served", registry=r)
        self.reloads = Counter("llmgw_policy_reloads", "Policy reloads by result", ["result"], registry=r)
        self.retries = Counter(
            "llmgw_upstream_retries", "Retries of a target after a failed attempt", ["route", "target"], registry=r
        )
        self.circuit_transitions = Counter(
            "llmgw_circuit_transitions", "Circuit breaker state changes", ["route", "target", "to"], registry=r
        )
        self.read_deadlines = Counter(
            "llmgw_read_deadlines_passed", "Slow clients cut off by a read deadline (header or body)", ["deadline"],
            registry=r,
        )  # fmt: skip
        self._circuits: Callable[[], dict[tuple[str, str], str]] = dict
        self._policy = ("", "")
        self._routes: set[str] = set()  # every route of every policy served: the route label's values
        self._log_state = lambda: (0, 0, 0)
        self._on_scrape: list[Callable[[], Awaitable[None]]] = []
        r.register(_InfoCollector(self))
        self._req: dict[tuple[str, str, str], Counter] = {}
        self._lat: dict[str, tuple[Histogram, Histogram]] = {}
        self._tok: dict[tuple[str, str], tuple[Counter, Counter]] = {}

    def set_policy(self, version: str, source: str, routes: Iterable[str] = ()) -> None:
        """The live policy: its version and source for ``llmgw_policy_info``, and its routes, which
        join the ``route`` label's values (a route a reload removed keeps its series)."""
        self._policy = (version, source)
        self._routes.update(routes)

    def route_label(self, route: str) -> str:
        """``route`` as a label value: itself if a policy served it, else :data:`NO_ROUTE`."""
        return route if route in self._routes else NO_ROUTE

    def set_log_probe(self, probe) -> None:  # () -> (rows_written, buffered, flush_errors)
        self._log_state = probe

    def on_scrape(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Await ``refresh`` before each ``/metrics`` render: a collector whose figures live in
        another process (the shared budgets in Redis) reads them there; it bounds its own cost."""
        self._on_scrape.append(refresh)

    async def refresh(self) -> None:
        """Run the :meth:`on_scrape` hooks (the ``/metrics`` handler, before :meth:`render`)."""
        for refresh in self._on_scrape:
            await refresh()

    def set_circuit_probe(self, probe: Callable[[], dict[tuple[str, str], str]]) -> None:
        self._circuits = probe

    def circuit_transition(self, route: str, target: str, before: str, to: str) -> None:
        self.circuit_transitions.labels(route, target, to).inc()

    def read_deadline_passed(self, deadline: str) -> None:
        self.read_deadlines.labels(deadline).inc()

    def retry(self, route: str, target: str) -> None:
        self.retries.labels(self.route_label(route), target).inc()

    def observe(self, route: str, model: str, status: int, latency_s: float, ttft_s: float | None, usage) -> None:
        route = self.route_label(route)
        key = (route, model, str(status))
        c = self._req.get(key)
        if c is None:
            c = self._req[key] = self.requests.labels(*key)
        c.inc()
        h = self._lat.get(route)
        if h is None:
            h = self._lat[route] = (self.latency.labels(route), self.ttft.labels(route))
        h[0].observe(latency_s)
        if ttft_s is not None:
            h[1].observe(ttft_s)
        if usage:
            t = self._tok.get((route, model))
            if t is None:
                t = self._tok[(route, model)] = (
                    self.tokens.labels(route, model, "prompt"),
                    self.tokens.labels(route, model, "completion"),
                )
            t[0].inc(usage.get("prompt_tokens") or 0)
            t[1].inc(usage.get("completion_tokens") or 0)

    def spent(self, route: str, target: str, usd: float) -> None:
        self.cost.labels(self.route_label(route), target).inc(usd)

    def limited(self, route: str, kind: str) -> None:
        self.admissions.labels(self.route_label(route), kind).inc()

    def cache_result(self, route: str, result: str, saved_usd: float | None) -> None:
        route = self.route_label(route)
        self.cache.labels(route, result).inc()
        if saved_usd:
            self.cache_saved.labels(route).inc(saved_usd)

    def guardrail_verdicts(self, verdicts: list[dict]) -> None:
        """One request's verdicts (``Verdicts.summary()``): +1 per stage, check, rule, type and action."""
        for v in verdicts:
            self.guardrails.labels(v["stage"], v["name"], v["rule"], v["type"], v["action"]).inc()

    def upstream_error(self, provider: str, model: str, kind: str, status: int | None) -> None:
        self.upstream_errors.labels(provider, model, kind, str(status or "")).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _InfoCollector:
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self):
        return []

    def collect(self):
        version, source = self.m._policy
        info = GaugeMetricFamily("llmgw_policy_info", "The live policy (value 1)", labels=["version", "source"])
        info.add_metric([version, source], 1)
        yield info
        rows, buffered, errors = self.m._log_state()
        yield GaugeMetricFamily("llmgw_log_rows_written", "Rows written to the request log", value=rows)
        yield GaugeMetricFamily("llmgw_log_rows_buffered", "Rows not yet on disk", value=buffered)
        yield GaugeMetricFamily("llmgw_log_flush_errors", "Failed log flushes", value=errors)
        circuits = GaugeMetricFamily(
            "llmgw_circuit_state", "Circuit breaker per route target: 0 closed, 1 open, 2 half-open",
            labels=["route", "target"],
        )  # fmt: skip
        for (route, target), state in self.m._circuits().items():
            circuits.add_metric([route, target], _CIRCUIT_VALUES.get(state, 0))
        yield circuits
