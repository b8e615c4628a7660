"""Typed placeholders, consistent within a request.

Every value a ``redact`` check finds is replaced by ``<TYPE_n>`` (``<PHONE_NUMBER_1>``,
``<VN_CCCD_1>``, ``<SELF_HARM_1>``): the type in capitals, numbered per type in the order
values are first met. The same value gets the same placeholder everywhere in one request —
across messages, tool arguments, and in the answer — so a model can still tell "the same
phone number" from "another one". A value without letters (a number) is compared by its digits
and ``+`` (``0912 345 678`` and ``0912.345.678`` are one number); any other value with its
runs of spaces made one and case folded (``a.b@x.vn`` and ``ab@x.vn`` stay two addresses).
Placeholders contain no quote or backslash, so they are safe inside JSON strings.

>>> r = Redactor()
>>> from llmgw_kernel.guardrails.findings import Finding
>>> text = "call 0912 345 678 or 0987654321, again 0912.345.678"
>>> spans = [Finding("PHONE_NUMBER", 5, 17, 1.0, "t"), Finding("PHONE_NUMBER", 21, 31, 1.0, "t"),
...          Finding("PHONE_NUMBER", 39, 51, 1.0, "t")]
>>> r.apply(text, spans)
'call <PHONE_NUMBER_1> or <PHONE_NUMBER_2>, again <PHONE_NUMBER_1>'
>>> [r.placeholder("EMAIL_ADDRESS", e) for e in ("a.b@x.vn", "AB@x.vn", "ab@X.vn")]
['<EMAIL_ADDRESS_1>', '<EMAIL_ADDRESS_2>', '<EMAIL_ADDRESS_2>']
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .findings import Finding

_NOT_DIGIT = re.compile(r"[^0-9+]+")


def _key(value: str) -> str:
    """What makes two found values "the same value" (see the module docstring)."""
    if any(c.isalpha() for c in value):
        return " ".join(value.split()).casefold()
    return _NOT_DIGIT.sub("", value)


class Redactor:
    """One request's placeholder table (input and output share it)."""

    __slots__ = ("_by_value", "_counts")

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}

    def placeholder(self, type_: str, value: str) -> str:
        kind = type_.upper()
        key = (kind, _key(value))
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
