"""Personal names in English and Vietnamese, from the public structure of names.

Vietnamese: a family name from ``VN_SURNAMES`` followed by one to four capitalised words that
each have the shape of a Vietnamese syllable ("Nguyễn Văn An", "Tran Thi Lan"), or a form of
address followed by such words ("chị Lan", "anh Tuấn Anh"); not after a word that makes it a
place ("đường Lê Lợi", "quận Hai Bà Trưng") and not a province or city ("Hà Nội", "Cao Bằng").
English: a title ("Dr. Jane Okafor"), a known given name followed by capitalised family names
("Priya Raman", "James O'Neill"), or a name field ("my name is …", "cardholder: …").
No model is used: docs/guardrails-detection.md says why and what this misses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from llmgw_kernel.guardrails.findings import Finding

from .fold import fold
from .lexicon import (
    EN_GIVEN_NAMES,
    EN_INTRODUCERS,
    EN_NOT_SURNAMES,
    EN_PERSON_SLOTS,
    EN_PROPER_WORDS,
    EN_TITLES,
    NAME_FIELDS,
    VN_HONORIFICS,
    VN_MIDDLE_NAMES,
    VN_PLACE_PREFIXES,
    VN_PLACES,
    VN_SURNAMES,
    vn_syllable,
)

_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*\.?")
_GAP = re.compile(r"[ \t]{1,2}")
_HONORIFICS_ASCII = frozenset(fold(h) for h in VN_HONORIFICS)
_SURNAMES_ASCII = frozenset(fold(h) for h in VN_SURNAMES)
_CLAUSE_BREAK = frozenset(".,;!?()[]\n–—:'\"“”‘’")
_SENTENCE_START = re.compile(r"(?:^\s*|[.!?:\n\"'“‘(\[-]\s*)$")


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much, and tokens are many
class _Tok:
    text: str  # as written, without a trailing dot
    folded: str
    start: int
    end: int
    dot: bool  # written with a trailing dot ("Mr.", "Q.")

    @property
    def capitalised(self) -> bool:
        t = self.text
        return t[0].isupper() and (len(t) == 1 or not t[1:].isupper())


def _tokens(text: str, folded: str, lo: int, hi: int) -> list[_Tok]:
    out = []
    for m in _WORD.finditer(text, lo, hi):
        s, e = m.span()
        dot = text[e - 1] == "."
        e -= dot
        out.append(_Tok(text[s:e], folded[s:e], s, e, dot))
    return out


def _adjacent(text: str, a: _Tok, b: _Tok) -> bool:
    return not a.dot and _GAP.fullmatch(text, a.end, b.start) is not None


class _Before:
    """The folded phrases of one to four words that end right before each token of one run (same
    clause), shortest first, computed once per token: the Vietnamese and English rules and the
    place test all ask about the same tokens."""

    __slots__ = ("toks", "text", "memo")

    def __init__(self, toks: list[_Tok], text: str) -> None:
        self.toks, self.text = toks, text
        self.memo: dict[int, list[str]] = {}

    def __call__(self, i: int, n: int) -> list[str]:
        if i not in self.memo:
            self.memo[i] = _phrases_before(self.toks, i, self.text, 4) if i else []
        return self.memo[i][:n]


def _phrases_before(toks: list[_Tok], i: int, text: str, n: int) -> list[str]:
    out: list[str] = []
    j = i - 1
    words: list[str] = []
    while j >= 0 and len(words) < n:
        gap = text[toks[j].end : toks[j + 1].start]
        if (any(c in _CLAUSE_BREAK for c in gap) or len(gap) > 3) and not (words == [] and gap.strip() in ":-"):
            break
        words.insert(0, toks[j].folded)
        out.append(" ".join(words))
        j -= 1
    return out


def _field_before(toks: list[_Tok], i: int, text: str, before: list[str]) -> bool:
    """A name field ends right before token i: a phrase of several words ("họ và tên", "my name is"),
    or one word followed by a colon or dash ("Name: …", "Tên: …" — a bare "name" is just a word)."""
    for p in before:
        if p in NAME_FIELDS and (" " in p or any(c in text[toks[i - 1].end : toks[i].start] for c in ":-")):
            return True
    return False


def _vn_word(t: _Tok) -> bool:
    return t.capitalised and len(t.text) <= 7 and vn_syllable(t.folded)


def _is_honorific(tok_phrase: str, toks: list[_Tok], i: int, text: str) -> bool:
    """``tok_phrase`` (folded, the words before token i) is a form of address as written: in lower
    case unless it starts a sentence ("tiếng Anh", "Hai Bà Trưng" are no forms of address)."""
    if " " in tok_phrase:
        return tok_phrase in _HONORIFICS_ASCII
    prev = toks[i - 1]
    w = prev.text
    if w[0].isupper() and not _SENTENCE_START.search(text[max(0, prev.start - 3) : prev.start]):
        return False
    return w.lower() in VN_HONORIFICS or (w.isascii() and w.lower() in _HONORIFICS_ASCII)


def _is_surname(t: _Tok) -> bool:
    """A Vietnamese family name, matched as written (or folded when written without diacritics)."""
    return _is_surname_text(t.text.lower(), t.folded)


def _is_surname_text(lower: str, folded: str) -> bool:
    return lower in VN_SURNAMES if not lower.isascii() else folded in _SURNAMES_ASCII


def _vn_run(toks: list[_Tok], i: int, text: str, limit: int = 5) -> int:
    """Index one past the run of adjacent capitalised Vietnamese syllables starting at i."""
    j = i
    while j < len(toks) and j - i < limit and _vn_word(toks[j]) and (j == i or _adjacent(text, toks[j - 1], toks[j])):
        j += 1
    return j


def _not_place(toks: list[_Tok], i: int, j: int, bf: _Before) -> bool:
    if any(" ".join(t.folded for t in toks[i:k]) in VN_PLACES for k in range(i + 1, min(j, i + 4) + 1)):
        return False  # the run starts with a province or city name
    return not any(p in VN_PLACE_PREFIXES for p in bf(i, 2))


def _caps_name_end(toks: list[_Tok], i: int, text: str) -> int:
    """End of a Vietnamese name written in capitals from token i ("NGUYEN VAN A", "TRẦN THỊ BÍCH
    NGỌC", as on cards and transfers), or i: a family name, then Vietnamese syllables, three words
    at least with a common middle name among them — so "DO NOT DISTURB" and acronyms stay out."""
    if not (toks[i].text.isupper() and _is_surname_text(toks[i].text.lower(), toks[i].folded)):
        return i
    j = i + 1
    while (
        j < len(toks)
        and j - i < 5
        and toks[j].text.isupper()
        and len(toks[j].text) <= 7
        and vn_syllable(toks[j].folded)
        and _adjacent(text, toks[j - 1], toks[j])
    ):
        j += 1
    return j if j - i >= 3 and any(t.folded in VN_MIDDLE_NAMES for t in toks[i + 1 : j]) else i


def _vietnamese(toks: list[_Tok], text: str, first: int, bf: _Before) -> Iterator[tuple[int, int, float, str]]:
    i = first
    while i < len(toks):
        t = toks[i]
        caps_end = _caps_name_end(toks, i, text)
        if caps_end > i:
            yield i, caps_end, 0.85, "pii.person.vi.capitals"
            i = caps_end
            continue
        if not t.capitalised:
            i += 1
            continue
        before = bf(i, 4)
        field = _field_before(toks, i, text, before)
        honorific = field or any(_is_honorific(p, toks, i, text) for p in before)
        if _is_surname(t) and _vn_word(t):
            j = _vn_run(toks, i, text)
            if j - i >= 2 and _not_place(toks, i, j, bf):
                # a bare family name + one syllable ("Lê Lợi", "Trần Phú") is the shape of historic
                # names and the streets named after them; people are written in full or addressed
                yield i, j, 0.9 if (j - i >= 3 or honorific) else 0.45, "pii.person.vi.surname"
                i = j
                continue
        if honorific and _vn_word(t):
            j = _vn_run(toks, i, text, limit=4)
            if _not_place(toks, i, j, bf) and not (_is_surname(t) and j - i == 1):
                yield i, j, 0.85 if field else 0.8, "pii.person.vi.address_form"
                i = j
                continue
        i += 1


_VN_ONLY_LETTERS = re.compile(r"[ăâđêôơưĂÂĐÊÔƠƯ\u1ea0-\u1ef9]")


def _en_name_word(t: _Tok) -> bool:
    """A capitalised word that can be part of an English-language name: not a function word, a day
    or a month, and not written with letters only Vietnamese uses ("Theo Nghị định" is Vietnamese)."""
    if not t.capitalised or _VN_ONLY_LETTERS.search(t.text):
        return False
    return t.folded.replace("'", "").replace("’", "").replace("-", "") not in EN_NOT_SURNAMES


def _en_run(toks: list[_Tok], i: int, text: str, limit: int = 3) -> int:
    j = i
    while (
        j < len(toks) and j - i < limit and _en_name_word(toks[j]) and (j == i or _adjacent(text, toks[j - 1], toks[j]))
    ):
        j += 1
    return j


def _english(toks: list[_Tok], text: str, first: int, bf: _Before) -> Iterator[tuple[int, int, float, str]]:
    i = first
    while i < len(toks):
        t = toks[i]
        if not t.capitalised:
            i += 1
            continue
        prev = toks[i - 1] if i else None
        before = bf(i, 3)
        if prev and prev.folded in EN_TITLES and prev.capitalised and _en_name_word(t) and t.start - prev.end <= 2:
            j = _en_run(toks, i, text)
            yield i, j, 0.9, "pii.person.en.title"
            i = j
            continue
        if t.folded in EN_GIVEN_NAMES and t.capitalised and not t.dot:
            j = _en_run(toks, i, text)
            if j - i >= 2:
                yield i, j, 0.85, "pii.person.en.given_name"
                i = j
                continue
            if any(p in EN_INTRODUCERS for p in before) or _field_before(toks, i, text, before):
                yield i, i + 1, 0.75, "pii.person.en.introduced"
                i += 1
                continue
        if _en_name_word(t) and _field_before(toks, i, text, before):
            j = _en_run(toks, i, text)
            yield i, j, 0.85, "pii.person.name_field"
            i = j
            continue
        j = _slot_name_end(toks, i, text)
        if j > i:
            yield i, j, 0.6, "pii.person.en.slot"
            i = j
            continue
        i += 1


_NAME_SHAPE = re.compile(r"(?:Mc|Mac|O['’]|D['’])?[^\W\d_][^\W\d_A-Z]+(?:-[^\W\d_][^\W\d_A-Z]+)?")


def _slot_name_end(toks: list[_Tok], i: int, text: str) -> int:
    """End of a two- or three-word name in a person's slot ("a letter for Tomasz Wiśniewski", "met
    with Amaka Eze"), or i: the word before is a slot word written in lower case, every word is
    Title-case and name-shaped, none is a place, organisation or product word, and the run of
    capitals ends there (a longer run is a title or an organisation)."""
    prev = toks[i - 1] if i else None
    if prev is None or prev.folded not in EN_PERSON_SLOTS or not prev.text.islower():
        return i
    if not _GAP.fullmatch(text, prev.end, toks[i].start):
        return i
    j = _en_run(toks, i, text, limit=4)
    if not 2 <= j - i <= 3 or (j < len(toks) and toks[j].capitalised and _adjacent(text, toks[j - 1], toks[j])):
        return i
    words = toks[i:j]
    if any(w.dot or not _NAME_SHAPE.fullmatch(w.text) or w.folded in EN_PROPER_WORDS for w in words):
        return i
    return j if " ".join(w.folded for w in words) not in VN_PLACES else i


_UPPER = "".join(re.escape(chr(c)) for c in range(0x41, 0x2000) if chr(c).isupper() and chr(c).isalpha())
_CAP_WORD = rf"[{_UPPER}][^\W\d_]*(?:['’\-][^\W\d_]+)*\.?"
_CAP_RUN = re.compile(rf"{_CAP_WORD}(?:[ \t]{{1,2}}{_CAP_WORD})*")  # no look-behind: checked in code
_LOOK_BACK = 32  # characters of context read before a run of capitalised words


_TRIGGERS = frozenset(
    _SURNAMES_ASCII | EN_GIVEN_NAMES | EN_TITLES | _HONORIFICS_ASCII | EN_INTRODUCERS | NAME_FIELDS | EN_PERSON_SLOTS
)  # every rule needs one of these in the run or just before it
_STRIP = ".,:;-–\"'()"


def _may_hold_name(folded: str, start: int, end: int) -> bool:
    """Cheap test that some rule could fire on the run ``[start, end)``: one of its words, or one of
    the one to three words just before it, is a family name, given name, title, form of address,
    introducer or name field. Most runs (sentence starts, product names) stop here."""
    if any(w.strip(_STRIP) in _TRIGGERS for w in folded[start:end].split()):
        return True
    before = [w.strip(_STRIP) for w in folded[max(0, start - 32) : start].split()[-3:]]
    return any(" ".join(before[k:]) in _TRIGGERS for k in range(len(before)))


def _runs(text: str, folded: str) -> Iterator[tuple[list[_Tok], int]]:
    """For each run of capitalised words: the tokens of the few words before it and of the run, and
    the index of the run's first token. Every rule starts at a capitalised word, so the rest of the
    text is never tokenised."""
    for m in _CAP_RUN.finditer(text):
        s = m.start()
        if s and (
            text[s - 1].isalnum() or text[s - 1] in "_-" or (text[s - 1] in "'’" and text[s - 2 : s - 1].isalnum())
        ):
            continue  # inside a word ("McDonald", "O'Neill", "e-Mail")
        if not _may_hold_name(folded, s, m.end()):
            continue
        toks = _tokens(text, folded, max(0, m.start() - _LOOK_BACK), m.end())
        yield toks, next(i for i, t in enumerate(toks) if t.start >= m.start())


def find_names(text: str, folded: str, languages: Sequence[str]) -> Iterator[Finding]:
    """PERSON findings: Vietnamese rules when "vi" is among ``languages`` (they also find Vietnamese
    names in English text), English rules when "en" is."""
    for toks, first in _runs(text, folded):
        before = _Before(toks, text)
        if "vi" in languages:
            for i, j, score, rule in _vietnamese(toks, text, first, before):
                yield Finding("PERSON", toks[i].start, toks[j - 1].end, score, rule)
        if "en" in languages:
            for i, j, score, rule in _english(toks, text, first, before):
                yield Finding("PERSON", toks[i].start, toks[j - 1].end, score, rule)
