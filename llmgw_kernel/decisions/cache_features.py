"""Semantic-cache verification: the features of a prompt, and whether two prompts' features
allow one's cached answer to serve the other (docs/cache.md#verification).

Embedding similarity is blind to a few differences that change the answer: a number, a
negation, a name, the direction of a relation. :func:`features` extracts exactly those, as
32-bit token hashes (so the log can keep them without keeping the text), and :func:`verify`
compares two feature sets.

>>> verify(features("Can I take 0.5 mg of lorazepam?"), features("Can I take 5.0 mg of lorazepam?"))
'numbers'
>>> verify(features("Is 5.0 mg too much?"), features("Is 5 milligrams too much?")) is None
True
>>> verify(features("Which one is better for SSRIs?"), features("Which is better for an SSRI?")) is None
True

Numbers are read as **values** (``5.0`` = ``5``, ``1,000`` = ``1000``, ``twenty-five`` = ``25``,
``5 million`` = ``5000000``) with the **unit** written right after them (``5 mg``, ``5mg`` and
``5 milligrams`` are one unit; ``5 g`` is another; ``5%`` = ``5 percent``; ``$5`` = ``5 USD``),
and compared **in order**: "2 tablets every 6 hours" is not "6 tablets every 2 hours".
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

#: the version :func:`features` produces; features of another version are never compared
#: (1: numbers as an unordered set of digit strings, no units, no with/without)
VERSION = 2

_TOKEN = re.compile(
    r"(?P<num>(?:(?<![\w.,])[-\u2212])?(?:\d+(?:[.,]\d+)*|(?<![\w.])\.\d+))"
    r"(?P<suffix>%|°\s?[cf]?(?![^\W\d_])|[^\W\d_]+(?:/[^\W\d_]+)?)?"
    r"|(?P<word>[^\W\d_][^\W_]*(?:['’][^\W_]+)*['’]?)"
    r"|(?P<sym>[%$€£¥°])",
    re.IGNORECASE,
)
_NEGATIONS = frozenset(
    "not no never none nobody nothing neither nor cannot cant dont doesnt didnt isnt arent wasnt "
    "werent wont wouldnt shouldnt couldnt hasnt havent hadnt mustnt aint "
    "khong chang chua dung".split()  # Vietnamese (accents folded): không, chẳng, chưa, đừng
)
#: Vietnamese negation words that end a yes/no question as a particle ("... không?", "... chưa?")
_QUESTION_PARTICLES = frozenset({"khong", "chua"})
_SMALL = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
#: "one" after these is a pronoun: "which one", "how does one", "can one"
_ONE_AFTER_ALWAYS = frozenset(
    "which what whichever does do did can could should would will must may might shall".split()
)
#: "one" after these is a pronoun unless a content word follows: "the best one" but "the one thing"
_ONE_AFTER_DETERMINER = frozenset(
    "the this that each every any another no a an other some same right wrong good better best new old last "
    "next such".split()
)
#: "one" before these is a pronoun: "one should", "one another"
_ONE_BEFORE = frozenset("should can could must may might would will shall ought needs another".split())
#: unit words and symbols read with the number before them, by canonical unit
_UNIT_NAMES = {
    "mg": "mg milligram milligramme", "g": "g gram gramme gr", "kg": "kg kilogram kilo kilogramme",
    "mcg": "mcg µg μg ug microgram", "lb": "lb lbs pound", "oz": "oz ounce", "t": "ton tonne",
    "ml": "ml milliliter millilitre", "l": "l liter litre", "cc": "cc", "gal": "gal gallon", "cup": "cup",
    "tsp": "tsp teaspoon", "tbsp": "tbsp tablespoon", "iu": "iu", "mmol": "mmol", "mol": "mol",
    "mm": "mm millimeter millimetre", "cm": "cm centimeter centimetre", "m": "m meter metre",
    "km": "km kilometer kilometre", "in": "inch", "ft": "ft foot feet", "yd": "yd yard", "mi": "mile",
    "ms": "ms millisecond", "s": "s sec second", "min": "min minute", "h": "h hr hour gio",
    "day": "day ngay", "week": "week wk tuan", "month": "month mo thang", "year": "year yr",
    "%": "% percent pct", "c": "°c celsius", "f": "°f fahrenheit", "°": "° degree",
    "usd": "usd dollar buck $", "eur": "eur euro €", "gbp": "gbp £", "jpy": "jpy yen ¥", "vnd": "vnd dong",
    "kb": "kb kilobyte", "mb": "mb megabyte", "gb": "gb gigabyte", "tb": "tb terabyte", "byte": "byte",
    "hz": "hz hertz", "khz": "khz", "mhz": "mhz", "ghz": "ghz", "w": "w watt", "kw": "kw kilowatt",
    "kwh": "kwh", "v": "v volt", "mph": "mph", "kmh": "kmh km/h kph", "am": "am", "pm": "pm",
    "tablet": "tablet pill vien", "capsule": "capsule", "drop": "drop", "dose": "dose", "puff": "puff",
    "times": "times time lan", "x": "x", "ord": "st nd rd th",
}  # fmt: skip
_UNITS = {name: unit for unit, names in _UNIT_NAMES.items() for name in names.split()}
_CURRENCY = {"$": "usd", "€": "eur", "£": "gbp", "¥": "jpy"}
_STOP = frozenset(
    "a an the and or but if of at by for with about against between into through during before after above "
    "below to from up down in out on off over under again further then once here there when where why how "
    "all any both each few more most other some such only own same so than too very can will just should "
    "now is are was were be been being have has had having do does did doing i me my we our you your he him "
    "his she her it its they them their what which who whom this that these those am would could might must "
    "shall may also get got as s t way best good please tell explain describe give know want need like "
    "yes vs versus".split()
)
_DIRECTIONAL = frozenset({"to", "into", "in", "from", "than", "before", "after", "per"})


class Features(NamedTuple):
    """What verification compares, as 32-bit token hashes (so the log need not keep the text).

    ``numbers``: each number's value and unit, in order of appearance; ``negations``: count of
    negation words; ``entities``: capitalised words not at a sentence start, and words mixing
    letters and digits; ``words``: the content words (possessive and plural endings removed);
    ``pairs``: (content word before, content word after) around each directional word (to,
    into, in, from, than, before, after, per); ``absent``: the content words after "without"
    or "with no" and before "-free"; ``privatives``: how many of those markers there are.
    """

    numbers: tuple[int, ...]
    negations: int
    entities: tuple[int, ...]
    words: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...]
    absent: tuple[int, ...] = ()
    privatives: int = 0
    version: int = 1

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "n": list(self.numbers), "g": self.negations, "e": list(self.entities), "w": list(self.words),
            "p": [list(p) for p in self.pairs],
        }  # fmt: skip
        if self.version != 1:
            data.update(v=self.version, wo=list(self.absent), wn=self.privatives)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Features:
        pairs = tuple((int(a), int(b)) for a, b in data["p"])
        return cls(
            tuple(data["n"]), int(data["g"]), tuple(data["e"]), tuple(data["w"]), pairs,
            tuple(data.get("wo", ())), int(data.get("wn", 0)), int(data.get("v", 1)),
        )  # fmt: skip


#: the rules :func:`verify` applies, by the reason each gives
RULES = ("numbers", "negation", "entities", "word order")


def verify(query: Features, cached: Features, skip: frozenset[str] = frozenset()) -> str | None:
    """Why a similar cached prompt must not answer this one (None: it may); ``skip``: rules
    (of :data:`RULES`) not to apply (to measure what each one buys).

    Rejects the known failure modes of embedding similarity: different numbers (value, unit or
    order), a negation in one and not the other ("without X" against "with X" or plain "X"), a named
    entity of one missing from the other, and a relation read the other way round ("Celsius to
    Fahrenheit" / "Fahrenheit to Celsius"). Features of different versions are not compared.
    """
    if query.version != cached.version:
        return "version"
    if "numbers" not in skip and query.numbers != cached.numbers:
        return "numbers"
    if "negation" not in skip and _negation_differs(query, cached):
        return "negation"
    qw, cw = set(query.words), set(cached.words)
    if "entities" not in skip and (
        any(e not in cw for e in query.entities) or any(e not in qw for e in cached.entities)
    ):
        return "entities"
    reversed_pairs = {(b, a) for a, b in cached.pairs}
    if "word order" not in skip and any(p in reversed_pairs for p in query.pairs):
        return "word order"
    return None


def _negation_differs(query: Features, cached: Features) -> bool:
    if _odd(query.negations) != _odd(cached.negations) and _odd(query.negations + query.privatives) != _odd(
        cached.negations + cached.privatives
    ):
        return True  # "without X" may read as "no X" or not: the parities agree under neither reading
    return not (_absences_agree(query, cached) and _absences_agree(cached, query))


def _absences_agree(a: Features, b: Features) -> bool:
    """Whether what ``a`` goes without, ``b`` goes without too: "without X" is matched by
    "without X", "X-free", "with no X", or X under a negation ("if I don't X")."""
    negated, b_absent, b_words = _odd(b.negations), set(b.absent), set(b.words)
    return all(x in b_absent or (negated and x in b_words) for x in a.absent)


def _odd(n: int) -> bool:
    return n % 2 == 1


def _h(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "big")


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).replace("đ", "d")


class _Tok(NamedTuple):
    kind: str  # num | word | sym
    text: str  # lower case; a word without apostrophes, possessive 's or n't
    raw: str
    start: int
    end: int
    suffix: str  # a num's attached unit ("5mg"), lower case
    nt: bool  # a word ending in n't
    gap: str  # the text between the previous token and this one


def _tokens(folded: str) -> list[_Tok]:
    out: list[_Tok] = []
    for m in _TOKEN.finditer(folded):
        kind = m.lastgroup if m.lastgroup != "suffix" else "num"
        raw = m.group(kind or "num")
        text, nt = raw.lower().replace("’", "'"), False
        if kind == "word":
            if text.endswith("n't"):
                text, nt = text[:-3], True
            elif text.endswith(("'s", "'")):
                text = text[: -2 if text.endswith("'s") else -1]
            text = text.replace("'", "")
        suffix = (m.group("suffix") or "").lower().replace(" ", "") if kind == "num" else ""
        gap = folded[out[-1].end if out else 0 : m.start()]
        out.append(_Tok(kind or "num", text, raw, m.start(), m.end(), suffix, nt, gap))
    return out


def _decimal(text: str) -> list[Decimal | str]:
    """The values a digit string stands for: ``1,000`` and ``1.000.000`` group thousands,
    ``1,5`` is a decimal comma, ``1,2,3`` a list, ``1.2.3`` a version (kept literally)."""
    sign = "-" if text[0] in "-\u2212" else ""
    body = text.lstrip("-\u2212")
    if "," in body and "." in body:  # 1,000.5 or 1.000,5
        body = body.replace(",", "") if body.rfind(".") > body.rfind(",") else body.replace(".", "").replace(",", ".")
    for sep in ",.":
        groups = body.split(sep)
        if len(groups) < 2 or (sep == "." and len(groups) == 2):
            continue
        if 1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:]):
            body = "".join(groups)  # thousands separators
        elif sep == "," and len(groups) == 2:
            body = body.replace(",", ".")  # decimal comma
        elif sep == ",":
            return [v for g in groups for v in _decimal(sign + g)]  # a list: 1,2,3
        else:
            return [sign + body]  # a version number: 1.2.3
    try:
        return [Decimal(sign + body)]
    except InvalidOperation:  # pragma: no cover - the regex admits digits and separators only
        return [sign + body]


def _canon(value: Decimal | str) -> str:
    if isinstance(value, str):
        return value
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _is_pronoun_one(toks: list[_Tok], i: int) -> bool:
    """Whether the word "one" at ``toks[i]`` is a pronoun (not the number 1)."""
    before = toks[i - 1].text if i > 0 and toks[i - 1].kind == "word" else ""
    after = toks[i + 1].text if i + 1 < len(toks) and toks[i + 1].kind == "word" else ""
    if before in _SMALL or before in _TENS or after in _SCALES or after in _SMALL:
        return False  # part of a longer number ("twenty one", "one hundred")
    if before in _ONE_AFTER_ALWAYS or after in _ONE_BEFORE:
        return True
    determiner = before in _ONE_AFTER_DETERMINER or before.endswith("est")
    return determiner and (not after or after in _STOP)


def _word_number(toks: list[_Tok], i: int) -> tuple[Decimal, int]:
    """A number written in words from ``toks[i]`` ("twenty-five", "two hundred thousand"): its
    value and the index after it."""
    total, current, last = 0, 0, None
    while i < len(toks) and toks[i].kind == "word":
        w = toks[i].text
        if w in _SMALL:
            fits = last is None or last in _SCALES or (last in _TENS and 0 < _SMALL[w] < 10)
        elif w in _TENS:
            fits = last is None or last in _SCALES
        else:
            fits = w in _SCALES and last is not None and (last not in _SCALES or last == "hundred" != w)
        if not fits:
            break
        if w == "hundred":
            current *= 100
        elif w in _SCALES:
            total, current = total + current * _SCALES[w], 0
        else:
            current += _SMALL.get(w) or _TENS.get(w, 0)
        last, i = w, i + 1
    return Decimal(total + current), i


def _unit(toks: list[_Tok], i: int, suffix: str, currency: str | None) -> tuple[str, int]:
    """The unit of the number that ends before ``toks[i]``: attached ("5mg"), or the next
    token's if that is a unit ("5 mg", "5 %"); returns it and the index of a unit token read
    (-1 if none)."""
    if currency:
        return currency, -1
    if suffix:  # 5mg; 1980s, 90s: a plural, no unit
        return ("" if suffix == "s" else _UNITS.get(suffix, _UNITS.get(suffix.rstrip("s"), suffix))), -1
    if i < len(toks) and toks[i].kind in ("word", "sym") and toks[i].gap.strip() in ("", "-"):  # 5 mg, 5-year
        t = toks[i].text
        if t == "°" and i + 1 < len(toks) and toks[i + 1].text in ("c", "f") and not toks[i + 1].gap:
            return toks[i + 1].text, i + 1  # 37 °C
        for name in (t, t.rstrip("s") if len(t) > 3 else t, t[:-2] if t.endswith("es") else t):
            if name in _UNITS:
                return _UNITS[name], i
    return "", -1


def _read_number(toks: list[_Tok], i: int) -> tuple[list[Decimal | str], int] | None:
    """The number starting at ``toks[i]`` (digits, words, "5 million"), its values and the
    index after it; None if no number starts there."""
    t = toks[i]
    if t.kind == "word":
        if t.text not in _SMALL and t.text not in _TENS or (t.text == "one" and _is_pronoun_one(toks, i)):
            return None
        value, j = _word_number(toks, i)
        return [value], j
    if t.kind != "num":
        return None
    values, j = _decimal(t.raw), i + 1
    scale = _SCALES.get(toks[j].text) if j < len(toks) and not t.suffix else None
    if scale and len(values) == 1 and isinstance(values[0], Decimal):
        return [values[0] * scale], j + 1
    return values, j


def _numbers(toks: list[_Tok]) -> tuple[list[int], set[int], set[int]]:
    """The numbers of a prompt in order (hash of value and unit), the indexes of the tokens
    they were read from (not words) and of the unit words they took (not entities)."""
    numbers: list[int] = []
    used: set[int] = set()
    unit_words: set[int] = set()
    i = 0
    while i < len(toks):
        t, currency = toks[i], None
        if t.raw in _CURRENCY and i + 1 < len(toks) and toks[i + 1].kind == "num" and not toks[i + 1].gap:
            currency, i, t = _CURRENCY[t.raw], i + 1, toks[i + 1]
        read = _read_number(toks, i)
        if read is None:
            i += 1
            continue
        values, j = read
        used.update(range(i, j))
        unit, u = _unit(toks, j, t.suffix, currency)
        if u >= 0:
            unit_words.add(u)
        numbers.extend(_h(f"#{_canon(v)} {unit}") for v in values)
        i = j
    return list(dict.fromkeys(numbers)), used, unit_words  # a repeated number says nothing new


def _singular(text: str, raw: str) -> str:
    """A content word without its plural ending ("SSRIs" -> "ssri", "companies" -> "company")."""
    if len(raw) >= 3 and raw.endswith("s") and raw[:-1].isupper() and raw[-2] not in "'’":
        return text[:-1]  # an acronym's plural (not its possessive, "CPU's": the 's is gone already)
    if len(text) <= 3 or not text.endswith("s") or text.endswith(("ss", "us", "is")):
        return text
    if text.endswith("ies") and len(text) > 4:
        return text[:-3] + "y"
    if text.endswith(("ches", "shes", "xes", "zes", "sses")):
        return text[:-2]
    return text[:-1]


def _negates(toks: list[_Tok], i: int, folded: str) -> bool:
    t = toks[i]
    if t.text == "not" and i + 1 < len(toks) and toks[i + 1].text == "only":
        return False  # "not only ... but also"
    if t.text in _QUESTION_PARTICLES:  # "Tôi có thể uống thuốc này không?" is a question
        last = i + 1 == len(toks)
        rest = (folded[t.end :] if last else toks[i + 1].gap).lstrip(" \t")
        return not ((last and rest == "") or rest[:1] in ("?", "\n"))
    return t.text in _NEGATIONS


def features(text: str) -> Features:
    """The verification features of one prompt (:data:`VERSION`)."""
    folded = _fold(text)
    toks = _tokens(folded)
    numbers, used, unit_words = _numbers(toks)
    entities: set[int] = set()
    words: set[int] = set()
    pairs: set[tuple[int, int]] = set()
    absent: set[int] = set()
    negations = privatives = 0
    last_word: int | None = None
    pending: int | None = None  # content word before a directional word, waiting for the one after
    after_with = marking = False  # marking: the next content word is absent (after without / with no)
    last_index = -1
    for i, t in enumerate(toks):
        if t.kind != "word" or i in used:
            continue
        if t.nt:  # don't, can't, isn't: the negation, not the verb
            negations += 1
            continue
        sentence_start = i == 0 or any(c in '.?!:;\n"(' for c in t.gap)
        tok = t.text
        if sentence_start:
            marking = False
        if tok in ("with", "without"):
            after_with, marking = tok == "with", tok == "without"
            privatives += tok == "without"
            continue
        if _negates(toks, i, folded):
            negations += 1
            marking = marking or (after_with and tok == "no")  # "with no sugar" ~ "without sugar"
        elif tok in _DIRECTIONAL:
            pending = last_word
        elif tok == "free" and last_index == i - 1 and last_word is not None and t.gap == "-":
            absent.add(last_word)  # "sugar-free"
            privatives += 1
        elif tok not in _STOP and tok != "one" and len(tok) > 1:  # an unread "one" is a pronoun
            h = _h(_singular(tok, t.raw))
            words.add(h)
            mixed = any(c.isdigit() for c in tok) and any(c.isalpha() for c in tok)
            if i not in unit_words and ((t.raw[0].isupper() and not sentence_start) or mixed):
                entities.add(h)
            if pending is not None and pending != h:
                pairs.add((pending, h))
            if marking:
                absent.add(h)
            pending, marking, last_word, last_index = None, False, h, i
        after_with = False
    return Features(
        tuple(numbers), negations, tuple(sorted(entities)), tuple(sorted(words)), tuple(sorted(pairs)),
        tuple(sorted(absent)), privatives, VERSION,
    )  # fmt: skip
