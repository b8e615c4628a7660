"""What the log cannot say, read from the running gateway's own HTTP API: the live policy's
routes, circuit breaker states and transitions, and each budget's limit / spent / in flight.

The dashboards run in a child process (they never touch the proxy's objects), so they ask
``/health`` and ``/metrics`` on the gateway's loopback address like any monitoring client,
with the dashboard token when one is set (``LLMGW_DASHBOARD_TOKEN``, else the admin token).
Answers are cached ``ttl_s`` seconds; when the gateway cannot be asked (a page served on its
own, over an old log) every answer is ``None`` and pages say "live state unavailable".
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field

log = logging.getLogger("llmgw.dashboard")


@dataclass(frozen=True, slots=True)
class Budget:
    """One budget series of ``/metrics`` (``llmgw_budget_*_usd``)."""

    scope: str
    who: str
    window: str
    mode: str
    limit_usd: float
    spent_usd: float = 0.0
    in_flight_usd: float = 0.0

    @property
    def remaining_usd(self) -> float:
        return max(0.0, self.limit_usd - self.spent_usd - self.in_flight_usd)


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """The gateway's live state at ``as_of`` (epoch s)."""

    as_of: float
    policy_version: str | None = None
    policy_file: str | None = None
    reload_error: str | None = None
    routes: tuple[str, ...] = ()
    circuits: dict[tuple[str, str], str] = field(default_factory=dict)  # (route, target) -> state
    transitions: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (route, target, to) -> count
    budgets: tuple[Budget, ...] = ()


class LiveState:
    """Cached reads of ``{gateway_url}/health`` and ``/metrics`` (thread-safe)."""

    def __init__(self, gateway_url: str | None, ttl_s: float = 2.0, timeout_s: float = 2.0) -> None:
        self.gateway_url = gateway_url.rstrip("/") if gateway_url else None
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._last: tuple[float, LiveSnapshot | None] | None = None

    def snapshot(self) -> LiveSnapshot | None:
        """The live state, or None when there is no gateway to ask (or it did not answer)."""
        if self.gateway_url is None:
            return None
        with self._lock:
            now = time.time()
            if self._last is not None and now - self._last[0] < self.ttl_s:
                return self._last[1]
            try:
                snap: LiveSnapshot | None = self._read(now)
            except (OSError, ValueError) as exc:
                log.info("dashboards: live state unavailable from %s: %s", self.gateway_url, exc)
                snap = None
            self._last = (now, snap)
            return snap

    def _get(self, path: str) -> bytes:
        request = urllib.request.Request(self.gateway_url + path)  # type: ignore[operator]
        token = os.environ.get("LLMGW_DASHBOARD_TOKEN") or os.environ.get("LLMGW_ADMIN_TOKEN")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:  # /health answers 503 with its body when not ready
            if exc.code == 503:
                return bytes(exc.read())
            raise

    def _read(self, now: float) -> LiveSnapshot:
        health = json.loads(self._get("/health"))
        circuits = {(r, t): s for r, targets in (health.get("circuits") or {}).items() for t, s in targets.items()}
        transitions, budgets = parse_metrics(self._get("/metrics").decode("utf-8", "replace"))
        return LiveSnapshot(
            as_of=now, policy_version=health.get("policy_version"), policy_file=health.get("policy_file"),
            reload_error=health.get("policy_reload_error"), routes=tuple(sorted(health.get("routes") or ())),
            circuits=circuits, transitions=transitions, budgets=budgets,
        )  # fmt: skip


def parse_metrics(text: str) -> tuple[dict[tuple[str, str, str], float], tuple[Budget, ...]]:
    """(circuit transitions by (route, target, to), budgets) from Prometheus text. With
    ``llmgw serve --workers N`` each sample carries a ``worker`` label: transitions add up over
    the workers; a budget's figures are each worker's view of one budget, and the largest is
    shown (with shared state every worker counts the same spend; without, there is one worker)."""
    from prometheus_client.parser import text_string_to_metric_families

    transitions: dict[tuple[str, str, str], float] = {}
    budgets: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "llmgw_circuit_transitions_total":
                edge = (labels["route"], labels["target"], labels["to"])
                transitions[edge] = transitions.get(edge, 0.0) + sample.value
            elif sample.name.startswith("llmgw_budget_") and sample.name.endswith("_usd"):
                key = (labels["scope"], labels["who"], labels["window"], labels["mode"])
                figures = budgets.setdefault(key, {})
                name = sample.name[len("llmgw_budget_") : -len("_usd")]
                figures[name] = max(figures.get(name, sample.value), sample.value)
    out = tuple(
        Budget(
            *key, limit_usd=v.get("limit", 0.0), spent_usd=v.get("spent", 0.0), in_flight_usd=v.get("in_flight", 0.0)
        )
        for key, v in sorted(budgets.items())
    )
    return transitions, out


def gateway_url(host: str, port: int) -> str:
    """Where the dashboards reach the gateway: its loopback address when it listens there or
    on every address, else the address it listens on."""
    import ipaddress

    loopback = host in ("", "localhost", "0.0.0.0", "::")
    if not loopback:
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
            loopback = ip.is_loopback or ip.is_unspecified
        except ValueError:
            pass
    if loopback:
        return f"http://127.0.0.1:{port}"
    return f"http://[{host.strip('[]')}]:{port}" if ":" in host else f"http://{host}:{port}"


__all__ = ["Budget", "LiveSnapshot", "LiveState", "gateway_url", "parse_metrics"]
