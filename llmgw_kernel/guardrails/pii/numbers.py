"""Digit runs: cards, phones, citizen IDs, tax codes, bank accounts and SSNs.

One cheap regex finds runs of digit groups joined by single separators (space, dot, dash,
a parenthesised area code); only those runs are validated. A run may join several numbers
("0912 345 678 và 0987..." never does, but a list separated by spaces can), so each run is
split into the longest sub-spans of whole groups that validate. What a span *is* comes from
its shape and checksum (Luhn, the MST check digit, phonenumbers' metadata) and from the
context words near it (``context.py``); a span that only a context word could make PII is
reported when that word is the nearest one, and never when an order/invoice/hotline word is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

import phonenumbers
from stdnum import luhn
from stdnum.vn import mst

from llmgw_kernel.guardrails.findings import Finding

from .context import ContextIndex
from .shapes import IPV4, ipv4

# starts with a digit: the scan skips fast. The look-ahead lets through only what can be a run of 7
# characters or more (the shortest value) or an area code "(028)": the short runs (years, counts,
# prices, a date's parts) fail inside the scan instead of costing a Python step each.
_CORE = re.compile(r"\d(?=[\d\s.\-]{6}|[\d .\-]{0,3}\))\d*+(?:(?:[ .\-]|\s-\s)\d++)*+")
_PAREN_TAIL = re.compile(r"\)[ .\-]?\d++(?:(?:[ .\-]|\s-\s)\d++)*+")
_GROUP = re.compile(r"\d+")
#: a decimal fraction (0.912345678, 3,14159): one digit, a point or comma, then five or more digits —
#: no phone, card or ID is written that way (their groups are 2-5 digits, or a 3-digit area code)
_DECIMAL = re.compile(r"\d[.,]\d{5,}")
_DATE = re.compile(r"\d{1,2}[./\-]\d{1,2}[./\-](?:\d{4}|\d{2})|\d{4}[./\-]\d{1,2}[./\-]\d{1,2}")
_BRANCH_SHAPE = re.compile(r"\d{10}-\d{3}")  # a branch's tax code as printed
#: score of a check-digit-valid 10-digit tax code with no context word (below the default threshold)
WEAK_TAX = 0.4
_SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}")
_TRUNK_SHAPE = re.compile(r"\(?0\d{1,4}\)?[ .\-]\d{3,4}[ .\-]?\d{3,4}")  # 020 7946 0958, (0161) 496 0000
_US_SHAPE = re.compile(r"(?:\+?1[ .\-]?)?(?:\(\d{3}\)\s?|\d{3}[.\-])\d{3}[.\-]\d{4}")
#: words right after a number that make it an amount, not an identifier (folded text).
_AMOUNT_AFTER = re.compile(
    r"\s?(?:d|vnd|vnđ|đ|₫|dong|usd|eur|k|tr|trieu|nghin|ngan|ty|%|\$|€|cents?|dollars?|percent|phan tram)"
    r"(?![a-z0-9])"
)
_AMOUNT_BEFORE = re.compile(r"(?:[$€£¥₫]|usd|vnd|eur|rs\.?)\s?$")

#: CCCD province codes (Decree 137/2015, Circular 07/2016): the first three digits of a CCCD.
CCCD_PROVINCES = frozenset(
    "001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027 030 031 033 034 035 036 037 038 "
    "040 042 044 045 046 048 049 051 052 054 056 058 060 062 064 066 067 068 070 072 074 075 077 079 080 082 "
    "083 084 086 087 089 091 092 093 094 095 096".split()
)
_ID_KINDS = frozenset({"cccd", "cmnd", "id"})
#: the nearest word names a type whose own rule did not validate: the span is nothing else either
_DECIDING_KINDS = frozenset({"tax", "cccd", "cmnd", "id", "passport", "ssn", "card"})
_TYPED_KINDS = frozenset(
    {"phone", "cccd", "cmnd", "id", "passport", "tax", "bank", "bankname", "card", "ssn", "negative"}
)
_MIN_DIGITS, _MAX_DIGITS = 7, 19
#: phone validations remembered (per process; a few hundred bytes each)
PHONE_MEMO = 4096
#: countries whose national (no +CC) forms are tried after Vietnam's, with a phone word or US shape
_NATIONAL_REGIONS = ("US", "GB", "AU", "SG")


def _card_prefix(d: str) -> bool:
    """Issuer prefixes of the card schemes (Visa, Mastercard 51–55/2221–2720, Amex, Discover, JCB,
    Diners, UnionPay, Maestro) and Vietnam's domestic NAPAS 9704."""
    return d[0] in "3456" or "2221" <= d[:4] <= "2720" or d.startswith("9704")


