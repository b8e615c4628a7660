"""The PII detector's fast paths answer exactly what the plain computations they replace answer.

Each speed-up of the format checks (``benchmarks/guardrails.py``) skips work that cannot change a
finding: a digit-run scan that drops short runs inside the regex, known keys tried only where a
prefix occurs, one classification per repeated value and context, the context words' kinds
gathered without intermediate lists. Here each is compared with the plain computation on texts
written to reach their edges (runs of every length around parentheses, keys nested in a PEM
block, a value repeated under different words).
"""

from __future__ import annotations

import re

import pytest

from llmgw_kernel.guardrails.pii import numbers, pii_detector, shapes
from llmgw_kernel.guardrails.pii.context import (
    _AFTER,
    _BEFORE,
    _KINDS_OF,
    _REACH,
    _SEP,
    _TOKEN,
    _TOKEN_CHARS,
    CAPITALS_ONLY,
    ContextIndex,
    _counts,
    _kinds,
    _phrases,
    _trie_regex,
)
from llmgw_kernel.guardrails.pii.fold import fold

# the digit-run scan before the look-ahead: every run, short or long
_PLAIN_CORE = re.compile(r"\d++(?:(?:[ .\-]|\s-\s)\d++)*+")

TEXTS = [
    "Gọi (028) 3822 9999 hoặc (0) 912 345 678, +84 (0) 912 345 678, (+84) 35 123 4567.",
    "1 2 3 4 5 6 7, 12 34 56 7, 123-456 - 7890, 12.500.000đ, 15/03/2024, 2024-03-18, 1.2.3.4.5.6.7",
    "(1)(22)(333)(4444)(55555) (12 3) 456, (9 9 9) 12, (12-3)4567890 (1234) 5 6 7 8",
    "năm 2024 có 365 ngày\t12\t-\t345 6789 và 12  34 56 78 9 (hai dấu cách), 1234567 12345678901234567890",
    "SĐT: 0912.345.678 / 0912-345-678 / 0912 345 678; MST 0100109106-001; CCCD 079192004512",
    "biển số 29-B1 234.56, xe 51F-123.45 (bks 30A 12345), hộ chiếu C1234567 và B12345678, so tk 0123456",
    "plate 29-SO 1234 và 29-tk 12345, passport:C1234567tk 0912345678, 51G-sdt 123.45 sdt 0912345678",
]
KEY_TEXTS = [
    "sk-proj-Zx81Qp0LmN4vR7tY2wB9cK5dHs6Jf3Ug and AKIAIOSFODNN7EXAMPLE, ghp_" + "a1B2" * 9,
    "key=sk_live_4eC39HqLyjWDarjtT1zdp7dc, rk_test_" + "Zz9" * 8 + " xoxb-1234567890-abc hf_" + "q" * 30,
    "-----BEGIN RSA PRIVATE KEY-----\nMIIE sk-" + "A1b2" * 6 + " AKIA" + "B" * 16 + "\n-----END RSA PRIVATE KEY----- "
    "then AIza" + "x" * 35 + " glpat-" + "y" * 20 + " SG." + "a" * 16 + "." + "b" * 16,
    "eyJhbGciOiJI.eyJzdWIiOiIx.SflKxwRJSMeKK ghp_" + "c" * 30 + "ASIA" + "D" * 16 + " _live_x sk_live_",
    "xsk-" + "a" * 25 + " -sk-" + "b" * 25 + " github_pat_" + "Q" * 22 + " hf_live_" + "r" * 20,
]


def _plain_runs(text: str) -> list[tuple[int, int]]:
    """``numbers._runs`` over the plain scan, kept where the detector would look at them: 7
    characters or more."""
    saved = numbers._CORE
    numbers._CORE = _PLAIN_CORE
    try:
        return [(a, b) for a, b in numbers._runs(text) if b - a >= 7]
    finally:
        numbers._CORE = saved


@pytest.mark.parametrize("text", TEXTS)
def test_the_run_scan_finds_every_run_of_seven_characters_or_an_area_code(text: str) -> None:
    got = [(a, b) for a, b in numbers._runs(text) if b - a >= 7]
    assert got == _plain_runs(text)
    assert got  # each text holds runs the detector looks at


def test_the_run_scan_keeps_the_area_code_before_a_parenthesis() -> None:
    text = "(028) 3822 9999"
    assert list(numbers._runs(text)) == [(0, len(text))]


@pytest.mark.parametrize("text", KEY_TEXTS)
def test_known_keys_tried_at_their_prefixes_are_the_keys_a_scan_finds(text: str) -> None:
    assert list(shapes._known_keys(text)) == [m.span() for m in shapes._KNOWN_KEYS.finditer(text)]
    assert list(shapes._known_keys(text))


def test_a_repeated_value_is_classified_by_its_own_context_words() -> None:
    """One classification per value *and* words around it: the same digits after another word
    are classified again."""
    text = "CCCD 079192004512. Mã đơn hàng 079192004512. CCCD 079192004512."
    found = [(f.type, f.start) for f in pii_detector().find(text)]
    assert found == [("VN_CCCD", 5), ("VN_CCCD", 50)]


def _plain_near(folded: str, text: str, start: int, end: int, after: bool) -> list[str]:
    """The kinds near ``[start, end)`` as ``ContextIndex.near`` defines them, from the windows'
    phrases with nothing skipped."""
    before = [p for p in _phrases(folded, max(0, start - _REACH), start, text=text) if start - p[1] <= _BEFORE]
    kinds = list(dict.fromkeys(k for p in reversed(before) for k in p[2]))
    if after:
        later = _phrases(folded, end, min(len(folded), end + _REACH), end + _AFTER, text)
        kinds += [k for k in dict.fromkeys(k for p in later for k in p[2]) if k not in kinds]
    return kinds


