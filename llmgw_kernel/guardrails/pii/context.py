"""Context words: what the words just before (or just after) a candidate say it is.

A 12-digit run is a citizen ID after ``CCCD`` and an order number after ``mã đơn``; the digits
alone cannot tell. Each *kind* below is a short list of words (English and Vietnamese, written
without diacritics because they are matched on the folded text, see ``fold.py``). The index
finds them all in one pass and answers, for a span, which kinds are near it, nearest first.
The ``negative`` kind names things that look like identifiers but are not personal data.
"""

from __future__ import annotations

import re
from typing import Any

#: kind -> context words (folded: lower case, no diacritics). Written from the public vocabulary
#: of forms and chat in each language, not from any corpus.
CONTEXT_WORDS: dict[str, tuple[str, ...]] = {
    kind: tuple(w.strip() for w in words.split("|"))
    for kind, words in {
        "phone": "so dien thoai|dien thoai|sdt|dt|so dt|di dong|dtdd|goi|goi cho|goi dien|nhan tin|lien he|lien lac|"
        "zalo|viber|whatsapp|telegram|phone|telephone|tel|mobile|cell|call|called|calling|call me|ring|text me|"
        "sms|fax|contact|reach me|number|new number|my number|so may|may ban",
        "cccd": "cccd|can cuoc|can cuoc cong dan|the can cuoc|so dinh danh|ma dinh danh|dinh danh|citizen id|"
        "citizen identity|citizen identification",
        "cmnd": "cmnd|cmt|chung minh|chung minh nhan dan|chung minh thu",
        "id": "id card|id number|id no|national id|identity card|identity number|personal id|giay to tuy than|"
        "so giay to",
        "passport": "ho chieu|passport|passport no|passport number|so hc",
        "tax": "mst|ma so thue|ma thue|ma so doanh nghiep|msdn|ma so dn|ma doanh nghiep|ma so dang ky thue|"
        "tax code|tax id|tax number|tax identification|tax registration|taxpayer id|vat number|vat code|tin",
        # words that name an account: they decide a digit run by themselves
        "bank": "stk|so tai khoan|tai khoan|tk|so tk|tai khoan ngan hang|account number|account no|acct|a c|"
        "bank account|account|beneficiary account",
        # words that name a bank or a transfer: an account unless a phone word is also near
        "bankname": "chuyen khoan|ck|ngan hang|bank|beneficiary|vietcombank|vcb|techcombank|tcb|bidv|agribank|"
        "vietinbank|mb bank|mbbank|acb|vpbank|tpbank|sacombank|hdbank|vib|shb|ocb|msb|seabank|eximbank|scb|"
        "lpbank|bac a bank|nam a bank|abbank|pvcombank|kienlongbank|momo|vietqr|napas",
        "card": "card|credit card|debit card|card number|card no|visa|mastercard|amex|jcb|so the|the tin dung|"
        "the ghi no|the atm|the visa",
        "ssn": "ssn|social security|social security number|ss#|ss no",
        "plate": "bien so|bien so xe|bien kiem soat|bks|bsx|license plate|licence plate|plate|number plate|"
        "registration plate",
        "key": "api key|apikey|api_key|key|token|access token|secret|secret key|client secret|password|passwd|"
        "bearer|authorization|credential|credentials|khoa api|mat khau",
        # identifiers that are not personal data: orders, invoices, laws, versions, hotlines, amounts
        "negative": "don hang|ma don|ma don hang|don so|order|order no|order number|order id|invoice|hoa don|"
        "purchase order|po number|po no|don dat hang|don mua hang|"
        "so hoa don|van don|ma van don|tracking|tracking number|isbn|ean|upc|sku|version|phien ban|build|release|"
        "nghi dinh|quyet dinh|thong tu|cong van|so hieu|luat|hotline|tong dai|cskh|ma giao dich|giao dich|"
        "transaction|ref|reference|ma san pham|model|serial|ticket|booking|ma dat cho|otp|ma xac nhan|"
        "ma xac thuc|verification code|code|ma khuyen mai|coupon|voucher|page|shipment|lo hang|patent|ho so|"
        "ma ho so|so luong|quantity|gia ban|gia tien|price|total|tong cong|tong tien|vnd|usd|routing number",
    }.items()
}

