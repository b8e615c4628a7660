"""IBANs and Vietnamese tax codes (MST) the way people write them, and the look-alikes that must
not fire as either.

Every value is synthetic: IBANs are built here for each country of the SWIFT registry that
python-stdnum ships (its BBAN structure filled from a hash, check digits computed), tax codes
are computed with python-stdnum's ``vn.mst`` check digit. None comes from any corpus.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from stdnum import iban, numdb
from stdnum.vn import mst

from llmgw_kernel.guardrails.pii import pii_detector
from llmgw_kernel.guardrails.pii.shapes import IBAN_LENGTHS

DETECT = pii_detector()
_TYPES = ("IBAN_CODE", "VN_TAX_CODE")


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in DETECT.find(text)]


def iban_types(text: str) -> list[str]:
    return [f.type for f in DETECT.find(text) if f.type in _TYPES]


def _fill(structure: str, seed: str) -> str:
    """A BBAN of ``structure`` ("4!a6!n8!n") whose characters come from a hash of ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest() * 4
    out, k = [], 0
    for count, kind in re.findall(r"(\d+)!([nac])", structure):
        for _ in range(int(count)):
            b = digest[k]
            k += 1
            out.append(str(b % 10) if kind == "n" or (kind == "c" and b % 3) else "ABCDEFGHJKLMNPRSTUVWXYZ"[b % 23])
    return "".join(out)


def _valid_iban(cc: str, structure: str) -> str | None:
    """A valid IBAN of country ``cc`` (national checks included), or None if 3,000 seeds give none."""
    for seed in range(3000):
        bban = _fill(structure, f"{cc}{seed}")
        number = cc + iban.calc_check_digits(cc + "00" + bban) + bban
        if iban.is_valid(number):
            return number
    return None


REGISTRY = {cc: props["bban"] for _, cc, _, props, _ in numdb.get("iban").prefixes if props.get("bban")}
IBANS = {cc: v for cc, s in sorted(REGISTRY.items()) if (v := _valid_iban(cc, s))}


def grouped(value: str, sep: str = " ") -> str:
    return sep.join(value[i : i + 4] for i in range(0, len(value), 4))


def test_iban_lengths_come_from_the_registry() -> None:
    assert IBAN_LENGTHS["DE"] == 22 and IBAN_LENGTHS["FR"] == 27 and IBAN_LENGTHS["NO"] == 15
    assert IBAN_LENGTHS["MT"] == 31 and set(IBAN_LENGTHS) == set(REGISTRY)
    assert len(IBANS) >= 0.9 * len(REGISTRY)  # the generator found valid numbers for nearly every country


@pytest.mark.parametrize("cc", sorted(IBANS))
def test_every_registry_country_in_the_usual_writings(cc: str) -> None:
    v = IBANS[cc]
    writings = [
        f"IBAN: {grouped(v)}.",
        f"please transfer to {v}, thanks",
        f"iban {v.lower()}",
        f"Konto ({grouped(v, '-')})",
        f"số tài khoản {grouped(v, chr(0xA0))} nhé",
        f"IBAN {grouped(v)[:14]}\n{grouped(v)[15:]} ok",
    ]
    for text in writings:
        got = [(t, s) for t, s in found(text) if t == "IBAN_CODE"]
        assert len(got) == 1, (text, found(text))
        assert re.sub(r"[^A-Za-z0-9]", "", got[0][1]).upper() == v, (text, got)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Mi IBAN es ES91 2100 0418 4502 0005 1332, gracias.", "ES91 2100 0418 4502 0005 1332"),
        ("Mon IBAN : FR14 2004 1010 0505 0001 3M02 606 (compte courant)", "FR14 2004 1010 0505 0001 3M02 606"),
        ("Bitte überweisen Sie auf DE89-3704-0044-0532-0130-00!", "DE89-3704-0044-0532-0130-00"),
        ("Il mio IBAN è IT60 X054 2811 1010 0000 0123 456;", "IT60 X054 2811 1010 0000 0123 456"),
        ("Rekeningnummer NL91.ABNA.0417.1643.00?", "NL91.ABNA.0417.1643.00"),
        (
            "Tài khoản (IBAN): GB82\u202fWEST\u202f1234\u202f5698\u202f7654\u202f32",
            "GB82\u202fWEST\u202f1234\u202f5698\u202f7654\u202f32",
        ),
        ("IBAN:DE89370400440532013000", "DE89370400440532013000"),
        ("pay gb82 west 1234 5698 7654 32 today", "gb82 west 1234 5698 7654 32"),
        ("IBAN GB82 WEST 1234\r\n  5698 7654 32", "GB82 WEST 1234\r\n  5698 7654 32"),
        ("(BE71 0961 2345 6769)", "BE71 0961 2345 6769"),
        ("IBAN: DE89  3704  0044  0532  0130  00 (copied from the PDF)", "DE89  3704  0044  0532  0130  00"),
        ("IBAN DE89 - 3704 - 0044 - 0532 - 0130 - 00", "DE89 - 3704 - 0044 - 0532 - 0130 - 00"),
    ],
)
def test_iban_in_sentences_of_several_languages(text: str, value: str) -> None:
    assert found(text) == [("IBAN_CODE", value)]