def test_context_kinds_are_those_of_the_windows_phrases() -> None:
    text = (
        "Số tài khoản / STK: 0123 456 789, hotline 1900 6868; TIN: 0100109106 tin nhắn 0912 345 678. "
        "MST của Công ty Cổ phần ABC là 0100109106, so dien thoai  (zalo)  0912345678 ck vcb 190355678890 "
        "#sdt 0912345678 _cccd 079192004512 order 12345678 passport C1234567"
    )
    folded = fold(text)
    ctx = ContextIndex.of(folded, text)
    for start in range(0, len(text), 3):
        for end in (e for e in (start + 7, start + 12) if e <= len(text)):
            for after in (True, False):
                assert ctx.near(start, end, after) == _plain_near(folded, text, start, end, after), (start, end)


@pytest.mark.parametrize("text", TEXTS + [t.replace(" ", "") for t in TEXTS] + [t.upper() for t in TEXTS])
def test_context_kinds_around_a_value_from_one_scan_are_those_of_its_two_windows(text: str) -> None:
    """A digit run's words before and after it come from one scan over both windows and the run."""
    folded = fold(text)
    runs = [(a, b) for a, b in numbers._runs(text) if b - a >= 7]
    runs += [m.span() for m in shapes._PLATE.finditer(text)] + [m.span() for m in shapes._PASSPORT.finditer(text)]
    for a, b in runs + [(a + 1, b) for a, b in runs] + [(a, b - 1) for a, b in runs]:
        assert ContextIndex.of(folded, text).near(a, b) == _plain_near(folded, text, a, b, True), (a, b)


def test_a_value_ending_on_another_scripts_digit_has_its_two_windows() -> None:
    """An Arabic-Indic eight ("٨") is a digit but no word character: a word glued after it starts a
    phrase for the scan over both windows, while the after-window skips it as a cut word."""
    text = "số ٠٩١٢٣٤٥٦٧٨sdt và 0912"
    folded = fold(text)
    a, b = text.index("٠"), text.index("s", 3)
    assert ContextIndex.of(folded, text).near(a, b) == _plain_near(folded, text, a, b, True)


def test_a_finding_built_by_its_fast_constructor_is_the_frozen_dataclass_it_was() -> None:
    import dataclasses

    from llmgw_kernel.guardrails.findings import Finding

    f = Finding("PHONE_NUMBER", 4, 16, 0.95, "pii.phone.vn")
    assert f == Finding(type="PHONE_NUMBER", start=4, end=16, score=0.95, rule="pii.phone.vn")
    assert hash(f) == hash(Finding("PHONE_NUMBER", 4, 16, 0.95, "pii.phone.vn"))
    assert (f.type, f.start, f.end, f.score, f.rule) == dataclasses.astuple(f)
    assert repr(f) == "Finding(type='PHONE_NUMBER', start=4, end=16, score=0.95, rule='pii.phone.vn')"
    assert dataclasses.replace(f, start=5).start == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.start = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        Finding("PHONE_NUMBER", 4, 16, 0.95)  # type: ignore[call-arg]


def _lookbehind_pattern(lookbehind: bool) -> re.Pattern[str]:
    """The phrase regex as a plain scan writes it: a look-behind for the word start."""
    trie: dict = {}
    for phrase in _KINDS_OF:
        node = trie
        for key in _SEP.join(phrase.split()) + "\x01":
            node = node.setdefault(key, {})
    return re.compile((f"(?<![{_TOKEN_CHARS}])" if lookbehind else "") + _trie_regex(trie))


_LOOKBEHIND, _AT = _lookbehind_pattern(True), _lookbehind_pattern(False)


def _plain_phrases(folded: str, lo: int, hi: int, last_start: int | None, text: str) -> list:
    """A window's phrases by a scan that tries every position of the window behind a look-behind."""
    out, pos = [], lo
    if lo and folded[lo - 1].isalnum():
        word = _TOKEN.match(folded, lo, hi)
        pos = word.end() if word else lo
    elif lo and folded[lo - 1] in "_#":
        m = _AT.match(folded, lo, hi)
        if m and _counts(m.start(), m.end(), m.group(), text):
            out.append((m.start(), m.end(), _kinds(m.group())))
            pos = m.end()
    for m in _LOOKBEHIND.finditer(folded, pos, hi):
        if last_start is not None and m.start() > last_start:
            break
        if m.group() not in CAPITALS_ONLY or _counts(m.start(), m.end(), m.group(), text):
            out.append((m.start(), m.end(), _kinds(m.group())))
    return out


@pytest.mark.parametrize(
    "text",
    [
        "sdt 0912 345 678, so tai khoan: 0123456789 (vietcombank), MST/TIN 0100109106; CCCD#079192004512",
        "TIN 0100109106 là mã số thuế, tin nhắn 0912345678, THÔNG TIN KHÁCH HÀNG: so   dien\nthoai 0912",
        "_sdt 0912, #mst 0100, αsdt 0912, x.sdt 0912, M.S.T: 0100109106, c.c.c.d 0791, hoa don so 12345",
        "Số điện thoại:0912345678/Zalo:0912 345 678 — STK:1903.5567.8890 tại Ngân hàng TMCP Kỹ Thương",
    ],
)
def test_the_phrase_scan_opening_on_a_separator_finds_what_a_look_behind_finds(text: str) -> None:
    folded = fold(text)
    n = len(folded)
    for lo in range(n):
        for hi in {min(n, lo + w) for w in (1, 7, 30, _REACH, 2 * _REACH)}:
            for last_start in (None, lo + _AFTER):
                got = _phrases(folded, lo, hi, last_start, text)
                assert got == _plain_phrases(folded, lo, hi, last_start, text), (lo, hi, last_start)
