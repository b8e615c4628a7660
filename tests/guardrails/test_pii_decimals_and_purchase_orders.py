"""Two hard negatives (issue 12: "order numbers, ... must not fire"): a decimal fraction read as a
Vietnamese mobile ("0.912345678" → the digits of 0912345678), and a purchase-order number read as a
phone. Written from the formats: no phone, card or ID is written as one digit, a point and a long
run; a PO number is an order number."""

from __future__ import annotations

import pytest

from llmgw_kernel.guardrails.pii.detector import pii_detector

DETECT = pii_detector(["en", "vi"])


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in DETECT.find(text)]


@pytest.mark.parametrize(
    "text",
    [
        "What is 0.912345678 times 3.84, to 4 places?",
        "Lãi suất 0,912345678 mỗi ngày",
        "pi is about 3.14159265358",
        "Our PO number is 4500123456, please invoice against it.",
        "Purchase order 4500123456 was approved.",
        "Số đơn đặt hàng 4500123456 đã được duyệt",
    ],
)
def test_decimals_and_purchase_orders_are_not_personal_data(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Call me on 0912.345.678 tomorrow", "0912.345.678"),
        ("my phone: 0912345678", "0912345678"),
        ("Văn phòng: 028.38221234", "028.38221234"),
        ("Gọi +84.912345678 nhé", "+84.912345678"),
    ],
)
def test_phones_written_with_points_are_still_phones(text: str, value: str) -> None:
    assert ("PHONE_NUMBER", value) in found(text)