def _placeholder(d: str) -> bool:
    """A run of one digit or of consecutive digits (0123456789, 1111111111): a template's filler,
    not accepted on a phone word alone."""
    steps = {(int(b) - int(a)) % 10 for a, b in zip(d, d[1:], strict=False)}
    return len(steps) == 1 and steps <= {0, 1, 9}


_CARD_GROUPS = frozenset({(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 3), (4, 4, 4, 2), (4, 4, 4, 1),
                          (4, 4, 5), (4, 4, 4, 4, 2), (4, 4, 4, 4, 1), (6, 13), (8, 8)})  # fmt: skip


def _card_grouping(raw: str) -> bool:
    """Written as cards are: in one piece, or in the printed groups (4-4-4-4, Amex 4-6-5, …) with one
    kind of separator — a row of decimals ("23.9 23.3 25.7 …") can pass Luhn by chance."""
    groups = _GROUP.findall(raw)
    if len(groups) == 1:
        return True
    seps = set(_GROUP.split(raw)[1:-1])
    return len(seps) == 1 and tuple(len(g) for g in groups) in _CARD_GROUPS


def _ssn_valid(d: str) -> bool:
    """US SSN rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    return d[:3] not in ("000", "666") and d[0] != "9" and d[3:5] != "00" and d[5:] != "0000"


@lru_cache(maxsize=PHONE_MEMO)
def _phone(digits: str, region: str | None, possible: bool = False) -> bool:
    """Whether phonenumbers' metadata says ``digits`` is a valid number of ``region`` (None: +CC
    form), or only a possible one (right length for the country) when ``possible`` — a phone
    word nearby then vouches for ranges the metadata leaves out, such as the numbers set aside
    for drama. Memoised (a pure function of its arguments; phonenumbers' parse and validation
    cost ~20 µs): a conversation resends its earlier turns with every request, and a text
    repeats its numbers."""
    try:
        num = phonenumbers.parse(("+" + digits) if region is None else digits, region)
    except phonenumbers.NumberParseException:
        return False
    if not (phonenumbers.is_possible_number(num) if possible else phonenumbers.is_valid_number(num)):
        return False
    national = str(num.national_number)
    # Vietnamese toll-free / premium hotlines: a business, not a person
    return not (num.country_code == 84 and national[:4] in ("1800", "1900"))


class _Span:
    """The facts about one sub-span that every rule reads."""

    __slots__ = ("digits", "raw", "near", "kinds", "lead")

    def __init__(self, digits: str, raw: str, near: list[str]) -> None:
        self.digits, self.raw, self.near = digits, raw, near
        typed = [k for k in near if k in _TYPED_KINDS]
        self.lead = typed[0] if typed else None
        # kinds that count: those nearer than the nearest "negative" word
        self.kinds = frozenset(typed[: typed.index("negative")] if "negative" in typed else typed)


def classify(digits: str, raw: str, near: list[str], before: list[str] | None = None) -> tuple[str, float, str] | None:
    """(type, score, rule) for a digit span, or None: the rules in priority order. ``near``: the
    kinds of the context words around it, nearest first; ``before``: those before it (None: all)."""
    s = _Span(digits, raw, near)
    n = len(digits)
    if s.lead == "negative":
        return None
    if raw.startswith(("+", "(+")):
        return ("PHONE_NUMBER", 0.95, "pii.phone.intl") if _phone(digits, None) else None
    if digits.startswith("00") and n > 10 and not s.kinds & _ID_KINDS and _phone(digits[2:], None):
        return "PHONE_NUMBER", 0.9, "pii.phone.intl"
    if 13 <= n <= 19 and _card_prefix(digits) and _card_grouping(raw) and luhn.is_valid(digits):
        if s.lead in ("bank", "bankname") and "card" not in s.kinds:
            return "VN_BANK_ACCOUNT", 0.85, "pii.bank_account.context"
        return "CREDIT_CARD", 0.98 if "card" in s.kinds else 0.95, "pii.card.luhn"
    if "tax" in s.kinds and n in (10, 13) and mst.is_valid(digits) and _written_as_tax_code(s):
        return "VN_TAX_CODE", 0.95, "pii.vn_tax_code.check_digit"
    if n == 12 and s.lead == "tax" and _cccd_shape(digits):
        # an individual's tax code is their CCCD number since 1 July 2025: one value, one type,
        # named by the nearest word
        return "VN_TAX_CODE", 0.9, "pii.vn_tax_code.personal_id"
    if n == 12 and 1 <= int(digits[:3]) <= 96 and s.kinds & _ID_KINDS:
        if s.lead == "cmnd" and "cccd" not in s.kinds:  # "CCCD/CMND: <12 digits>" is a CCCD
            return "VN_CMND", 0.85, "pii.vn_cmnd.context"
        return "VN_CCCD", 0.95 if digits[:3] in CCCD_PROVINCES else 0.8, "pii.vn_cccd.context"
    if n == 9:
        if "ssn" in s.kinds and _ssn_valid(digits):
            return "US_SSN", 0.95, "pii.us_ssn.context"
        if s.kinds & _ID_KINDS:
            return "VN_CMND", 0.85, "pii.vn_cmnd.context"
        if _SSN_SHAPE.fullmatch(raw) and _ssn_valid(digits):
            return "US_SSN", 0.85, "pii.us_ssn.shape"
    if 6 <= n <= 19 and s.lead == "bank":
        return "VN_BANK_ACCOUNT", 0.85, "pii.bank_account.context"
    if s.lead in _DECIDING_KINDS and (before is None or s.lead in before) and not _written_as_phone(s):
        # "MST: <invalid check digit>" is no phone number either (unless it is written as one:
        # "MST: 090-123-4571"); but a type word only *after* the number ("0912 345 678 và CCCD
        # 0012…") names the next value, not this one
        return None
    # a bank's name alone does not turn a valid phone number into an account number
    phone = _classify_phone(s)
    if 6 <= n <= 19 and s.lead == "bankname" and not phone:
        return "VN_BANK_ACCOUNT", 0.8, "pii.bank_account.context"
    return phone or _classify_weak(s)


def _written_as_phone(s: _Span) -> bool:
    """Whether 10 digits are a phone number by their writing, whatever word names them: a valid
    Vietnamese number (a mobile's prefix) written in groups ("091-234-5678", "0912 345 678") or
    nearer a phone word than any other type word. A tax code is printed as one block of 10 digits
    (Circular 105/2020/TT-BTC; its only dash comes after them, before a branch's 3 digits), and
    one mobile number in eleven passes the MST check digit by chance."""
    d = s.digits
    return len(d) == 10 and (s.lead == "phone" or not s.raw.isdigit()) and d[0] == "0" and _phone(d, "VN")


def _written_as_tax_code(s: _Span) -> bool:
    """10 digits not written as a phone number, or 13 as 10 of them, a dash and a branch's 3 digits."""
    if len(s.digits) == 10:
        return not _written_as_phone(s)
    head, dash, branch = s.raw.rpartition("-")
    if not dash or len(branch.strip()) != 3:
        return False
    return not _written_as_phone(_Span(s.digits[:10], head.rstrip(), s.near))


def _classify_phone(s: _Span) -> tuple[str, float, str] | None:
    """Vietnamese numbers from their national prefix; other national forms only with a phone
    word nearby or the unmistakable (xxx) xxx-xxxx shape."""
    d = s.digits
    if d.startswith("0") and _phone(d, "VN"):
        return "PHONE_NUMBER", 0.95 if "phone" in s.kinds else 0.85, "pii.phone.vn"
    if d.startswith("84") and len(d) == 11 and _phone(d, None):
        return "PHONE_NUMBER", 0.9, "pii.phone.vn"
    if len(d) in (10, 11) and ("phone" in s.kinds or _US_SHAPE.fullmatch(s.raw) or _TRUNK_SHAPE.fullmatch(s.raw)):
        for region in _NATIONAL_REGIONS:
            if _phone(d, region):
                return "PHONE_NUMBER", 0.9 if "phone" in s.kinds else 0.75, "pii.phone.national"
    if "phone" in s.kinds and len(d) >= 9 and not _placeholder(d):
        for region in _NATIONAL_REGIONS:  # Vietnam's metadata is complete: an invalid VN number is none
            if _phone(d, region, possible=True) and (d[0] == "0" or region == "US"):
                return "PHONE_NUMBER", 0.8, "pii.phone.possible"
    return None


def _classify_weak(s: _Span) -> tuple[str, float, str] | None:
    """Shapes that validate but carry no context word: reported below the default threshold."""
    d = s.digits
    if len(d) == 12 and d[:3] in CCCD_PROVINCES and d[3] in "0123":
        return "VN_CCCD", 0.45, "pii.vn_cccd.shape"
    if len(d) == 13 and _BRANCH_SHAPE.fullmatch(s.raw) and mst.is_valid(d):
        return "VN_TAX_CODE", 0.75, "pii.vn_tax_code.branch_shape"  # 0101234567-001: the MST's own shape
    if len(d) == 10 and mst.is_valid(d):
        return "VN_TAX_CODE", WEAK_TAX, "pii.vn_tax_code.check_digit"
    return None


def _cccd_shape(d: str) -> bool:
    """12 digits opening with a province code (001–096) and a century/gender digit."""
    return 1 <= int(d[:3]) <= 96 and d[3] in "0123"


def _far_tax(hit: tuple[str, float, str], ctx: ContextIndex, start: int) -> tuple[str, float, str]:
    """A check-digit-valid tax code with no context word within reach becomes a finding when the
    nearest type word up to ``FAR_BEFORE`` characters before it is a tax word ("Mã số thuế của
    Công ty Cổ phần … là 0101234567")."""
    if hit[1] == WEAK_TAX and ctx.far_before(start)[:1] == ["tax"]:
        return "VN_TAX_CODE", 0.85, "pii.vn_tax_code.far_context"
    return hit


def _is_amount(folded: str, start: int, end: int) -> bool:
    return bool(_AMOUNT_AFTER.match(folded, end) or _AMOUNT_BEFORE.search(folded, max(0, start - 5), start))


def _runs(text: str) -> Iterator[tuple[int, int]]:
    """Spans of digit groups joined by single separators, with a leading "+" and a parenthesised
    country or area code ("(+84) 35 …", "(028) 3822 …") taken in by hand: a regex with those
    optional prefixes is tried at every position and costs five times the scan."""
    done = 0
    for m in _CORE.finditer(text):
        start, end = m.span()
        if start < done:
            continue  # inside a run already extended over a parenthesis
        if text[start - 1 : start] == "+":
            start -= 1
        if text[start - 1 : start] == "(" and m.end() - m.start() <= 4:
            tail = _PAREN_TAIL.match(text, end)
            if tail:
                start, end = start - 1, tail.end()
        done = end
        yield start, end


def find_numbers(text: str, folded: str, ctx: ContextIndex) -> Iterator[Finding]:
    """Findings for every validated digit span of ``text``."""
    memo: _Memo = {}
    for start, end in _runs(text):
        if end - start < _MIN_DIGITS:
            continue  # years, counts, small amounts: most runs, and never long enough to be PII
        ip = IPV4.match(text, start)
        if ip and ip.end() >= end and _clean_ip(text, start, ip.end()):
            found = ipv4(text, start, ip.end(), ctx)
            if found:
                yield found
            continue
        if start and (text[start - 1].isalnum() or text[start - 1] in "_/.,@#"):
            continue  # the tail of a code, a version (v2.1), a path, a decimal, an e-mail, a #reference
        if end < len(text) and (text[end].isalnum() or text[end] in "_@/"):
            continue  # the head of a code or an amount written 1.299.000đ
        raw = text[start:end]
        if _is_amount(folded, start, end) or _DATE.fullmatch(raw) or _DECIMAL.fullmatch(raw):
            continue
        yield from _split(text, raw, start, ctx, memo)


def _clean_ip(text: str, start: int, end: int) -> bool:
    """Nothing glued to an IPv4 candidate: no word character or dot before it ("v1.2.3.4"), no word
    character or further ".digit" group after it."""
    if start and (text[start - 1].isalnum() or text[start - 1] in "._"):
        return False
    nxt = text[end : end + 2]
    return not nxt or not (nxt[0].isalnum() or nxt[0] == "_" or (nxt[0] == "." and nxt[1:].isdigit()))


_Class = tuple[str, float, str] | None
_Memo = dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], _Class]