#: words that count only as written in capitals in the original text: "TIN" (taxpayer identification
#: number) folds onto Vietnamese "tin" (news, message: "tin nhắn", "tín dụng")
CAPITALS_ONLY = frozenset({"tin"})
_BEFORE = 40
#: how far before a value the tax words are looked for when nothing nearer names it: a company's
#: name often stands between "Mã số thuế của Công ty …" and the number
FAR_BEFORE = 120
_AFTER = 16
_KINDS_OF: dict[str, tuple[str, ...]] = {}
for _kind, _words in CONTEXT_WORDS.items():
    for _w in _words:
        _KINDS_OF[_w] = (*_KINDS_OF.get(_w, ()), _kind)


def _dotted(kinds_of: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Each abbreviation (one word of three or more letters, no vowel: mst, sdt, cccd, stk) as also
    written with a dot between its letters, as Vietnamese initialisms often are: M.S.T, S.Đ.T,
    C.C.C.D (folded "m.s.t"; a dot after the last letter is not part of the word). Only with dots:
    "M. S. T." or "M S T" are as likely a person's initials."""
    return {
        ".".join(word): kinds
        for word, kinds in kinds_of.items()
        if len(word) >= 3 and word.isalpha() and not set(word) & set("aeiouy")
    }


_KINDS_OF.update(_dotted(_KINDS_OF))
if any(ch.isdigit() for phrase in _KINDS_OF for ch in phrase):  # ``ContextIndex._both_sides`` relies on it
    raise ValueError("a context word holds a digit")


_TOKEN = re.compile(r"[a-z0-9_#]+")
_TOKEN_CHARS = "a-z0-9_#"
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_#")
_ASCII_DIGITS = frozenset("0123456789")
_LETTER = re.compile("[a-z_#]")  # most values hold none: one look (a third of the cost of the next)
# a word without a digit: only such a word can be (part of) a context phrase
_LETTER_WORD = re.compile(f"(?<![{_TOKEN_CHARS}])[a-z_#]+(?![{_TOKEN_CHARS}])")


_SEP, _END = "\x00", "\x01"  # trie keys: the run of other characters between two words; a phrase's end


def _phrase_pattern(phrases: list[str], after_separator: bool) -> re.Pattern[str]:
    """One regex for every context phrase (group 1): whole words (runs of token characters) joined
    by any run of other characters. It is written as a trie (phrases share their prefixes), so a
    word that starts no phrase fails at its first character; at the end of a word, going on to a
    longer phrase is tried before ending there, so the phrase of most words wins ("so tai khoan"
    over "so"), as the word walk chose. With ``after_separator`` the match opens on the character
    before the phrase, which must not be a token character, so a phrase starts only where a word
    starts: a scan for a pattern that opens on a character class skips the token characters at C
    speed, where a look-behind would be tried at every position (~15% more per window)."""
    trie: dict[str, Any] = {}
    for phrase in phrases:
        node = trie
        for key in _SEP.join(phrase.split()) + _END:
            node = node.setdefault(key, {})
    head = f"[^{_TOKEN_CHARS}]" if after_separator else ""
    return re.compile(head + "(" + _trie_regex(trie) + ")")


def _trie_regex(node: dict[str, Any]) -> str:
    branches = []
    for key in sorted(node, key=lambda k: k == _END):  # the phrase's end last: longer phrases first
        if key == _END:
            branches.append(f"(?![{_TOKEN_CHARS}])")
        elif key == _SEP:
            branches.append(f"[^{_TOKEN_CHARS}]+" + _trie_regex(node[key]))
        else:
            branches.append(re.escape(key) + _trie_regex(node[key]))
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


_PHRASE = _phrase_pattern(list(_KINDS_OF), after_separator=True)
_PHRASE_AT = _phrase_pattern(list(_KINDS_OF), after_separator=False)  # at the text's start, a window's edge

_REACH = 40 + max(len(w) for w in _KINDS_OF)  # characters scanned on each side of a candidate


def _kinds(matched: str) -> tuple[str, ...]:
    kinds = _KINDS_OF.get(matched)  # words one space apart, as written in the lists: most phrases
    return kinds if kinds is not None else _KINDS_OF[" ".join(_TOKEN.findall(matched))]


def _phrases(
    folded: str, lo: int, hi: int, last_start: int | None = None, text: str | None = None
) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, kinds) of the context phrases in ``folded[lo:hi]``, left to right: the window's
    words read from its left edge, a phrase matched from a word that starts one (longest first),
    the words it covers skipped. A word cut by the window's left edge is dropped when an
    alphanumeric character precedes it; the window's right edge cuts the last word. One regex
    scan of the window (the words themselves are never listed: most start no phrase), which
    stops at the first phrase starting after ``last_start`` (those are not wanted). With the
    original ``text``, a word of ``CAPITALS_ONLY`` counts only where it is written in capitals."""
    out = []
    pos = lo
    if lo:
        before = folded[lo - 1]
        if before.isalnum():  # a cut word is dropped: skip to the window's next word
            word = _TOKEN.match(folded, lo, hi)
            pos = word.end() if word else lo
        elif before in "_#":  # a token character before: the word at lo is the window's first all the same
            m = _PHRASE_AT.match(folded, lo, hi)
            if m and _counts(m.start(1), m.end(1), m.group(1), text):
                out.append((m.start(1), m.end(1), _kinds(m.group(1))))
                pos = m.end()
    else:  # the text's first word: no character before it opens the scan
        m = _PHRASE_AT.match(folded, 0, hi)
        if m:
            if _counts(m.start(1), m.end(1), m.group(1), text):
                out.append((m.start(1), m.end(1), _kinds(m.group(1))))
            pos = m.end()
    # from the character before ``pos``: a phrase opens on it (a token character there fails)
    for m in _PHRASE.finditer(folded, pos - 1 if pos else 0, hi):
        start, end = m.span(1)
        if last_start is not None and start > last_start:
            break
        matched = m.group(1)
        kinds = _KINDS_OF.get(matched)  # words one space apart, as written in the lists: most phrases
        if kinds is None:
            kinds = _kinds(matched)
        elif matched in CAPITALS_ONLY and not _counts(start, end, matched, text):
            continue
        out.append((start, end, kinds))
    return out


def _counts(start: int, end: int, matched: str, text: str | None) -> bool:
    """Whether a phrase matched at ``[start, end)`` counts: a word of ``CAPITALS_ONLY`` only as
    written in capitals, and not inside a heading in capitals ("THÔNG TIN KHÁCH HÀNG", "TIN NHẮN")."""
    if matched not in CAPITALS_ONLY:
        return True
    if text is None or not text[start:end].isupper():
        return False
    beside = text[max(0, start - 16) : start].split()[-1:] + text[end : end + 16].split()[:1]
    return not any(len(w) > 1 and w.isalpha() and w.isupper() for w in beside)


class ContextIndex:
    """The context words around candidates of one (folded) text: only the characters within reach
    of a candidate are read, so a text with few candidates pays for little. What lies before a
    position and after one are memoised apart, as kinds nearest first: the digit-run splitter
    asks about many spans that share their starts and ends."""

    __slots__ = ("folded", "text", "_before", "_after")

    def __init__(self, folded: str, text: str | None = None) -> None:
        self.folded, self.text = folded, text
        self._before: dict[int, list[str]] = {}
        self._after: dict[int, list[str]] = {}

    @classmethod
    def of(cls, folded: str, text: str | None = None) -> ContextIndex:
        """The index of ``folded``; with the original ``text``, capitals-only words can count."""
        return cls(folded, text)

    def _kinds_before(self, start: int) -> list[str]:
        """Kinds of the words ending at most 40 characters before ``start``, nearest first."""
        got = self._before.get(start)
        if got is None:
            window = _phrases(self.folded, max(0, start - _REACH), start, text=self.text)
            got = self._before[start] = _kinds_ending_before(window, start)
        return got

    def _kinds_after(self, end: int) -> list[str]:
        """Kinds of the words starting at most 16 characters after ``end``, nearest first."""
        got = self._after.get(end)
        if got is None:
            hi = min(len(self.folded), end + _REACH)
            got = self._after[end] = _kinds_of(_phrases(self.folded, end, hi, end + _AFTER, self.text))
        return got

    def _both_sides(self, start: int, end: int) -> None:
        """Memoise the kinds before ``start`` and after ``end`` from one scan over both windows and
        the value between them, when that scan finds what the two would: each word of the value
        holds a digit (no phrase lies in it or runs through it: no context word holds a digit;
        digit runs, plates "29-B1 234.56", passports "C1234567"), it ends on an
        ASCII digit (a word character: where the after-window starts, no phrase can, and a word
        glued after it is skipped by both), and no letter is glued to its start
        (a phrase ending there matches at the before-window's end, not in the longer scan)."""
        folded = self.folded
        if not (
            folded[end - 1] in _ASCII_DIGITS
            and (start == 0 or folded[start - 1] not in _WORD_CHARS)
            and (not _LETTER.search(folded, start, end) or not _LETTER_WORD.search(folded, start, end))
        ):
            self._kinds_before(start)
            return
        # stopping after the first phrase that starts too far after the value, as the after-window does
        window = _phrases(folded, max(0, start - _REACH), min(len(folded), end + _REACH), end + _AFTER, self.text)
        split = 0
        while split < len(window) and window[split][0] < start:
            split += 1
        self._before[start] = _kinds_ending_before(window[:split], start)
        self._after[end] = _kinds_of(window[split:])

    def far_before(self, start: int) -> list[str]:
        """Kinds of the words ending at most ``FAR_BEFORE`` characters before ``start``, nearest
        first (not memoised: asked only for the rare value that a far word may decide)."""
        near = _phrases(self.folded, max(0, start - FAR_BEFORE - _REACH + _BEFORE), start, text=self.text)
        return _distinct([k for p in reversed(near) if start - p[1] <= FAR_BEFORE for k in p[2]])

    def near(self, start: int, end: int, after: bool = True) -> list[str]:
        """Kinds of the context words within reach of ``[start, end)``, nearest first: words that end
        at most 40 characters before it, then (if ``after``) words that start at most 16 characters
        after it (a word after counts as farther than any word before)."""
        before = self._before.get(start)  # the memo read here: most calls find it (~2 µs a value less)
        if before is None:
            if after and end not in self._after:
                self._both_sides(start, end)  # memoises what lies before ``start`` in any case
                before = self._before[start]
            else:
                before = self._kinds_before(start)
        if not after:
            return before[:]
        later = self._after.get(end)
        if later is None:
            later = self._kinds_after(end)
        return before + [k for k in later if k not in before] if later else before[:]


def _kinds_ending_before(phrases: list[tuple[int, int, tuple[str, ...]]], start: int) -> list[str]:
    """Kinds of ``phrases`` (a window's, left to right) ending at most 40 characters before ``start``,
    nearest first: right to left (phrases never overlap, so their ends grow with their starts), a
    phrase's own kinds in their order."""
    kinds: list[str] = []
    for _, end, of_phrase in reversed(phrases):
        if start - end > _BEFORE:
            break
        kinds += of_phrase
    return _distinct(kinds)


def _kinds_of(phrases: list[tuple[int, int, tuple[str, ...]]]) -> list[str]:
    """Kinds of ``phrases`` left to right (nearest first after a value)."""
    kinds: list[str] = []
    for _, _, of_phrase in phrases:
        kinds += of_phrase
    return _distinct(kinds)


def _distinct(kinds: list[str]) -> list[str]:
    return list(dict.fromkeys(kinds)) if len(kinds) > 1 else kinds
