"""Identifiers with a shape of their own: e-mail addresses, IP addresses, IBANs, API keys,
passport numbers and Vietnamese licence plates.

Each is one compiled regex that finds candidates and a validation step (octet ranges,
``ipaddress``, the IBAN mod-97 check from python-stdnum, known key prefixes or entropy,
province codes) that decides; context words only lift or lower a score where the shape alone
is ambiguous (a bare ``C1234567`` is a passport number only after ``passport``/``hộ chiếu``).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Iterator

from stdnum import iban

from llmgw_kernel.guardrails.findings import Finding

from .context import ContextIndex

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,24}(?![\w-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?:/\d{{1,2}})?(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")
_PASSPORT = re.compile(r"(?<![\w-])[A-Z]\d{7,8}(?![\w-])")
_PLATE = re.compile(
    r"(?<![\w.\-])([1-9]\d)[ \-]?([A-Z]{1,2}\d?|[A-Z]{2})[ \-.]?\s?(\d{3}\.\d{2}|\d{4,5})(?![\w]|[.,]\d)"
)
#: API keys with a published prefix (provider documentation): these need no context.
_KNOWN_KEYS = re.compile(
    r"(?<![\w-])(?:"
    r"sk-(?:proj-|ant-(?:api\d\d-)?|or-v1-|svcacct-)?[A-Za-z0-9_\-]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
    r")(?![\w-])"
)
_TOKEN = re.compile(r"(?<![\w\-/.+=])[A-Za-z0-9_\-+/=]{20,}(?![\w\-/+=])")
_PLATE_PROVINCES = frozenset(range(11, 100))  # province codes of Vietnamese plates


def _entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _classes(s: str) -> int:
    return sum((any(c.islower() for c in s), any(c.isupper() for c in s), any(c.isdigit() for c in s)))


def find_shapes(text: str, ctx: ContextIndex) -> Iterator[Finding]:
    """Findings for every validated e-mail, IP, IBAN, key, passport number and plate in ``text``."""
    for m in _EMAIL.finditer(text):
        yield Finding("EMAIL_ADDRESS", m.start(), m.end(), 0.97, "pii.email.shape")
    yield from _ips(text, ctx)
    yield from _ibans(text)
    yield from _keys(text, ctx)
    for m in _PASSPORT.finditer(text):
        near = ctx.near(m.start(), m.end())
        if "passport" in near and near.index("passport") < (near.index("negative") if "negative" in near else 99):
            yield Finding("VN_PASSPORT", m.start(), m.end(), 0.9, "pii.vn_passport.context")
        elif len(m.group()) == 8:
            yield Finding("VN_PASSPORT", m.start(), m.end(), 0.35, "pii.vn_passport.shape")
    yield from _plates(text, ctx)


def _ips(text: str, ctx: ContextIndex) -> Iterator[Finding]:
    for m in _IPV4.finditer(text):
        if ctx.near(m.start(), m.end(), after=False)[:1] == ["negative"]:
            continue  # "version 1.2.3.4"
        yield Finding("IP_ADDRESS", m.start(), m.end(), 0.9, "pii.ip.v4")
    for m in _IPV6.finditer(text):
        try:
            ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        if m.group().count(":") >= 3 or "::" in m.group():
            yield Finding("IP_ADDRESS", m.start(), m.end(), 0.9, "pii.ip.v6")


def _ibans(text: str) -> Iterator[Finding]:
    """IBAN candidates, trimmed group by group from the right until mod 97 holds (a following
    upper-case word can be swallowed by the regex)."""
    for m in _IBAN.finditer(text):
        cand = m.group()
        while len(cand.replace(" ", "")) >= 15:
            if iban.is_valid(cand):
                yield Finding("IBAN_CODE", m.start(), m.start() + len(cand), 0.97, "pii.iban.mod97")
                break
            cut = cand.rfind(" ")
            cand = cand[:cut] if cut > 0 else cand[:-1]


def _keys(text: str, ctx: ContextIndex) -> Iterator[Finding]:
    known: list[tuple[int, int]] = []
    for m in _KNOWN_KEYS.finditer(text):
        known.append(m.span())
        yield Finding("API_KEY", m.start(), m.end(), 0.97, "pii.api_key.prefix")
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if any(a <= m.start() < b for a, b in known) or _classes(tok) < 3 or not any(c.isdigit() for c in tok):
            continue
        ent = _entropy(tok)
        if "key" in ctx.near(m.start(), m.end())[:2] and ent >= 3.5:
            yield Finding("API_KEY", m.start(), m.end(), 0.85, "pii.api_key.context_entropy")
        elif len(tok) >= 32 and ent >= 4.2:
            yield Finding("API_KEY", m.start(), m.end(), 0.6, "pii.api_key.entropy")


def _plates(text: str, ctx: ContextIndex) -> Iterator[Finding]:
    """Vietnamese plates: 2-digit province code, series letter(s) (+ a digit for motorbikes),
    then 4–5 digits, usually written 51F-123.45 or 29-B1 234.56."""
    for m in _PLATE.finditer(text):
        if int(m.group(1)) not in _PLATE_PROVINCES:
            continue
        near = ctx.near(m.start(), m.end())
        if near[:1] == ["negative"]:
            continue
        shaped = "." in m.group(3) or "-" in m.group()
        score = 0.95 if "plate" in near else (0.8 if shaped else 0.45)
        yield Finding("VN_LICENSE_PLATE", m.start(), m.end(), score, "pii.vn_license_plate.shape")
