"""Postal addresses: Vietnamese chains of address parts, and English street addresses.

A Vietnamese address is written as parts from the smallest to the largest, separated by commas:
house number, lane (ngõ/ngách/hẻm/kiệt + number), street (đường/phố + name, or a name right after
the house number), then the administrative units (thôn/xóm/ấp, phường/xã/thị trấn, quận/huyện/
thị xã, tỉnh/thành phố, with or without their keyword: "Quận 5", "Q5", "TP.HCM", "Hà Nội").
A chain of parts is an address when it holds a house number, lane or street and one more part,
or three administrative parts ("thôn Đông, xã Tân Lập, huyện Đan Phượng"): a district or a city
alone locates no one. English: number + capitalised words + a street suffix, then optional unit,
city, state and ZIP or UK postcode.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from llmgw_kernel.guardrails.findings import Finding

from .lexicon import VN_PLACES

_PLACE = (
    r"(?:"
    + "|".join(sorted((r"[\s.\-]*".join(map(re.escape, p.split())) for p in VN_PLACES), key=len, reverse=True))
    + r")"
)
# one part of a Vietnamese address, matched on the folded text; "name" parts are checked for
# capitals on the original text afterwards
_PART = re.compile(
    rf"""(?P<house>(?:(?:so\s+nha|so|nha|sn|can\s+ho)\s+)?\d{{1,5}}[a-z]?(?:/\d{{1,4}}[a-z]?){{0,3}}(?![\w/.]))
    |(?P<lane>(?:ngo|ngach|hem|kiet)\s+\d{{1,4}}[a-z]?(?:/\d{{1,4}}[a-z]?){{0,2}}(?![\w/]))
    |(?P<street>(?:duong|pho|d\.|dai\s+lo|quoc\s+lo|ql|tinh\s+lo)\s*(?=[^\s,]))
    |(?P<city>(?:thanh\s+pho|tp\.?|tinh)\s*(?=\S)(?:{_PLACE})|{_PLACE})(?![a-z])
    |(?P<unit>(?:p|q|f)\.?\s?\d{{1,2}}(?![\w]))
    |(?P<admin>(?:phuong|xa|thi\s+tran|quan|huyen|thi\s+xa|thanh\s+pho|tinh|thon|ap|xom|to\s+dan\s+pho|to|
        khu\s+pho|khu\s+dan\s+cu|khu\s+do\s+thi|khu\s+cong\s+nghiep|kdc|kdt|kcn|ccn|khu|kp|p\.|q\.|tx\.|tt\.|h\.|ward|district)\s*(?=[^\s,]))
    """,
    re.VERBOSE,
)
_NUMBERED = re.compile(r"so\s+\d{1,4}[a-z]?(?![\w/])")
_NAME_WORD = re.compile(r"[^\W_]+(?:/[^\W_]+)?")
_SEP = re.compile(r"\s*(?:,|-|–)?\s*")
_STRONG = {"house_street", "lane", "street"}
_EN_STREET = re.compile(  # no leading \b (tried at every position): the character before is checked in code
    r"\d{1,6}[A-Za-z]?(?:-\d{1,4})?\s+(?:[A-Z][a-zA-Z'’-]*\.?\s+){1,4}"
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace|Ter|"
    r"Parkway|Pkwy|Highway|Hwy|Square|Sq|Circle|Cir|Close|Crescent|Row|Trail|Plaza|Gardens|Mews|Hill)\b\.?"
    r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Floor|Fl|Flat|Room|#)\.?\s*#?[\w-]{1,6})?"
    r"(?:,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+){0,2})?"
    r"(?:,?\s*(?:[A-Z]{2}\s+\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}))?"
    # continental form: number, then the street type first ("12 Rue de Rivoli, 75001 Paris")
    r"|\d{1,5}[a-z]?,?\s(?:Rue|Avenue|Boulevard|Bd|Calle|Carrer|Via|Viale|Rua|Praça|Plaza|Piazza|Place|Allée)"
    r"\s(?:(?:de|du|des|la|le|del|della|da|do|di)\s)*[A-Z][\w'’-]+(?:\s[A-Z][\w'’-]+){0,3}"
    r"(?:,\s*(?:\d{4,5}\s)?[A-Z][a-z]+(?:[\s-][A-Z][a-z]+){0,2})?"
)
# every English or continental street address holds one of these words: a scan for them (cheap —
# they start with a capital) decides whether the address regex runs at all
_STREET_WORD = re.compile(
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace|Ter|Parkway|"
    r"Pkwy|Highway|Hwy|Square|Sq|Circle|Cir|Close|Crescent|Row|Trail|Plaza|Gardens|Mews|Hill|Rue|Bd|Calle|Carrer|"
    r"Via|Viale|Rua|Praça|Piazza|Allée)\b"
)
_PO_BOX = re.compile(r"(?:P\.?\s?O\.?\s?Box|PO\sBox)\s+\d{1,6}(?!\w)")


def _name(text: str, pos: int, limit: int = 5) -> int:
    """End of the capitalised words (or numbers: "30/4", "13") starting at ``pos``; ``pos`` if none."""
    end, n = pos, 0
    while n < limit:
        m = _NAME_WORD.match(text, end if n == 0 else end + 1) if n == 0 or text[end : end + 1] == " " else None
        if m is None:
            break
        w = m.group()
        if not (w[0].isdigit() or (w[0].isupper() and (len(w) == 1 or not w[1:].isupper()))):
            break  # names are Capitalised or numbers ("30/4"); "MB", "KB" are units
        end, n = m.end(), n + 1
    return end


def _part(text: str, folded: str, pos: int, prev: str | None) -> tuple[str, int] | None:
    """(kind, end) of the address part at ``pos``, or None."""
    m = _PART.match(folded, pos)
    if m and m.lastgroup in ("street", "admin"):
        numbered = _NUMBERED.match(folded, m.end())  # "đường số 7", "khu phố số 3"
        end = numbered.end() if numbered else _name(text, m.end())
        return (m.lastgroup, end) if end > m.end() else None
    if m and m.lastgroup == "house":
        end = _name(text, m.end() + 1) if text[m.end() : m.end() + 1] == " " else m.end()
        if end > m.end() + 1 and not text[m.end() + 1].isdigit():
            return "house_street", end
        return "house", m.end()
    if m:
        return m.lastgroup or "", m.end()
    if prev in ("house", "lane", "house_street", "street", "admin", "unit"):
        end = _name(text, pos, limit=4)  # a district or street written without its keyword
        if end > pos and text[pos].isupper():
            return "name", end
    return None


def _chain(text: str, folded: str, start: int) -> tuple[int, list[str]]:
    """End and kinds of the longest chain of address parts from ``start``."""
    kinds: list[str] = []
    pos = end = start
    while True:
        got = _part(text, folded, pos, kinds[-1] if kinds else None)
        if not got:
            break
        kind, end = got
        if kinds and kind in ("house", "house_street"):
            break  # a house number only starts an address ("1903 6512 3450 12" is no chain of houses)
        kinds.append(kind)
        sep = _SEP.match(text, end)
        if not sep or sep.end() == end and not kinds:
            break
        pos = sep.end()
    return end, kinds


def _is_address(kinds: list[str]) -> bool:
    strong = sum(k in _STRONG for k in kinds)
    if strong and len(kinds) >= 2:
        return True
    return sum(k in ("admin", "unit") for k in kinds) >= 2 and len(kinds) >= 3


_HOUSE_START = re.compile(r"\d{1,5}[a-z]?(?:/\d{1,4}[a-z]?){0,3},?\s+(?=(\S))")  # look-ahead: "12, 198 …" both start
_HOUSE_PREFIX = re.compile(r"(?:so\s+nha|so|nha|sn|can\s+ho)\s+$")
_KEYWORD_START = re.compile(r"(?:ngo|ngach|hem|kiet|duong|pho|thon|xom|ap|phuong|xa|khu|kp)\s|to\s+(?:dan\s+pho\s+)?\d")
_AFTER_HOUSE = ("ngo", "ngach", "hem", "kiet", "duong", "pho", "d.")


def _starts(text: str, folded: str) -> Iterator[int]:
    """Where an address chain may start, in text order: a house number followed by a capitalised
    street name or a lane/street word (moved back over "số"/"nhà"), or a lane, street or
    administrative word. Checked in code rather than with look-behinds, which cost a scan each."""
    found: list[int] = []
    for m in _HOUSE_START.finditer(folded):
        s = m.start()
        if s and (folded[s - 1].isalnum() or folded[s - 1] in "/.,"):
            continue
        nxt = m.start(1)
        if text[nxt].isupper() or folded.startswith(_AFTER_HOUSE, nxt):
            p = _HOUSE_PREFIX.search(folded, max(0, s - 8), s)
            found.append(p.start() if p else s)
    for m in _KEYWORD_START.finditer(folded):
        if not (m.start() and folded[m.start() - 1].isalpha()):
            found.append(m.start())
    return iter(sorted(found))


def find_addresses(text: str, folded: str) -> Iterator[Finding]:
    """ADDRESS findings: Vietnamese address chains and English street addresses."""
    done = 0
    for start in _starts(text, folded):
        if start < done:
            continue
        end, kinds = _chain(text, folded, start)
        if _is_address(kinds):
            yield Finding("ADDRESS", start, end, 0.92, "pii.address.vi.parts")
            done = end
    for m in _EN_STREET.finditer(text) if _STREET_WORD.search(text) else ():
        if m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] in "_/.,-"):
            continue
        yield Finding("ADDRESS", m.start(), m.end(), 0.92, "pii.address.en.street")
    if "Box" in text:
        for m in _PO_BOX.finditer(text):
            if not (m.start() and text[m.start() - 1].isalnum()):
                yield Finding("ADDRESS", m.start(), m.end(), 0.92, "pii.address.en.po_box")