@pytest.mark.parametrize(
    "text",
    [
        "IBAN DE89 3704 0044 0532 0130 01",  # mod 97 fails
        "IBAN GB82 WEST 1234 5698 7654 33",
        "iban de89370400440532013001",
        "GB82 WEST 1234 5698 7654 3",  # one character short
        "DE89 3704 0044 0532     0130 00",  # a gap of five spaces is two values, not one
        "DE89 3704 0044\n\n0532 0130 00",  # so is a blank line
        "commit de89370400440532013000aa7f",  # glued into a longer token
        "xDE89370400440532013000",
        "\u0131T60 X054 2811 1010 0000 0123 456",  # a dotless ı upper-cases to I: no country code
        "Mã đơn hàng DH20240512-0001, giao ngày 12/05/2024",
        "Giá chỉ 1.299.000đ, hotline 1900 1234",
        "ISBN 978-3-16-148410-0 và EAN 8935235226272",
        "số 4539 1488 0343 6468 không qua Luhn",
        "version 12.4.0.2210, build 20240512",
        "Gọi 0912 345 678 hoặc +84 912 345 678",
        "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "Order DE12 3456 7890 1234 5678 90 shipped",
    ],
)
def test_look_alikes_are_neither_iban_nor_tax_code(text: str) -> None:
    assert iban_types(text) == []


def _mst(first9: str) -> str:
    return first9 + mst.calc_check_digit(first9)


TAX = _mst("010010910")  # 0100109106
TAX2 = _mst("031234567")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (f"MST: {TAX}", TAX),
        (f"Mã số thuế: {TAX[:4]} {TAX[4:7]} {TAX[7:]}", f"{TAX[:4]} {TAX[4:7]} {TAX[7:]}"),
        (f"ma so thue {TAX[:4]}.{TAX[4:7]}.{TAX[7:]}", f"{TAX[:4]}.{TAX[4:7]}.{TAX[7:]}"),
        (f"Tax code {TAX}-013", f"{TAX}-013"),
        (f"TIN: {TAX2}", TAX2),
        (f"Taxpayer Identification Number (TIN): {TAX2}", TAX2),
        (f"MST/TIN {TAX2}", TAX2),
        (f"MSDN {TAX2}", TAX2),
        (f"Mã số doanh nghiệp: {TAX2}", TAX2),
        (f"ma so doanh nghiep {TAX2}", TAX2),
        (f"Công ty TNHH An Phát (MST {TAX2})", TAX2),
        (f"Mã số thuế của Công ty Cổ phần Đầu tư Xây dựng Hòa Bình Miền Nam là {TAX}.", TAX),
        (f"chi nhánh Đà Nẵng {TAX}-002 đã đăng ký", f"{TAX}-002"),  # the branch shape alone
        ("MST cá nhân: 079204001234", "079204001234"),  # a personal tax code is the CCCD since 2025
    ],
)
def test_tax_codes_as_written(text: str, value: str) -> None:
    assert found(text) == [("VN_TAX_CODE", value)]


def test_a_twelve_digit_value_is_one_type_named_by_the_nearest_word() -> None:
    assert found("CCCD 079204001234") == [("VN_CCCD", "079204001234")]
    assert found("mã số thuế 079204001234") == [("VN_TAX_CODE", "079204001234")]


@pytest.mark.parametrize(
    "text",
    [
        f"tin nhắn {TAX2} nhé",  # "tin" (a message) is not TIN
        f"THÔNG TIN KHÁCH HÀNG: {TAX2}",  # nor is the "TIN" of a heading in capitals
        f"Mã đơn hàng {TAX}-013",  # an order word vetoes the branch shape
        f"MST {TAX[:9]}{(int(TAX[9]) + 1) % 10}",  # wrong check digit
        f"{TAX2} là mã vận đơn",
        "Giá 1.299.000đ, ngày 05.12.2025",
        "MST: 999204001234",  # 12 digits without a province code
    ],
)
def test_tax_code_look_alikes(text: str) -> None:
    assert [t for t, _ in found(text) if t == "VN_TAX_CODE"] == []


