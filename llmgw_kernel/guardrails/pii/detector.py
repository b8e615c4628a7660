"""The PII detector: every recogniser run over one text, overlaps resolved, types filtered."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence

from llmgw_kernel.guardrails.findings import Finding

from .address import find_addresses
from .context import ContextIndex
from .fold import fold
from .names import find_names
from .numbers import find_numbers
from .shapes import find_shapes

#: Every entity type the PII detector reports.
PII_TYPES: tuple[str, ...] = (
    "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "API_KEY",
    "ADDRESS", "VN_CCCD", "VN_CMND", "VN_PASSPORT", "VN_TAX_CODE", "VN_BANK_ACCOUNT", "VN_LICENSE_PLATE",
)  # fmt: skip

Recogniser = Callable[[str, str, ContextIndex, Sequence[str]], Iterable[Finding]]


def _merge_same_type(findings: Iterable[Finding]) -> list[Finding]:
    """Overlapping findings of one type become one span covering both, with the higher score (and
    its rule): two rules that see parts of one name see one name."""
    merged: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.type, f.start)):
        last = merged[-1] if merged else None
        if last and last.type == f.type and f.start < last.end:
            best = last if last.score >= f.score else f
            merged[-1] = Finding(f.type, last.start, max(last.end, f.end), best.score, best.rule)
        else:
            merged.append(f)
    return merged


def resolve(findings: Iterable[Finding]) -> list[Finding]:
    """Non-overlapping findings sorted by start: overlapping spans of one type are merged, then the
    most confident (then the longest) span wins wherever two of different types overlap."""
    starts: list[int] = []  # kept spans, sorted by start (they never overlap)
    kept: list[Finding] = []
    for f in sorted(_merge_same_type(findings), key=lambda f: (-f.score, f.start - f.end, f.start)):
        i = bisect.bisect_right(starts, f.start)
        if (i == 0 or kept[i - 1].end <= f.start) and (i == len(kept) or f.end <= kept[i].start):
            starts.insert(i, f.start)
            kept.insert(i, f)
    return kept


class PiiDetector:
    """Finds PII of ``entities`` in ``languages`` with score ≥ ``threshold``. Immutable after
    construction, so one instance serves every thread."""

    def __init__(self, languages: Sequence[str], entities: Collection[str] | None, threshold: float) -> None:
        unknown = set(entities or ()) - set(PII_TYPES)
        if unknown:
            raise ValueError(f"unknown PII types {sorted(unknown)}; known: {', '.join(PII_TYPES)}")
        bad = set(languages) - {"en", "vi"}
        if bad:
            raise ValueError(f"unsupported languages {sorted(bad)}; supported: en, vi")
        self.languages = tuple(languages)
        self.entities = frozenset(entities if entities is not None else PII_TYPES)
        self.threshold = threshold

    def candidates(self, text: str) -> Iterator[Finding]:
        """Every finding of every recogniser, before the threshold and overlap resolution."""
        folded = fold(text)
        ctx = ContextIndex.of(folded, text)
        if self.entities - {"PERSON", "ADDRESS"}:
            yield from find_numbers(text, folded, ctx)
            yield from find_shapes(text, ctx)
        if "PERSON" in self.entities:
            yield from find_names(text, folded, self.languages)
        if "ADDRESS" in self.entities:
            yield from find_addresses(text, folded)

    def find(self, text: str) -> list[Finding]:
        return resolve(f for f in self.candidates(text) if f.score >= self.threshold and f.type in self.entities)


def pii_detector(
    languages: Sequence[str] = ("en", "vi"), entities: Collection[str] | None = None, threshold: float = 0.5
) -> PiiDetector:
    """A detector of the PII ``entities`` (default: all of ``PII_TYPES``) in text written in
    ``languages``, reporting findings whose score is at least ``threshold``.

    >>> [(f.type, f.rule) for f in pii_detector().find("SĐT 0912 345 678, email an.nguyen@example.vn")]
    [('PHONE_NUMBER', 'pii.phone.vn'), ('EMAIL_ADDRESS', 'pii.email.shape')]
    """
    return PiiDetector(languages, entities, threshold)
