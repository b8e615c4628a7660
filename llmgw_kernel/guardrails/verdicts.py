"""What the checks decided about one request, with reasons that never hold the value.

A :class:`Reason` is one finding a check acted on: the check, the detector's rule, the type,
the action, where it was (``messages[1].content``) and the span there, and the confidence.
:class:`Verdicts` collects a request's reasons; :meth:`Verdicts.summary` is what the log
keeps (one entry per stage, check, rule, type and action, with the count and the highest
confidence — never the text). :class:`Blocked` is raised by a ``block`` check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Reason:
    stage: str  # input | output
    check: str  # the check's name (input[0]:pii, or the policy's own name)
    rule: str  # what fired (Finding.rule)
    type: str  # PHONE_NUMBER, VN_CCCD, self_harm, ...
    action: str  # redact | block | flag
    where: str  # messages[1].content, choices[0].message.content, input[2], ...
    start: int
    end: int
    score: float

    def describe(self) -> str:
        """``VN_CCCD in messages[0].content [8, 20) (rule pii.vn_cccd, confidence 0.95)``: the
        reason in words, without the value."""
        return f"{self.type} in {self.where} [{self.start}, {self.end}) (rule {self.rule}, confidence {self.score:.2f})"


class Blocked(Exception):
    """A ``block`` check found something; ``reason`` says which check, rule and type."""

    def __init__(self, reason: Reason) -> None:
        self.reason = reason
        what = "Request" if reason.stage == "input" else "Response"
        super().__init__(f"{what} blocked by guardrail {reason.check!r}: {reason.describe()}")


class Verdicts:
    """A request's reasons, in the order they were found."""

    __slots__ = ("reasons",)

    def __init__(self) -> None:
        self.reasons: list[Reason] = []

    def add(self, reasons: list[Reason]) -> None:
        self.reasons.extend(reasons)

    def actions(self, stage: str) -> set[str]:
        return {r.action for r in self.reasons if r.stage == stage}

    def summary(self) -> list[dict[str, Any]] | None:
        """The log's ``guardrails`` column: per (stage, check, rule, type, action) the number of
        findings and the highest confidence; None when nothing fired."""
        if not self.reasons:
            return None
        rows: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
        for r in self.reasons:
            key = (r.stage, r.check, r.rule, r.type, r.action)
            row = rows.get(key)
            if row is None:
                rows[key] = {"stage": r.stage, "name": r.check, "rule": r.rule, "type": r.type,
                             "action": r.action, "count": 1, "score": r.score}  # fmt: skip
            else:
                row["count"] += 1
                row["score"] = max(row["score"], r.score)
        return list(rows.values())