@pytest.mark.parametrize("cc", ["ES", "BE"])  # the countries whose national check python-stdnum applies
def test_an_iban_with_a_slip_in_its_national_check_digits_is_still_an_iban(cc: str) -> None:
    """Mod 97 and the BBAN structure decide; a national check (Spain's CCC, Belgium's mod 97 of
    the account) that fails — a typo, a generator that skipped it — still leaves an
    account number that must not reach a provider. A number failing mod 97 still never fires."""
    for seed in range(3000):
        bban = _fill(REGISTRY[cc], f"slip-{cc}{seed}")
        number = cc + iban.calc_check_digits(cc + "00" + bban) + bban
        if not iban.is_valid(number):  # mod 97 holds, the national check does not
            break
    else:
        raise AssertionError(f"every {cc} BBAN drawn passed its national check")
    assert iban_types(f"Transfer to IBAN {grouped(number)} please.") == ["IBAN_CODE"]
    broken = number[:2] + f"{(int(number[2:4]) + 1) % 100:02d}" + number[4:]
    assert iban_types(f"Transfer to IBAN {grouped(broken)} please.") == []


@pytest.mark.parametrize("cc", sorted(IBANS))
def test_a_country_code_written_apart_from_its_check_digits(cc: str) -> None:
    """The country code one space apart from the check digits: "DE 89 3704 …"."""
    v = IBANS[cc]
    for text in (f"IBAN: {v[:2]} {v[2:4]} {grouped(v[4:])}.", f"Konto {v[:2]}\u00a0{v[2:4]} {v[4:]} bitte"):
        got = [(t, s) for t, s in found(text) if t == "IBAN_CODE"]
        assert len(got) == 1 and re.sub(r"[^A-Za-z0-9]", "", got[0][1]) == v, (text, found(text))


def test_a_country_code_apart_counts_only_in_capitals() -> None:
    """In lower case a word apart from two digits is prose ("at 12", "no 34", "de 89")."""
    assert iban_types("iban de 89 3704 0044 0532 0130 00") == []
    assert iban_types("IBAN DE 89 3704 0044 0532 0130 01") == []  # mod 97 fails


def _mobile_passing_the_mst_check(prefix: str) -> str:
    """A Vietnamese mobile number (``prefix`` is a carrier's) whose digits pass the MST check digit,
    as one mobile number in eleven does."""
    for k in range(1234567, 1235567):
        v = f"{prefix}{k:07d}"
        if mst.is_valid(v):
            return v
    raise AssertionError(prefix)


MOBILE_MST = _mobile_passing_the_mst_check("090")


@pytest.mark.parametrize(
    "text",
    [
        f"MST 0100109106, SĐT {MOBILE_MST[:3]}-{MOBILE_MST[3:6]}-{MOBILE_MST[6:]}",
        f"Mã số thuế: {MOBILE_MST[:3]}-{MOBILE_MST[3:6]}-{MOBILE_MST[6:]}",  # a tax code is never grouped
        f"MST: {MOBILE_MST[:4]} {MOBILE_MST[4:7]} {MOBILE_MST[7:]}",
        f"Mã số thuế công ty, số điện thoại {MOBILE_MST}",  # the phone word is the nearer
    ],
)
def test_a_mobile_number_passing_the_tax_check_digit_is_a_phone(text: str) -> None:
    digits = [re.sub(r"\D", "", s) for t, s in found(text) if t == "PHONE_NUMBER"]
    assert MOBILE_MST in digits and ("VN_TAX_CODE", MOBILE_MST) not in found(text), found(text)


def test_the_same_digits_as_one_block_after_a_tax_word_are_a_tax_code() -> None:
    assert found(f"MST {MOBILE_MST}") == [("VN_TAX_CODE", MOBILE_MST)]
    assert found(f"Mã số thuế: {MOBILE_MST}-001") == [("VN_TAX_CODE", f"{MOBILE_MST}-001")]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        (f"M.S.T: {TAX}", "VN_TAX_CODE", TAX),
        (f"Công ty TNHH An Phát, M.S.T. {TAX2}", "VN_TAX_CODE", TAX2),
        (f"m.s.t {TAX}-002", "VN_TAX_CODE", f"{TAX}-002"),
        ("C.C.C.D số 079204001234", "VN_CCCD", "079204001234"),
        ("S.T.K: 19035567889", "VN_BANK_ACCOUNT", "19035567889"),
    ],
)
def test_an_abbreviation_written_with_dots(text: str, kind: str, value: str) -> None:
    """Vietnamese initialisms are also written with a dot between their letters (M.S.T for mã số
    thuế); spaced out ("M. S. T.") they are as likely a person's initials and do not count."""
    assert found(text) == [(kind, value)]
    assert [t for t, _ in found(f"M. S. T. {TAX}") if t == "VN_TAX_CODE"] == []


def test_a_branch_code_is_ten_digits_a_dash_and_three() -> None:
    """The branch suffix follows a tax code written as one; a grouped phone number and three digits
    after it are not a branch's tax code."""
    assert found(f"MST {TAX} - 001") == [("VN_TAX_CODE", f"{TAX} - 001")]
    grouped_mobile = f"{MOBILE_MST[:3]}-{MOBILE_MST[3:6]}-{MOBILE_MST[6:]}"
    assert ("VN_TAX_CODE", f"{grouped_mobile}-001") not in found(f"MST {grouped_mobile}-001")
