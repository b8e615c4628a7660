"""What an import did, and what replay can and cannot use from the rows it wrote."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .rows import Imported

SHOWN_SKIPS = 20  # skipped records listed by place; the rest are counted
KEPT_SKIPS = 1000


@dataclass
class ImportReport:
    format: str
    data_dir: Path
    read: int = 0
    imported: int = 0
    already: int = 0  # in the log from an earlier import of the same records
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (place, why), the first KEPT_SKIPS
    skipped_count: int = 0
    have: Counter[str] = field(default_factory=Counter)  # rows that carry each kind of fact
    first_ts: float | None = None
    last_ts: float | None = None

    def skip(self, where: str, why: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < KEPT_SKIPS:
            self.skipped.append((where, why))

    def count(self, row: Imported) -> None:
        self.imported += 1
        self.first_ts = row.ts if self.first_ts is None else min(self.first_ts, row.ts)
        self.last_ts = row.ts if self.last_ts is None else max(self.last_ts, row.ts)
        facts = {
            "route": row.route, "target": row.target, "request": row.request, "response": row.response,
            "tokens": row.prompt_tokens is not None and row.completion_tokens is not None,
            "cost": row.cost_usd is not None, "team": row.team, "user": row.end_user, "key": row.key_id,
            "latency": row.latency_ms is not None or row.ts_end is not None, "status": row.status is not None,
        }  # fmt: skip
        self.have.update(name for name, value in facts.items() if value)

    def stages(self) -> dict[str, str]:
        """Per replay stage, what these rows let it decide."""
        n, h = self.imported, self.have

        def of(name: str) -> str:
            return f"{h[name]} of {n}"

        return {
            "routing": f"{of('route')} rows name the model asked for and are routed by the candidate; "
            f"{of('target')} name the target that answered (the logged decision compared against)",
            "budgets and rate limits": f"team on {of('team')}, user on {of('user')}, source key on {of('key')} rows; "
            "the source's keys are not llmgw keys, so only the policy's team/user/global limits apply",
            "cost": f"token counts on {of('tokens')} rows (priced at a candidate's targets); "
            f"the source's own cost on {of('cost')}",
            "exact cache": f"request bodies on {of('request')} rows (the key is computed from the body)"
            + ("" if h["request"] else ": none, so no cache replay"),
            "semantic cache": "no: imported rows carry no embedding, so a semantic cache finds no hits on them",
            "latency": f"{of('latency')} rows carry a duration (a candidate's latency is estimated from them)",
        }

    def lines(self) -> list[str]:
        span = ""
        if self.first_ts is not None and self.last_ts is not None:
            span = f", {_iso(self.first_ts)} .. {_iso(self.last_ts)}"
        out = [
            f"imported {self.imported} of {self.read} {self.format} records into {self.data_dir}{span}",
            f"  already in the log (imported before): {self.already}; skipped: {self.skipped_count}",
        ]
        for where, why in self.skipped[:SHOWN_SKIPS]:
            out.append(f"    skipped {where}: {why}")
        if self.skipped_count > SHOWN_SKIPS:
            out.append(f"    ... and {self.skipped_count - SHOWN_SKIPS} more")
        out.append("what replay can use:")
        out += [f"  {stage}: {what}" for stage, what in self.stages().items()]
        return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