def _classified(memo: _Memo, digits: str, raw: str, near: list[str], before: list[str]) -> _Class:
    """``classify``, once per distinct value, writing and context words within one text: it is a
    pure function of them, and a text that repeats a value (a thread quoting its earlier turns, a
    signature under every message) asks again with the same words around it."""
    key = (digits, raw, tuple(near), tuple(before))
    if key in memo:
        return memo[key]
    got = memo[key] = classify(digits, raw, near, before)
    return got


def _split(text: str, raw: str, offset: int, ctx: ContextIndex, memo: _Memo) -> Iterator[Finding]:
    """The longest validating sub-spans of whole digit groups of one run, left to right; only spans
    of 7 to 19 digits are tried (no type is shorter or longer)."""
    if raw.isdigit():  # one group (most runs): itself is the only span
        if len(raw) <= _MAX_DIGITS:
            hit = _classified(
                memo, raw, raw, ctx.near(offset, offset + len(raw)), ctx.near(offset, offset + len(raw), False)
            )
            if hit:
                hit = _far_tax(hit, ctx, offset)
                yield Finding(hit[0], offset, offset + len(raw), hit[1], hit[2])
        return
    groups = [(g.start(), g.end()) for g in _GROUP.finditer(raw)]
    digits = "".join(raw[a:b] for a, b in groups)
    cum = [0]  # cum[k]: digits in groups[:k]
    for a, b in groups:
        cum.append(cum[-1] + b - a)
    i = 0
    while i < len(groups):
        found = None
        for j in range(len(groups) - 1, i - 1, -1):
            n = cum[j + 1] - cum[i]
            if n > _MAX_DIGITS:
                continue
            if n < _MIN_DIGITS:
                break
            s = 0 if i == 0 else groups[i][0]  # the first span keeps a leading + or (area code)
            e = groups[j][1]
            near = ctx.near(offset + s, offset + e)
            hit = _classified(
                memo, digits[cum[i] : cum[j + 1]], raw[s:e], near, ctx.near(offset + s, offset + e, False)
            )
            if hit:
                hit = _far_tax(hit, ctx, offset + s)
                found = (j, Finding(hit[0], offset + s, offset + e, hit[1], hit[2]))
                break
        if found:
            yield found[1]
            i = found[0] + 1
        else:
            i += 1
