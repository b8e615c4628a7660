"""Typed placeholders, consistent within a request.

Every value a ``redact`` check finds is replaced by ``<TYPE_n>`` (``<PHONE_NUMBER_1>``,
``<VN_CCCD_1>``, ``<SELF_HARM_1>``): the type in capitals, numbered per type in the order
values are first met. The same value gets the same placeholder everywhere in one request —
across messages, tool arguments, and in the answer — so a model can still tell "the same
phone number" from "another one". Values are compared after dropping spaces, dots, dashes
and brackets and folding case (``0912 345 678`` and ``0912.345.678`` are one number).
Placeholders contain no quote or backslash, so they are safe inside JSON strings.

>>> r = Redactor()
>>> from llmgw_kernel.guardrails.findings import Finding
>>> text = "call 0912 345 678 or 0987654321, again 0912.345.678"
>>> spans = [Finding("PHONE_NUMBER", 5, 17, 1.0, "t"), Finding("PHONE_NUMBER", 21, 31, 1.0, "t"),
...          Finding("PHONE_NUMBER", 39, 51, 1.0, "t")]
>>> r.apply(text, spans)
'call <PHONE_NUMBER_1> or <PHONE_NUMBER_2>, again <PHONE_NUMBER_1>'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .findings import Finding

_NOISE = re.compile(r"[\s.\-()]+")


class Redactor:
    """One request's placeholder table (input and output share it)."""

    __slots__ = ("_by_value", "_counts")

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}

    def placeholder(self, type_: str, value: str) -> str:
        kind = type_.upper()
        key = (kind, _NOISE.sub("", value).casefold())
        found = self._by_value.get(key)
        if found is None:
            n = self._counts[kind] = self._counts.get(kind, 0) + 1
            found = self._by_value[key] = f"<{kind}_{n}>"
        return found

    def apply(self, text: str, findings: Iterable[Finding]) -> str:
        """``text`` with each finding's span replaced; ``findings`` sorted and non-overlapping."""
        out: list[str] = []
        pos = 0
        for f in findings:
            out.append(text[pos : f.start])
            out.append(self.placeholder(f.type, text[f.start : f.end]))
            pos = f.end
        out.append(text[pos:])
        return "".join(out)
