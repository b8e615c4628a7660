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

from stdnum import iban, numdb
from stdnum.exceptions import ValidationError

from llmgw_kernel.guardrails.findings import Finding

from .context import ContextIndex

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,24}(?![\w-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}(?:/\d{{1,2}})?")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
# what every IPv6 finding holds (three colons or "::", below): "::", or two full groups between
# colons; a clock time ("10:30:00") has neither, so the costly scan runs only when it can find one
_IPV6_GATE = re.compile(r"::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# The scans below have no look-behind (it is tried at every position and costs more than the
# scan); the character before a match is checked in code instead (``_starts_clean``).
# a letter then two digits: where an IBAN's check digits and a passport number's digits start; or
# two capitals, a space and two digits: an IBAN whose country code stands apart ("DE 89 3704 …",
# capitals only: "at 12 …", "no 34 …" are prose). One scan for all, and one that starts on a digit:
# it fails at once on letters, where a letter-first scan ("[A-Za-z]{2}\d\d", "[A-Z]\d{7,8}") tests
# every pair of letters (2-3x slower on prose)
_LETTER_DIGITS = re.compile(r"\d(?:(?<=[A-Za-z]\d)|(?<=[A-Z]{2}[ \u00a0\u202f\u2009\t]\d))\d")
#: IBAN length per country, from the SWIFT registry as python-stdnum ships it (BBAN structure
#: "4!a6!n8!n": the lengths summed, plus the country code and check digits)
IBAN_LENGTHS: dict[str, int] = {
    cc: 4 + sum(int(n) for n in re.findall(r"(\d+)!", props.get("bban", "")))
    for _, cc, _, props, _ in numdb.get("iban").prefixes
    if props.get("bban")
}
#: spaces people put between an IBAN's characters (also non-breaking and thin ones, tabs)
_IBAN_SPACES = " \u00a0\u202f\u2009\t"
_PASSPORT = re.compile(r"[A-Z]\d{7,8}(?![\w-])")
# the look-ahead (a letter follows, as the series does) rejects the digit pairs of numbers at once
_PLATE = re.compile(
    r"([1-9]\d)(?=[ \-]?[A-Z])[ \-]?([A-Z]{1,2}\d?|[A-Z]{2})[ \-.]?\s?(\d{3}\.\d{2}|\d{4,5})(?![\w]|[.,]\d)"
)
#: API keys with a published prefix (provider documentation): these need no context.
_KEY_PREFIXES = (
    "sk-", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "AIza", "glpat-", "hf_",
    "_live_", "_test_", "SG.", "eyJ", "-----BEGIN",
)  # fmt: skip
# one scan for any of them (18 substring searches cost twice as much on 4 KB of Vietnamese)
_KEY_PREFIX = re.compile("|".join(map(re.escape, _KEY_PREFIXES)))
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
_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=]{20,}")
_TOKEN_TRIM = "\"'`.,;:!?()[]{}<>"
_PLATE_PROVINCES = frozenset(range(11, 100))  # province codes of Vietnamese plates


def _starts_clean(text: str, start: int, bad: str) -> bool:
    """The character before ``start`` is neither alphanumeric nor one of ``bad``."""
    return start == 0 or not (text[start - 1].isalnum() or text[start - 1] in bad)


def _entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _classes(s: str) -> int:
    return sum((any(c.islower() for c in s), any(c.isupper() for c in s), any(c.isdigit() for c in s)))


def find_shapes(text: str, ctx: ContextIndex) -> Iterator[Finding]:
    """Findings for every validated e-mail, IPv6, IBAN, key, passport number and plate in ``text``
    (IPv4 addresses come with the digit runs, ``numbers.py``)."""
    yield from _emails(text)
    yield from _obfuscated_emails(text, ctx.folded)
    if _IPV6_GATE.search(text):
        yield from _ipv6(text)
    yield from _keys(text, ctx)
    for m in _LETTER_DIGITS.finditer(text):
        at, ascii_digits = m.start(), m.group().isascii()
        if text[at - 1] in _IBAN_SPACES:  # the country code apart
            if ascii_digits:
                yield from _iban(text, at - 3, at)
            continue
        if "A" <= text[at - 1] <= "Z":
            yield from _passport(text, at - 1, ctx)
        if at >= 2 and ascii_digits:
            yield from _iban(text, at - 2, at)
    yield from _plates(text, ctx)


def _passport(text: str, start: int, ctx: ContextIndex) -> Iterator[Finding]:
    """A passport number (a capital letter and 7–8 digits) at ``start``: 0.9 after a passport word
    nearer than any negative word, 0.35 without one (the 8-character Vietnamese shape only)."""
    m = _PASSPORT.match(text, start)
    if not m or not _starts_clean(text, start, "_-"):
        return
    near = ctx.near(m.start(), m.end())
    if "passport" in near and near.index("passport") < (near.index("negative") if "negative" in near else 99):
        yield Finding("VN_PASSPORT", m.start(), m.end(), 0.9, "pii.vn_passport.context")
    elif len(m.group()) == 8:
        yield Finding("VN_PASSPORT", m.start(), m.end(), 0.35, "pii.vn_passport.shape")


_AT = r"\s*(?:\[at\]|\(at\)|\{at\}|<at>)\s*"
_DOT = r"(?:\s*(?:\[dot\]|\(dot\)|\{dot\}|<dot>)\s*|\s+dot\s+|\.)"
_LOCAL = r"(?<![\w.+-])[a-z0-9][a-z0-9._%+-]{0,63}"
_OBFUSCATED_EMAILS = (
    re.compile(rf"{_LOCAL}{_AT}[a-z0-9-]{{1,63}}(?:{_DOT}[a-z0-9-]{{1,63}}){{0,3}}{_DOT}[a-z]{{2,24}}(?![\w-])"),
    # spelled out in full: only with a common top-level domain ("at noon dot or" is prose)
    re.compile(
        rf"{_LOCAL}\s+at\s+[a-z0-9-]{{1,63}}(?:\s+dot\s+[a-z0-9-]{{1,63}}){{0,3}}\s+dot\s+"
        r"(?:com|net|org|edu|gov|vn|io|co|uk|us|de|fr|jp|info|biz|me|ai|dev|app)(?![\w-])"
    ),
)
_OBFUSCATION_MARKS = ("[at]", "(at)", "{at}", "<at>", " dot ")


def _obfuscated_emails(text: str, folded: str) -> Iterator[Finding]:
    """E-mail addresses written to dodge scrapers: "an.nguyen [at] example [dot] com", "jo(at)mail.vn";
    " at " alone is an ordinary word, so it counts only with a spelled-out " dot "."""
    if not any(mark in folded for mark in _OBFUSCATION_MARKS):
        return
    for regex in _OBFUSCATED_EMAILS:
        for m in regex.finditer(folded):
            yield Finding("EMAIL_ADDRESS", m.start(), m.end(), 0.9, "pii.email.obfuscated")


def _emails(text: str) -> Iterator[Finding]:
    """E-mail addresses, looked for only around each "@"."""
    at, done = text.find("@"), 0
    while at >= 0:
        for m in _EMAIL.finditer(text, max(done, at - 64), min(len(text), at + 256)):
            if m.start() < at < m.end():
                yield Finding("EMAIL_ADDRESS", m.start(), m.end(), 0.97, "pii.email.shape")
                done = m.end()
                break
        at = text.find("@", max(at + 1, done))


def ipv4(text: str, start: int, end: int, ctx: ContextIndex) -> Finding | None:
    """An IPv4 address (with an optional /prefix) spanning ``[start, end)``, unless a version or
    build word just before it says otherwise ("version 1.2.3.4")."""
    if ctx.near(start, end, after=False)[:1] == ["negative"]:
        return None
    addr = ipaddress.IPv4Address(text[start:end].split("/")[0])
    if addr.is_loopback or addr.is_unspecified or addr.is_multicast or addr == _BROADCAST:
        return None  # 127.0.0.1, 0.0.0.0: configuration, not anyone's address
    return Finding("IP_ADDRESS", start, end, 0.9, "pii.ip.v4")


def _ipv6(text: str) -> Iterator[Finding]:
    for m in _IPV6.finditer(text):
        try:
            ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        addr = ipaddress.IPv6Address(m.group())
        if addr.is_loopback or addr.is_unspecified or addr.is_multicast:
            continue
        if m.group().count(":") >= 3 or "::" in m.group():
            yield Finding("IP_ADDRESS", m.start(), m.end(), 0.9, "pii.ip.v6")


def _iban(text: str, start: int, check: int) -> Iterator[Finding]:
    """An IBAN at ``start``: a country code of the registry, its two check digits at ``check`` (right
    after it, or one space apart), then exactly as many characters as that country's IBAN holds,
    in any case, with at most one separator (or one line break) between two characters; the
    country's BBAN structure and mod 97 (python-stdnum) decide."""
    cc = text[start : start + 2]
    size = IBAN_LENGTHS.get(cc.upper()) if cc.isascii() else None  # "ı".upper() is "I"
    if size is None or not _starts_clean(text, start, ""):
        return
    end = _iban_end(text, check + 2, size - 4)
    if end and _iban_valid(_ALNUM_ONLY.sub("", text[start:end])):
        yield Finding("IBAN_CODE", start, end, 0.97, "pii.iban.mod97")


def _iban_valid(compact: str) -> bool:
    """Mod 97 and the country's BBAN structure; not the national check digits some countries add
    (Spain's CCC, France's RIB key, ...): an account number written with a slip in those is still
    an account number to keep out of a provider (mod 97 alone lets 1 in 97 look-alikes through)."""
    try:
        iban.validate(compact, check_country=False)
    except ValidationError:
        return False
    return True


_ALNUM_ONLY = re.compile(r"[^A-Za-z0-9]")


def _iban_end(text: str, pos: int, want: int) -> int | None:
    """Where the ``want`` alphanumerics after ``pos`` end, each pair apart by at most one separator
    or one line break (with spaces around it); None when they run out first or when the last one
    is glued to another letter or digit (the IBAN would be part of a longer token)."""
    n, size = 0, len(text)
    while n < want:
        if pos < size and text[pos].isascii() and text[pos].isalnum():
            pos, n = pos + 1, n + 1
            continue
        after = _skip_separator(text, pos)
        if after is None:
            return None
        pos = after
    if pos < size and text[pos].isalnum():
        return None
    return pos


def _skip_separator(text: str, pos: int) -> int | None:
    """The position after one separator at ``pos``, if an alphanumeric follows it; else None. A
    separator is a hyphen, a dot or a line break, or none of them, with up to three spaces (also
    non-breaking, thin, tabs) on either side: "1234 5678", "1234  5678" (pasted from a PDF),
    "1234 - 5678", "1234\n5678"."""
    start = pos = _skip_spaces(text, pos)
    if text[pos : pos + 2] == "\r\n":
        pos += 2
    elif text[pos : pos + 1] in ("-", ".", "\n"):
        pos += 1
    if pos > start:
        pos = _skip_spaces(text, pos)
    if pos < len(text) and text[pos].isascii() and text[pos].isalnum():
        return pos
    return None


def _skip_spaces(text: str, pos: int) -> int:
    """The position after up to three spaces at ``pos``."""
    end = pos
    while end < len(text) and end - pos < 3 and text[end] in _IBAN_SPACES:
        end += 1
    return end


def _keys(text: str, ctx: ContextIndex) -> Iterator[Finding]:
    known = list(_known_keys(text))
    for a, b in known:
        yield Finding("API_KEY", a, b, 0.97, "pii.api_key.prefix")
    for start, tok in _long_tokens(text):
        if any(a <= start < b for a, b in known) or _classes(tok) < 3:
            continue
        ent = _entropy(tok)
        end = start + len(tok)
        if "key" in ctx.near(start, end)[:2] and ent >= 3.5:
            yield Finding("API_KEY", start, end, 0.85, "pii.api_key.context_entropy")
        elif len(tok) >= 32 and ent >= 4.2:
            yield Finding("API_KEY", start, end, 0.6, "pii.api_key.entropy")


def _known_keys(text: str) -> Iterator[tuple[int, int]]:
    """Spans of the keys with a published prefix, as ``_KNOWN_KEYS.finditer`` finds them, tried only
    where a prefix occurs (every key starts at its prefix, or 2 characters before ``_live_`` and
    ``_test_``): the look-behind that opens the pattern makes a scan of the whole text cost ~80 µs
    per 4 KB. A prefix inside a key found already is skipped, as the scan would."""
    done = 0
    for p in _KEY_PREFIX.finditer(text):
        at = p.start() - 2 if p.group()[0] == "_" else p.start()
        if at < done:
            continue
        m = _KNOWN_KEYS.match(text, at)
        if m:
            done = m.end()
            yield m.span()


def _long_tokens(text: str) -> Iterator[tuple[int, str]]:
    """(offset, token) for each whitespace-separated word of 20+ key characters (letters, digits,
    ``_-+/=``) once surrounding quotes and punctuation are trimmed; the words come from
    ``str.split`` (far cheaper than a regex scan of every position), and only a long word is
    looked up: the words between two long ones are shorter, so none of them holds it. A word
    holding a URL or a path is skipped."""
    pos = 0
    for word in [w for w in text.split() if len(w) >= 20]:
        pos = text.find(word, pos)
        tok = word.strip(_TOKEN_TRIM)
        for part in tok.split("=", 1) if "=" in tok.rstrip("=") else (tok,):  # KEY=value
            if len(part) >= 20 and _TOKEN.fullmatch(part) and "//" not in part and part.count("/") < 2:
                yield text.find(part, pos), part
        pos += len(word)


def _plates(text: str, ctx: ContextIndex) -> Iterator[Finding]:
    """Vietnamese plates: 2-digit province code, series letter(s) (+ a digit for motorbikes),
    then 4–5 digits, usually written 51F-123.45 or 29-B1 234.56."""
    for m in _PLATE.finditer(text):
        if int(m.group(1)) not in _PLATE_PROVINCES or not _starts_clean(text, m.start(), "_.-"):
            continue
        near = ctx.near(m.start(), m.end())
        if near[:1] == ["negative"]:
            continue
        shaped = "." in m.group(3) or "-" in m.group()
        score = 0.95 if "plate" in near else (0.8 if shaped else 0.45)
        yield Finding("VN_LICENSE_PLATE", m.start(), m.end(), score, "pii.vn_license_plate.shape")
