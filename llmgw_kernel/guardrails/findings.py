"""What a guardrail detector reports: typed spans of a text, and the interface detectors share.

Every detector (PII, content safety, prompt injection, a policy's own `custom` rule) answers one
question about one text: *where* is something of a given type, how sure is it, and which rule
said so. The guardrail stage turns findings into verdicts (allow / redact / block / flag);
detectors never decide actions, never log, and never keep the text.

Offsets are Python string indices (code points) into the text that was passed in, so the stage
can replace ``text[f.start:f.end]`` with a placeholder without re-scanning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected span. ``type`` is the entity or category (``PHONE_NUMBER``, ``VN_CCCD``,
    ``self_harm``, ``injection``); ``rule`` names what fired (``pii.phone``, ``content.vi.self_harm``)
    so a verdict can say why without echoing the value; ``score`` is a confidence in [0, 1]."""

    type: str
    start: int
    end: int
    score: float
    rule: str

    def __init__(self, type: str, start: int, end: int, score: float, rule: str) -> None:
        # the generated __init__ of a frozen dataclass sets each field through object.__setattr__
        # (~2 µs a finding; a dense 4 KB text yields ~50); the slots' own setters cost a quarter
        set_type, set_start, set_end, set_score, set_rule = _SLOT_SETTERS
        set_type(self, type)
        set_start(self, start)
        set_end(self, end)
        set_score(self, score)
        set_rule(self, rule)


_SLOT_SETTERS = tuple(getattr(Finding, name).__set__ for name in ("type", "start", "end", "score", "rule"))


class Detector(Protocol):
    """Finds spans in one text. Implementations are pure, thread-safe after construction, and
    return findings sorted by ``start`` with no two overlapping (the detector resolves overlaps)."""

    def find(self, text: str) -> list[Finding]: ...
