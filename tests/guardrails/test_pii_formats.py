"""The PII detector on validated formats: positives in both languages, with and without
diacritics and with adversarial separators, and the hard negatives that must not fire.

Every value here is synthetic and written for these tests (checksums computed by hand or with
python-stdnum); none comes from the development corpus.
"""

from __future__ import annotations

import pytest

from llmgw_kernel.guardrails.findings import Finding
from llmgw_kernel.guardrails.pii import PII_TYPES, pii_detector

DETECT = pii_detector()


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in DETECT.find(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Vietnamese mobiles: every carrier prefix family, separators, +84 / 84 forms, no diacritics
        ("Số điện thoại của em là 0983 456 721 nhé", [("PHONE_NUMBER", "0983 456 721")]),
        ("so dien thoai cua em la 0983.456.721 nhe", [("PHONE_NUMBER", "0983.456.721")]),
        ("goi minh qua zalo 0357-812-904", [("PHONE_NUMBER", "0357-812-904")]),
        ("liên hệ +84 776 215 380 ạ", [("PHONE_NUMBER", "+84 776 215 380")]),
        ("sđt:0582139047", [("PHONE_NUMBER", "0582139047")]),
        ("Gọi 84869123450 giúp tôi", [("PHONE_NUMBER", "84869123450")]),
        ("Văn phòng: (028) 3822 9145", [("PHONE_NUMBER", "(028) 3822 9145")]),
        # international numbers
        ("Call me at +44 20 7946 0321 tomorrow", [("PHONE_NUMBER", "+44 20 7946 0321")]),
        ("my phone is (212) 736-4410", [("PHONE_NUMBER", "(212) 736-4410")]),
        ("Reach me on +65 6123 4567.", [("PHONE_NUMBER", "+65 6123 4567")]),
        ("(0161) 496 0000 is the Manchester line", [("PHONE_NUMBER", "(0161) 496 0000")]),  # trunk-0 shape
        # two numbers separated only by a space are two findings
        ("SĐT 0912345678 0987654321", [("PHONE_NUMBER", "0912345678"), ("PHONE_NUMBER", "0987654321")]),
        # regression: a type word *after* a valid mobile names the next value, not this one (the
        # issue's own sentence lost its phone to the CCCD word that follows it)
        (
            "Xin chào, số của tôi là 0912 345 678 và CCCD 001203004567, cảm ơn…",
            [("PHONE_NUMBER", "0912 345 678"), ("VN_CCCD", "001203004567")],
        ),
        # e-mails
        ("mail: tran.thi.b+work@cong-ty.com.vn.", [("EMAIL_ADDRESS", "tran.thi.b+work@cong-ty.com.vn")]),
        ("Send it to J.Smith@Example.org", [("EMAIL_ADDRESS", "J.Smith@Example.org")]),
        # cards: Luhn-valid with each usual separator
        ("Visa 4539 1488 0343 6467 exp 09/28", [("CREDIT_CARD", "4539 1488 0343 6467")]),
        ("thẻ 5425-2334-3010-9903", [("CREDIT_CARD", "5425-2334-3010-9903")]),
        ("amex 371449635398431", [("CREDIT_CARD", "371449635398431")]),
        # citizen IDs after their context words, with and without diacritics
        ("Số CCCD: 079204001234", [("VN_CCCD", "079204001234")]),
        ("so can cuoc cong dan 001 098 765 432", [("VN_CCCD", "001 098 765 432")]),
        ("CMND số 025 123 456", [("VN_CMND", "025 123 456")]),
        ("CCCD/CMND: 079204001234", [("VN_CCCD", "079204001234")]),
        ("số CMND cũ (12 số) 036092001234", [("VN_CMND", "036092001234")]),
        ("chung minh nhan dan 271234567", [("VN_CMND", "271234567")]),
        ("hộ chiếu B7654321", [("VN_PASSPORT", "B7654321")]),
        # tax codes: valid check digit, with a branch suffix
        ("Mã số thuế 0100109106", [("VN_TAX_CODE", "0100109106")]),
        ("mst: 0100109106-013", [("VN_TAX_CODE", "0100109106-013")]),
        # bank accounts need their context word
        ("STK 1903 5567 8890 12 Techcombank", [("VN_BANK_ACCOUNT", "1903 5567 8890 12")]),
        ("chuyen khoan vao so tai khoan 0071000123456", [("VN_BANK_ACCOUNT", "0071000123456")]),
        # IBAN, IP, SSN, keys, plates
        ("IBAN GB82 WEST 1234 5698 7654 32 please", [("IBAN_CODE", "GB82 WEST 1234 5698 7654 32")]),
        (
            "server at 10.24.7.199, fallback 2001:db8::8a2e:370:7334",
            [
                ("IP_ADDRESS", "10.24.7.199"),
                ("IP_ADDRESS", "2001:db8::8a2e:370:7334"),
            ],
        ),
        ("SSN 536-22-8145", [("US_SSN", "536-22-8145")]),
        ("use AKIAIOSFODNN7EXAMPLE as the id", [("API_KEY", "AKIAIOSFODNN7EXAMPLE")]),
        ("token: ghp_9fK2mQ7xLr4Tz8Wb1Vn6Yc3Hs5Dj0Pa2Ge7U", [("API_KEY", "ghp_9fK2mQ7xLr4Tz8Wb1Vn6Yc3Hs5Dj0Pa2Ge7U")]),
        ("api key = Zx81Qp0LmN4vR7tY2wB9cK5d", [("API_KEY", "Zx81Qp0LmN4vR7tY2wB9cK5d")]),
        # a bank's name near a valid mobile number leaves it a phone number; an account word does not
        (
            "đổi SĐT đăng ký ngân hàng từ 0899 111 333 sang 0326.778.901",
            [
                ("PHONE_NUMBER", "0899 111 333"),
                ("PHONE_NUMBER", "0326.778.901"),
            ],
        ),
        ("Vietcombank, số tài khoản 0912345678", [("VN_BANK_ACCOUNT", "0912345678")]),
        # the (+84) form and a national number only a phone word vouches for
        ("SĐT (+84) 35 246 8135", [("PHONE_NUMBER", "(+84) 35 246 8135")]),
        ("new number 07700 900127", [("PHONE_NUMBER", "07700 900127")]),
        ("Biển số xe 30A-567.89", [("VN_LICENSE_PLATE", "30A-567.89")]),
        # adversarial spacing and obfuscation
        ("sdt: 0 9 1 2 3 4 5 6 7 8", [("PHONE_NUMBER", "0 9 1 2 3 4 5 6 7 8")]),
        (
            "SĐT +84-912-345-678 hoặc (+84)912345678",
            [
                ("PHONE_NUMBER", "+84-912-345-678"),
                ("PHONE_NUMBER", "(+84)912345678"),
            ],
        ),
        ("CCCD 001.203.004.567 cấp ngày 12/05/2021", [("VN_CCCD", "001.203.004.567")]),
        ("email: tran.van.a [at] gmail [dot] com", [("EMAIL_ADDRESS", "tran.van.a [at] gmail [dot] com")]),
        ("mail me at john.doe(at)example.com", [("EMAIL_ADDRESS", "john.doe(at)example.com")]),
        ("write to lan at congty dot com dot vn", [("EMAIL_ADDRESS", "lan at congty dot com dot vn")]),
        ("IBAN: de89370400440532013000", [("IBAN_CODE", "de89370400440532013000")]),
        ("xe may bien so 59-X1 234.56", [("VN_LICENSE_PLATE", "59-X1 234.56")]),
    ],
)
def test_finds_validated_types(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Giá chỉ 1.299.000đ, giảm còn 999.000 VND",
        "Tổng tiền 12.450.000 đồng",
        "Đơn hàng 202405180012 đã giao",
        "ma don hang 458812390045 dang giao",
        "Order #48213377590 shipped",
        "Invoice 4539148803436467 is paid",  # Luhn-valid, but an invoice number
        "Card 4539 1488 0343 6468 declined",  # fails Luhn
        "Hotline 1900 6868 hoặc 1800 1090",
        "tong dai 19001234",
        "Nghị định 13/2023/NĐ-CP có hiệu lực",
        "ISBN 978-604-2-12345-6",
        "Upgrade to version 2.13.0 or 10.0.19045.2965",
        "Ngày sinh 15.08.1992, hẹn 2024-05-18",
        "mã OTP 483920",
        "the meeting is at 10:30:45",
        "Price: $1,299.00",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "We shipped 250 units in 2023 and 310 in 2024.",
        "Số 0123456789 là số điện thoại mẫu",  # a placeholder: not a valid number anywhere
        "Is 123-456-789 a valid routing number format?",
        "07700 900127",  # a possible UK number, but no phone word vouches for it
        "p50 23.9 23.3 25.7 23.4 21.5 22.6 ms",  # a row of decimals that passes Luhn when joined
        "bind to 127.0.0.1 or 0.0.0.0, never ::1",  # loopback and unspecified addresses
        "MST cua cong ty: 0312345678-001",  # a wrong check digit is no tax code, and no phone either
        "meet me at noon dot or later",
        "Hotline CSKH: 1800 599 920",
        "Mã đơn hàng: 240518ABCD123, tổng 2.450.000đ",
        "Phiên bản 10.2.14.3 đã phát hành",
    ],
)
def test_hard_negatives_do_not_fire(text: str) -> None:
    assert found(text) == []


def test_findings_are_sorted_non_overlapping_and_typed() -> None:
    text = "SĐT 0912345678, CCCD 079204001234, email a@b.vn, IP 8.8.4.4, thẻ 4539148803436467. " * 50
    findings = DETECT.find(text)
    assert len(findings) == 250
    assert all(isinstance(f, Finding) and f.type in PII_TYPES for f in findings)
    assert all(a.end <= b.start for a, b in zip(findings, findings[1:], strict=False))


def test_entities_and_threshold_filter() -> None:
    text = "SĐT 0912345678, email a@b.vn"
    only_email = pii_detector(entities=["EMAIL_ADDRESS"])
    assert [f.type for f in only_email.find(text)] == ["EMAIL_ADDRESS"]
    strict = pii_detector(threshold=0.99)
    assert strict.find(text) == []
    with pytest.raises(ValueError, match="unknown PII types"):
        pii_detector(entities=["PHONE"])
    with pytest.raises(ValueError, match="unsupported languages"):
        pii_detector(languages=["fr"])
