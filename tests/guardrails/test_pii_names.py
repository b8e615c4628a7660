"""PERSON and ADDRESS: Vietnamese and English, with and without diacritics, and the places named
after people that must not be read as people. All names and addresses are made up for these tests."""

from __future__ import annotations

import pytest

from llmgw_kernel.guardrails.pii import pii_detector

DETECT = pii_detector()


def found(text: str, types: tuple[str, ...] = ("PERSON", "ADDRESS")) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in DETECT.find(text) if f.type in types]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Tôi là Nguyễn Thị Minh Khai, cần hỏi về hợp đồng", "Nguyễn Thị Minh Khai"),
        ("Gửi giúp em cho anh Đoàn Quốc Bảo nhé", "Đoàn Quốc Bảo"),
        ("toi la Phan Thanh Binh, nho ho tro", "Phan Thanh Binh"),
        ("Chị Hạnh ơi, mai họp lúc 9h nhé", "Hạnh"),
        ("nhờ chị Lê Hoa ký giúp", "Lê Hoa"),  # two syllables with a form of address
        ("Em là Trang, sđt 0981234567", "Trang"),
        ("em gui cho chi Thuy roi a", "Thuy"),
        ("bác sĩ Lưu Văn Hiếu khám cho bệnh nhân", "Lưu Văn Hiếu"),
        ("Họ và tên: Kha Minh Tâm", "Kha Minh Tâm"),
        ("NGƯỜI NHẬN: Vương Gia Huy", "Vương Gia Huy"),
        ("Hi, I'm Sarah and I need help with my order", "Sarah"),
        ("Please forward this to Dr. Amara Okafor", "Amara Okafor"),
        ("Meeting notes from Daniel Kowalski, product team", "Daniel Kowalski"),
        ("My name is Zainab Adeyemi-Cole.", "Zainab Adeyemi-Cole"),
        ("The tenant, Mrs. Beatrice Lindqvist, paid late", "Beatrice Lindqvist"),
        ("Can you review the email from Nguyen Hoang Long?", "Nguyen Hoang Long"),
        ("Cardholder: Marco Bianchi", "Marco Bianchi"),
        ("tk vcb 0071 0001 23456 ten NGUYEN VAN AN", "NGUYEN VAN AN"),  # capitals, as on transfers
        ("CHỦ TÀI KHOẢN: TRẦN THỊ BÍCH NGỌC", "TRẦN THỊ BÍCH NGỌC"),
        ("Contact person: Kwame Mensah, kwame@example.com", "Kwame Mensah"),
        ("Send the contract to Elif Yılmaz before Friday", "Elif Yılmaz"),
        # a person's slot: the given name is in no list
        ("write a reference letter for Thandeka Okonjo, she managed the team", "Thandeka Okonjo"),
        ("I met with Ruairí MacAodha yesterday", "Ruairí MacAodha"),
        ("please cc Ingvild Aasheim on the thread", "Ingvild Aasheim"),
        ("Rewrite this: 'Oliver Brandt moved to Leeds'", "Oliver Brandt"),  # right after a quote
        ('Dịch giúp: "Trịnh Công Sơn là ai"', "Trịnh Công Sơn"),
    ],
)
def test_finds_person(text: str, name: str) -> None:
    assert ("PERSON", name) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "Đường Trần Hưng Đạo dài bao nhiêu km?",
        "Trường THPT Lê Quý Đôn tuyển sinh lớp 10",
        "Bệnh viện Bạch Mai đông quá",
        "Quận Hai Bà Trưng có bao nhiêu phường?",
        "Mình đang học tiếng Anh và tiếng Nhật",
        "Hà Nội và Đà Nẵng, nơi nào mát hơn?",
        "Cao Bằng có thác Bản Giốc rất đẹp",
        "Theo Nghị định mới, doanh nghiệp phải báo cáo",
        "The Quick Brown Fox jumps over the lazy dog",
        "May I ask a question about the API?",
        "Hello World in Python prints a greeting",
        "We met on Monday at the Grand Hotel",
        "DO NOT DISTURB THE TEAM",
        # a bare family name + one syllable is the shape of historic names and streets
        "Lý Bí lập nước Vạn Xuân năm 544",
        "Trần Phú là một con đường dài",
        "We met with Microsoft Teams support",
        "Book a ticket for New Delhi in May",
        "Thanks for Great Expectations, I loved it",
        "Call Center Operations moved to Building Four",
        "def f(name: None = None) -> None:\n    if name is None:\n        return",  # code, not a name field
        "    name: Annotated[str, Field(description='the rule')]",
        "TO DO: CALL THE BANK",
        "Flights to Hong Kong, San Francisco and Can Tho are delayed",
        "The table has columns Jan Feb Mar Apr",
        "Portkey 0.85 ms, LiteLLM 17 ms at the median",  # "ms" is a unit, not a title
        "questions that differ only by a name. Before the cache answers",  # "name" is no field here
    ],
)
def test_places_and_phrases_are_not_people(text: str) -> None:
    assert found(text, ("PERSON",)) == []


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (
            "Giao tới số 27 ngách 4/12 phố Vọng, Hai Bà Trưng, Hà Nội trước 5h",
            "số 27 ngách 4/12 phố Vọng, Hai Bà Trưng, Hà Nội",
        ),
        (
            "Địa chỉ: 88 Lý Tự Trọng, phường Bến Thành, Quận 1, TP.HCM.",
            "88 Lý Tự Trọng, phường Bến Thành, Quận 1, TP.HCM",
        ),
        ("dia chi: 14 duong Hung Vuong, P.9, Q.5, TP HCM", "14 duong Hung Vuong, P.9, Q.5, TP HCM"),
        ("quê ở xóm 3, xã Nghi Phong, huyện Nghi Lộc, Nghệ An", "xóm 3, xã Nghi Phong, huyện Nghi Lộc, Nghệ An"),
        ("Kho ở hẻm 51 đường 3/2, phường 12, quận 10", "hẻm 51 đường 3/2, phường 12, quận 10"),
        (
            "Ship to 4821 Maple Grove Road, Suite 210, Denver, CO 80202",
            "4821 Maple Grove Road, Suite 210, Denver, CO 80202",
        ),
        ("Office: 17 Kensington Gardens, London W8 4PX", "17 Kensington Gardens, London W8 4PX"),
        ("Mail it to PO Box 7731 please", "PO Box 7731"),
        ("Địa chỉ: Tổ 5, phường Quang Trung, thành phố Thái Nguyên", "Tổ 5, phường Quang Trung, thành phố Thái Nguyên"),
        (
            "ship về 45 đường số 7, KDC Trung Sơn, Bình Chánh, TP.HCM",
            "45 đường số 7, KDC Trung Sơn, Bình Chánh, TP.HCM",
        ),
        ("Văn phòng tại tầng 12, 198 Trần Quang Khải, Hoàn Kiếm", "198 Trần Quang Khải, Hoàn Kiếm"),
        ("Our office moved to 48 Baker Street, London NW1 6XE.", "48 Baker Street, London NW1 6XE"),
        ("J'habite au 12 Rue de Rivoli, Paris.", "12 Rue de Rivoli, Paris"),
    ],
)
def test_finds_address(text: str, address: str) -> None:
    assert ("ADDRESS", address) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "Quận 1 hay quận 3 đông hơn?",
        "Tôi sống ở Hà Nội, làm việc ở Hải Phòng",
        "tổ 3 người đi họp lúc 9 giờ",
        "Chuyển khoản vào STK 1903 6512 3450 12 Vietcombank",
        "The cache holds 55 MB, DuckDB another 64 KB",
    ],
)
def test_coarse_places_are_not_addresses(text: str) -> None:
    assert found(text, ("ADDRESS",)) == []


def test_person_inside_an_address_is_the_address() -> None:
    text = "Tôi ở 45 Nguyễn Văn Cừ, phường 4, quận 5"
    assert found(text) == [("ADDRESS", "45 Nguyễn Văn Cừ, phường 4, quận 5")]
