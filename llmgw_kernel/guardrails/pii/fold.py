"""Text folded for matching: lower case, Vietnamese diacritics removed, same length as the input.

Context words and name lists are matched on the folded text so that ``Số điện thoại``,
``so dien thoai`` and ``SO DIEN THOAI`` are one word, while every offset found in the folded
text is still an offset into the original (each code point maps to exactly one code point).
"""

from __future__ import annotations

import unicodedata


def _fold_table() -> dict[int, str]:
    """Map every precomposed Latin letter to its lower-case ASCII base (``Ặ`` → ``a``, ``Đ`` → ``d``)."""
    table: dict[int, str] = {ord(c): c.lower() for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    for cp in range(0xC0, 0x2000):
        base = unicodedata.normalize("NFD", chr(cp))[0]
        if base.isascii() and base.isalpha() and base != chr(cp):
            table[cp] = base.lower()
    table[ord("đ")] = table[ord("Đ")] = "d"
    return table


_TABLE = _fold_table()


def fold(text: str) -> str:
    """``text`` in lower case without diacritics, one code point for each code point of ``text``.

    >>> fold("Số CCCD của Nguyễn Đức")
    'so cccd cua nguyen duc'
    """
    return text.translate(_TABLE)
