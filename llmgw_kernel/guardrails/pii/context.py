"""Context words: what the words just before (or just after) a candidate say it is.

A 12-digit run is a citizen ID after ``CCCD`` and an order number after ``mã đơn``; the digits
alone cannot tell. Each *kind* below is a short list of words (English and Vietnamese, written
without diacritics because they are matched on the folded text, see ``fold.py``). The index
finds them all in one pass and answers, for a span, which kinds are near it, nearest first.
The ``negative`` kind names things that look like identifiers but are not personal data.
"""

from __future__ import annotations

import re

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
        "tax": "mst|ma so thue|ma thue|ma so doanh nghiep|tax code|tax id|tax number|tax identification|"
        "tax registration|vat number|vat code",
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
        "so hoa don|van don|ma van don|tracking|tracking number|isbn|ean|upc|sku|version|phien ban|build|release|"
        "nghi dinh|quyet dinh|thong tu|cong van|so hieu|luat|hotline|tong dai|cskh|ma giao dich|giao dich|"
        "transaction|ref|reference|ma san pham|model|serial|ticket|booking|ma dat cho|otp|ma xac nhan|"
        "ma xac thuc|verification code|code|ma khuyen mai|coupon|voucher|page|shipment|lo hang|patent|ho so|"
        "ma ho so|so luong|quantity|gia ban|gia tien|price|total|tong cong|tong tien|vnd|usd|routing number",
    }.items()
}

_BEFORE = 40
_AFTER = 16
_KINDS_OF: dict[str, tuple[str, ...]] = {}
for _kind, _words in CONTEXT_WORDS.items():
    for _w in _words:
        _KINDS_OF[_w] = (*_KINDS_OF.get(_w, ()), _kind)


_TOKEN = re.compile(r"[a-z0-9_#]+")


_BY_FIRST: dict[str, list[tuple[str, ...]]] = {}
for _w in _KINDS_OF:
    _BY_FIRST.setdefault(_w.split()[0], []).append(tuple(_w.split()))
for _phrases_of in _BY_FIRST.values():
    _phrases_of.sort(key=len, reverse=True)  # longest first: "so tai khoan" before "so"


_REACH = 40 + max(len(w) for w in _KINDS_OF)  # characters scanned on each side of a candidate


def _phrases(folded: str, lo: int, hi: int) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, kinds) of the context phrases in ``folded[lo:hi]``, left to right: one pass over
    the window's words, a phrase tried only from a word that starts one (longest first). A word cut
    by the window's left edge is dropped."""
    toks = [(m.start(), m.end()) for m in _TOKEN.finditer(folded, lo, hi)]
    if toks and lo and toks[0][0] == lo and folded[lo - 1].isalnum():
        toks = toks[1:]
    words = [folded[a:b] for a, b in toks]
    out = []
    i = 0
    while i < len(words):
        for phrase in _BY_FIRST.get(words[i], ()):
            n = len(phrase)
            if tuple(words[i : i + n]) == phrase:
                out.append((toks[i][0], toks[i + n - 1][1], _KINDS_OF[" ".join(phrase)]))
                i += n - 1
                break
        i += 1
    return out


class ContextIndex:
    """The context words around candidates of one (folded) text: only the characters within reach
    of a candidate are read, so a text with few candidates pays for little. What lies before a
    position and after one are memoised apart: the digit-run splitter asks about many spans that
    share their starts and ends."""

    __slots__ = ("folded", "_before", "_after")

    def __init__(self, folded: str) -> None:
        self.folded = folded
        self._before: dict[int, list[tuple[int, str]]] = {}
        self._after: dict[int, list[tuple[int, str]]] = {}

    @classmethod
    def of(cls, folded: str) -> ContextIndex:
        return cls(folded)

    def near(self, start: int, end: int, after: bool = True) -> list[str]:
        """Kinds of the context words within reach of ``[start, end)``, nearest first: words that end
        at most 40 characters before it, then (if ``after``) words that start at most 16 characters after it."""
        near = self._before.get(start)
        if near is None:
            near = self._before[start] = [
                (start - e, k)
                for _, e, kinds in _phrases(self.folded, max(0, start - _REACH), start)
                if start - e <= _BEFORE
                for k in kinds
            ]
        if after:
            later = self._after.get(end)
            if later is None:
                later = self._after[end] = [
                    (s - end + _BEFORE, k)  # after counts as farther than any word before
                    for s, _, kinds in _phrases(self.folded, end, min(len(self.folded), end + _REACH))
                    if s - end <= _AFTER
                    for k in kinds
                ]
            near = near + later
        seen: dict[str, None] = {}
        for _, kind in sorted(near, key=lambda d: d[0]):
            seen.setdefault(kind)
        return list(seen)
