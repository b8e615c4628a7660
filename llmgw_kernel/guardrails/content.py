"""Content safety: unsafe requests and answers by category, from phrase patterns in English and
Vietnamese, and the pattern engine the prompt-injection detector shares.

Each category is a list of rules; a rule is a regular expression over the *folded* text (lower
case, Vietnamese diacritics removed: ``fold.py``), so one pattern matches text written with and
without diacritics. Patterns describe intent or instructions ("how to make a pipe bomb",
"muốn tự tử"), not topics: a question about suicide prevention or a news report on a bombing is
not what a block rule is for, so bare topic words score below the default threshold. Every
finding names its rule (``content.vi.self_harm.intent``) and never carries the matched text.

No classifier ships offline in a PyPI package that covers Vietnamese and fits the 1 ms budget
(docs/guardrails-detection.md); the lists are the detector.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from llmgw_kernel.guardrails.findings import Finding
from llmgw_kernel.guardrails.pii.detector import resolve
from llmgw_kernel.guardrails.pii.fold import fold


@dataclass(frozen=True, slots=True)
class Rule:
    """One named pattern of one category in one language. ``keys`` is a cheap gate: "a|b&c d|e" means
    every match holds the word a or b, and the words c and d or the word e, so the regex only runs
    on texts that hold them (tests run each rule's examples through the gate)."""

    category: str
    lang: str
    name: str
    pattern: str  # regex over folded text
    score: float
    keys: str

    def gate(self) -> tuple[tuple[frozenset[str], ...], ...]:
        """The keys: for each "&" part, its alternatives, each the set of words it is made of."""
        return tuple(tuple(frozenset(k.split()) for k in part.split("|")) for part in self.keys.split("&"))


_NOT_WORD = re.compile(r"[^a-z0-9+]+")


def gate_words(folded: str) -> frozenset[str]:
    """The words of a folded text: what rule gates are checked against."""
    return frozenset(_NOT_WORD.split(folded))


def _passes(gate: tuple[tuple[frozenset[str], ...], ...], words: frozenset[str]) -> bool:
    """Every part of the gate has an alternative whose words all occur in the text (a superset of
    "the phrase occurs": cheap, and never closes a gate the regex could match)."""
    return all(any(alt <= words for alt in part) for part in gate)


class PatternDetector:
    """Findings for every rule match, typed by category. The rules of one category and language are
    compiled into one alternation, so categories never hide each other's matches (a request for
    explicit content about a child is ``sexual_minors`` even where ``sexual`` also matches)."""

    def __init__(self, rules: Iterable[Rule], prefix: str, threshold: float) -> None:
        self.rules = tuple(r for r in rules if r.score >= threshold)
        self.prefix = prefix
        self._compiled: list[tuple[re.Pattern[str], tuple[Rule, ...]]] = []
        self._gates: list[tuple[tuple[tuple[frozenset[str], ...], ...], int]] = []
        groups: dict[tuple[str, str], list[Rule]] = {}
        for r in self.rules:
            groups.setdefault((r.category, r.lang), []).append(r)
        for rules in groups.values():
            alternation = "|".join(f"(?P<r{i}>{r.pattern})" for i, r in enumerate(rules))
            self._compiled.append((re.compile(rf"(?<![a-z0-9])(?:{alternation})(?![a-z0-9]|-[a-z])"), tuple(rules)))
            self._gates += [(r.gate(), len(self._compiled) - 1) for r in rules]

    def _rule_name(self, r: Rule) -> str:
        """``content.vi.self_harm.intent``; ``injection.en.override`` when the category is the prefix."""
        category = "" if r.category == self.prefix else f"{r.category}."
        return f"{self.prefix}.{r.lang}.{category}{r.name}"

    def find(self, text: str) -> list[Finding]:
        folded = fold(text)
        words = gate_words(folded)
        found: dict[tuple[int, int, str], Finding] = {}
        anchors: dict[int, set[str]] = {}  # group -> words of its open gates' first parts found in the text
        for gate, g in self._gates:
            if _passes(gate, words):
                anchors.setdefault(g, set()).update(w for alt in gate[0] if alt <= words for w in alt)
        for g, keys in anchors.items():
            regex, rules = self._compiled[g]
            for lo, hi in _windows(folded, keys):
                for m in regex.finditer(folded, lo, hi):
                    r = rules[int((m.lastgroup or "r0")[1:])]
                    if r.lang == "vi" and _misspelled(
                        text[m.start() : m.end()], _SPELL_CHECKED.get((r.category, r.name))
                    ):
                        continue
                    found[m.start(), m.end(), r.name] = Finding(
                        r.category, m.start(), m.end(), r.score, self._rule_name(r)
                    )
        return resolve(found.values())


#: Folded Vietnamese words that several words share ("bom": bomb, but "bơm" is a pump, "đàn" a
#: guitar, "bạn" a friend): in the rules listed in ``_SPELL_CHECKED``, where the text is written
#: with diacritics, only these spellings count. Text without diacritics matches as folded.
_VI_SPELLINGS: dict[str, frozenset[str]] = {
    folded: frozenset(spellings.split("|"))
    for folded, spellings in {
        "bom": "bom", "sung": "súng", "dan": "đạn", "min": "mìn", "da": "đá", "ke": "ke", "ban": "bắn",
        "dam": "đâm", "xu": "xử", "che": "chế", "nau": "nấu", "chem": "chém", "doc": "độc",
    }.items()
}  # fmt: skip
_SPELL_CHECKED: dict[tuple[str, str], frozenset[str]] = {
    ("weapons", "explosive"): frozenset({"bom", "min", "che"}),
    ("weapons", "firearm"): frozenset({"sung", "dan", "che"}),
    ("weapons", "chemical"): frozenset({"che", "doc"}),
    ("drugs", "synthesis"): frozenset({"da", "ke", "che", "nau"}),
    ("drugs", "buy"): frozenset({"ke"}),
    ("violence", "threat"): frozenset({"ban", "dam", "xu", "chem"}),
    ("violence", "how_to"): frozenset({"dam", "chem", "doc"}),
}
_WORD = re.compile(r"\w+")


def _misspelled(original: str, checked: frozenset[str] | None) -> bool:
    """One of the rule's ambiguous words is written with diacritics that make it another word."""
    if not checked:
        return False
    for w in _WORD.findall(original):
        if not w.isascii():
            folded = fold(w)
            if folded in checked and w.lower() not in _VI_SPELLINGS[folded]:
                return True
    return False


_REACH_BEFORE, _REACH_AFTER = 160, 240  # how far a match can start before / end after its gate word


def _windows(folded: str, keys: set[str]) -> list[tuple[int, int]]:
    """Merged spans of ``folded`` around every occurrence of the gate words: a rule's regex runs
    only there, since every match holds one of them (a text is rarely scanned whole)."""
    spans = []
    for k in keys:
        i = folded.find(k)
        while i >= 0:
            spans.append((max(0, i - _REACH_BEFORE), min(len(folded), i + len(k) + _REACH_AFTER)))
            i = folded.find(k, i + len(k))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


# Reusable fragments (folded English / Vietnamese).
_ME_EN = r"(?:i|i'm|im|i am|i've|ive)"
_WANT_EN = r"(?:want|wanna|going|gonna|plan(?:ning)?|need|have|ready|decided|trying|thinking about|thinking of)(?: to)?"
_HOW_EN = (
    r"(?:how (?:do i|do you|can i|to|would i|should i)|steps? to|instructions? (?:for|to|on)|guide (?:to|for)"
    r"|teach me (?:how )?to|tell me how to|help me)"
)
_MAKE_EN = r"(?:make|build|assemble|construct|create|cook|synthesi[sz]e|manufacture|produce|brew|3d print)"
_CHILD_EN = (
    r"(?:child|children|kid|kids|minor|minors|underage|under-age|preteen|pre-teen|toddler|little (?:girl|boy)|"
    r"(?:[1-9]|1[0-7])[ -]?(?:yo|y/o|year[ -]old)s?|schoolgirl|schoolboy|middle schooler|elementary schooler)"
)
_SEX_EN = r"(?:sex|sexual(?:ly)?|nude|nudes|naked|porn|pornographic|erotic|explicit|lewd|molest|intercourse)"
_CHILD_VI = (
    r"(?:tre em|tre con|be gai|be trai|con nit|vi thanh nien|hoc sinh tieu hoc|hoc sinh cap 2|(?:[1-9]|1[0-7]) tuoi)"
)
_SEX_VI = r"(?:tinh duc|quan he tinh duc|khieu dam|khoa than|anh nong|clip nong|dam o|sex|an ai)"
_GROUP_EN = (
    r"(?:jews|muslims|christians|blacks|whites|asians|immigrants|gays|lesbians|trans people|women|arabs|mexicans"
    r"|vietnamese|chinese|refugees)"
)
_GROUP_VI = (
    r"(?:nguoi do thai|nguoi hoi giao|nguoi da den|dan nhap cu|nguoi dong tinh|nguoi chuyen gioi|phu nu"
    r"|dan toc thieu so|nguoi (?:bac|nam|trung)|nguoi khuyet tat)"
)

_KILL = "kill|kills|killed|killing"
_AGES = "|".join(f"{n}yo|{n}" for n in range(1, 18))
# (category, lang, name, score, gate keys, pattern over folded text)
_TABLE: tuple[tuple[str, str, str, float, str, str], ...] = (
    (
        "self_harm",
        "en",
        "intent",
        0.95,
        "myself|life|all|suicide|die",
        rf"{_ME_EN} (?:really )?{_WANT_EN} (?:kill myself|end (?:my life|it all)|commit suicide|die|hurt myself"
        rf"|cut myself)",
    ),
    (
        "self_harm",
        "en",
        "act",
        0.9,
        "myself|life|suicide",
        r"(?:kill|hurt|cut|harm|hang|starve) myself|end my (?:own )?life|take my (?:own )?life|suicide (?:note"
        r"|plan|method)s?",
    ),
    (
        "self_harm",
        "en",
        "method",
        0.95,
        "myself|yourself|suicide|overdose|wrist|wrists|dose|die|way|ways|method|methods",
        rf"{_HOW_EN} (?:kill (?:myself|yourself)|commit suicide|overdose|slit (?:my|your) wrists?"
        rf"|hang (?:myself|yourself))"
        r"|(?:lethal|fatal) dose of|painless (?:way|method)s? to die",
    ),
    ("self_harm", "en", "topic", 0.45, "suicide|suicidal|self", r"suicid(?:e|al)|self[- ]harm(?:ing)?|self[- ]injury"),
    (
        "self_harm",
        "vi",
        "intent",
        0.95,
        "tu tu|tu sat|chet|ket thuc|ket lieu|rach tay|cat tay",
        r"(?:toi|tao|minh|em|con) (?:muon|se|dinh|sap|chi muon|can) (?:tu tu|tu sat|chet(?! cuoi| met| mat| doi)"
        r"|ket thuc cuoc doi"
        r"|ket lieu ban than"
        r"|tu ket lieu|rach tay|cat tay)",
    ),
    (
        "self_harm",
        "vi",
        "act",
        0.85,
        "tu tu|tu sat|tu ket|tu hai|tu lam|co tay|rach tay|nhay cau|treo co|uong thuoc|muon song|chan song",
        r"tu (?:tu|sat|ket lieu|hai ban than|lam hai ban than)|cat co tay|rach tay|nhay cau|treo co"
        r"|uong thuoc (?:ngu|diet chuot) (?:de )?(?:chet|tu tu)|khong muon song nua|chan song",
    ),
    (
        "self_harm",
        "vi",
        "method",
        0.95,
        "tu tu|tu sat|chet|co tay|treo co|lieu",
        r"(?:cach|lam sao|huong dan) (?:de )?(?:tu tu|tu sat|chet (?:nhanh|khong dau)|cat co tay|treo co)"
        r"|lieu (?:gay chet|chet nguoi)",
    ),
    (
        "violence",
        "en",
        "threat",
        0.95,
        f"{_KILL}|murder|shoot|stab|strangle|behead|beat|hurt",
        r"(?:i(?:'ll| will| am going to| m going to|'m going to|m gonna|'m gonna| wanna| want to)) "
        r"(?:kill|murder|shoot|stab|strangle|behead|beat|hurt) (?:you|him|her|them|everyone|my \w+)",
    ),
    (
        "violence",
        "en",
        "how_to",
        0.95,
        f"{_KILL}|murder|poison|strangle|stab|torture|kidnap|abduct|shoot|bomb|mass",
        rf"{_HOW_EN} (?:kill|murder|poison|strangle|stab|torture|kidnap|abduct) (?:a |an |my |someone|somebody"
        rf"|people|him|her|them)"
        r"|get away with murder|(?:shoot|bomb) up (?:a |the )?(?:school|church|mosque|mall|crowd)"
        r"|mass (?:shooting|killing|murder) (?:plan|at)",
    ),
    (
        "violence",
        "en",
        "topic",
        0.45,
        "murder|massacre|torture|behead|beheading|shooting",
        r"(?:murder|massacre|torture|behead(?:ing)?|mass shooting)",
    ),
    (
        "violence",
        "vi",
        "threat",
        0.95,
        "giet|dam|ban|chem|xu|chet|thit",
        r"(?:tao|toi|tui|minh) (?:se|sap|muon) (?:giet|dam|ban|chem|xu|dap chet|danh chet|thit) "
        r"(?:may|no|chung may|ca nha may|het)",
    ),
    (
        "violence",
        "vi",
        "how_to",
        0.9,
        "giet|dau doc|bat coc|tra tan|chet",
        r"(?:cach|lam sao|huong dan) (?:de )?(?:giet (?:nguoi|mot nguoi|no|ai do)|dau doc (?:nguoi|ai do|no)"
        r"|bat coc|tra tan)"
        r"|giet (?:nguoi|ca nha) (?:ma )?khong bi (?:phat hien|bat)|dam chet|chem chet|danh chet",
    ),
    ("violence", "vi", "topic", 0.45, "giet nguoi|tham sat|khung bo", r"giet nguoi|tham sat|khung bo"),
    (
        "weapons",
        "en",
        "explosive",
        0.95,
        "bomb|bombs|ied|explosive|explosives|molotov|grenade|detonator|napalm|thermite|tatp",
        rf"(?:{_HOW_EN} |){_MAKE_EN} (?:a |an |my own |homemade |home-made )?(?:bomb|pipe bomb|ied|explosives?|molotov"
        r"(?: cocktail)?|grenade|detonator|napalm|thermite|tatp|nail bomb|car bomb)",
    ),
    (
        "weapons",
        "en",
        "firearm",
        0.9,
        "gun|firearm|rifle|pistol|silencer|suppressor|glock|ar-15|ar|sear|stock",
        rf"{_MAKE_EN} (?:a |an )?(?:untraceable |ghost )?(?:gun|firearm|rifle|pistol|silencer|suppressor)|ghost gun"
        r"|(?:convert|modify) (?:a |an |my )?(?:ar-15|rifle|glock|pistol|gun) (?:to|into) (?:full[- ]auto|automatic)"
        r"|auto sear|bump stock (?:diy|build)",
    ),
    (
        "weapons",
        "en",
        "chemical",
        0.95,
        "sarin|ricin|vx|mustard gas|nerve agent|chlorine gas|anthrax|dirty bomb|bioweapon|chemical weapon"
        "|chemical weapons",
        rf"{_MAKE_EN} (?:sarin|ricin|vx|mustard gas|nerve agent|chlorine gas|anthrax|a dirty bomb|a bioweapon"
        r"|chemical weapons?)",
    ),
    (
        "weapons",
        "en",
        "topic",
        0.5,
        "pipe bomb|ied|molotov|nerve agent|dirty bomb",
        r"pipe bomb|ied|molotov|nerve agent|dirty bomb",
    ),
    (
        "weapons",
        "vi",
        "explosive",
        0.95,
        "bom|min|thuoc no|luu dan|kip no|chat no",
        r"(?:cach |huong dan |lam sao (?:de )?)?(?:che tao|lam|tu che|san xuat|pha che) (?:ra )?(?:bom|min|thuoc no"
        r"|luu dan|kip no|bom xang|bom tu che|chat no)",
    ),
    (
        "weapons",
        "vi",
        "firearm",
        0.9,
        "sung|dan|giam thanh",
        r"(?:che tao|tu che|lam|lap rap|in 3d) (?:sung|sung tu che|sung ngan|sung truong|dan|dan duoc|ong giam thanh)"
        r"|sung tu che|sung khong so",
    ),
    (
        "weapons",
        "vi",
        "chemical",
        0.95,
        "khi doc|chat doc|sarin|ricin|vu khi",
        r"(?:che tao|dieu che|san xuat) (?:khi doc|chat doc than kinh|sarin|ricin|vu khi hoa hoc|vu khi sinh hoc)",
    ),
    (
        "drugs",
        "en",
        "synthesis",
        0.9,
        "meth|methamphetamine|fentanyl|heroin|cocaine|crack|lsd|mdma|ecstasy|ghb|dmt",
        rf"{_MAKE_EN} (?:meth|methamphetamine|crystal meth|fentanyl|heroin|cocaine|crack|lsd|mdma|ecstasy|ghb"
        rf"|dmt)|meth lab",
    ),
    (
        "drugs",
        "en",
        "buy",
        0.85,
        "meth|fentanyl|heroin|cocaine|crack|mdma|ecstasy",
        r"(?:buy|order|get|score|source) (?:some )?(?:meth|fentanyl|heroin|cocaine|crack|mdma|ecstasy) "
        r"(?:online|without|from|on the dark ?web)",
    ),
    (
        "drugs",
        "vi",
        "synthesis",
        0.9,
        "ma tuy|da|heroin|ke|thuoc lac|cocaine|fentanyl|meth",
        r"(?:che|dieu che|nau|san xuat|pha che|tong hop) (?:ma tuy|ma tuy da|da|heroin|ke|thuoc lac|cocaine"
        r"|fentanyl|meth)",
    ),
    (
        "drugs",
        "vi",
        "buy",
        0.85,
        "mua&ma tuy|heroin|ke|thuoc lac|cocaine|can sa",
        r"mua (?:ma tuy|ma tuy da|heroin|ke|thuoc lac|cocaine|can sa) (?:o dau|online|qua mang)",
    ),
    (
        "sexual_minors",
        "en",
        "minor_sexual",
        0.95,
        "child|children|kid|kids|minor|minors|underage|under|preteen|pre|teen|toddler|little|yo|y|year|years|old|"
        "schoolgirl|schoolboy|schooler|" + _AGES + "&sex|sexual|sexually|nude|nudes|naked|porn|pornographic|erotic|"
        "explicit|lewd|molest|intercourse",
        rf"{_CHILD_EN}\W+(?:\w+\W+){{0,4}}?{_SEX_EN}|{_SEX_EN}\W+(?:\w+\W+){{0,4}}?(?:with |of |about |involving "
        rf"|featuring |depicting )(?:a |an |my |the )?{_CHILD_EN}",
    ),
    (
        "sexual_minors",
        "en",
        "named",
        0.95,
        "csam|child porn|child pornography|cp|pedo|pedophile|pedophilia|loli|lolicon|jailbait",
        r"csam|child porn(?:ography)?|cp links?|pedo(?:phile|philia)?|loli(?:con)? (?:porn|hentai|nudes?)|jailbait",
    ),
    (
        "sexual_minors",
        "vi",
        "minor_sexual",
        0.95,
        "tre em|tre con|be gai|be trai|con nit|thanh nien|hoc sinh|tuoi&tinh duc|khieu dam|khoa than|anh nong"
        "|clip nong|"
        "dam o|sex|an ai",
        rf"{_CHILD_VI}\W+(?:\w+\W+){{0,4}}?{_SEX_VI}|{_SEX_VI}\W+(?:\w+\W+){{0,4}}?(?:voi |cua )?{_CHILD_VI}",
    ),
    ("sexual_minors", "vi", "named", 0.95, "au dam|xam hai|sex", r"au dam|xam hai tinh duc tre em|phim sex tre em"),
    (
        "sexual",
        "en",
        "explicit",
        0.85,
        "explicit|graphic|erotic|porn|pornographic|nsfw|dirty|nudes",
        r"(?:write|describe|tell|generate) (?:me )?(?:an? |some )?(?:explicit|graphic|erotic|porn(?:ographic)?"
        r"|nsfw|dirty) "
        r"(?:sex|story|scene|roleplay|fanfic)|(?:send|show) (?:me )?(?:your )?nudes",
    ),
    (
        "sexual",
        "vi",
        "explicit",
        0.85,
        "sex|nong|khieu dam|dam duc|18+|khoa than",
        r"(?:viet|ke|ta|tao) (?:cho (?:toi|tao|minh) )?(?:mot )?(?:truyen|canh|doan) (?:sex|nong|khieu dam"
        r"|dam duc|18\+)"
        r"|gui anh (?:nong|khoa than)",
    ),
    (
        "hate",
        "en",
        "dehumanise",
        0.9,
        "animals|vermin|parasites|subhuman|cockroaches|rats|disease|filth|trash|die|kill|exterminate|exterminated|gas|"
        "gassed|wiped|deported|eradicate",
        rf"(?:all |the |those |these )?{_GROUP_EN} (?:are|r) (?:(?:all |just |nothing but )?(?:animals|vermin|parasites"
        rf"|subhuman|cockroaches|rats|a disease|filth|trash))|{_GROUP_EN} (?:should|must|need to|deserve to) (?:all )?"
        rf"(?:die|be (?:killed|exterminated|gassed|wiped out|deported))|(?:kill|exterminate|gas|eradicate) (?:all|the) "
        rf"{_GROUP_EN}|subhuman {_GROUP_EN}",
    ),
    (
        "hate",
        "vi",
        "dehumanise",
        0.9,
        "suc vat|suc sinh|thu vat|sau bo|ky sinh|rac ruoi|dong vat|mat day|giet|diet|duoi|chet",
        rf"(?:bon |lu |tui |dam )?{_GROUP_VI} (?:la |deu la |chi la )?(?:lu )?(?:suc vat|suc sinh|thu vat|sau bo"
        rf"|ky sinh trung|rac ruoi|dong vat|mat day)|(?:giet|diet|tieu diet|duoi) (?:het|sach) (?:bon |lu )?{_GROUP_VI}"
        rf"|{_GROUP_VI} (?:nen|phai|dang) (?:chet|bi giet|bi tieu diet|bi duoi)",
    ),
)
_RULES = tuple(Rule(c, lang, name, pattern, score, keys) for c, lang, name, score, keys, pattern in _TABLE)


#: The categories ``content_detector`` knows, each with what it covers.
CONTENT_CATEGORIES: dict[str, str] = {
    "self_harm": "suicide or self-injury intent, acts and methods",
    "violence": "threats to hurt people, instructions to kill, poison, kidnap or torture, attack plans",
    "weapons": "making bombs, explosives, firearms, silencers, chemical and biological weapons",
    "drugs": "synthesising or buying hard drugs",
    "sexual_minors": "any sexual content involving minors",
    "sexual": "requests for explicit sexual content between adults",
    "hate": "dehumanising or eliminationist statements about a protected group",
}


def content_rules(categories: Collection[str] | None, languages: Sequence[str]) -> tuple[Rule, ...]:
    """The rules of ``categories`` (None: all) in ``languages``; unknown names are an error, not a no-op."""
    categories = CONTENT_CATEGORIES if categories is None else categories
    unknown = set(categories) - set(CONTENT_CATEGORIES)
    if unknown:
        raise ValueError(f"unknown content categories {sorted(unknown)}; known: {', '.join(CONTENT_CATEGORIES)}")
    bad = set(languages) - {"en", "vi"}
    if bad:
        raise ValueError(f"unsupported languages {sorted(bad)}; supported: en, vi")
    return tuple(r for r in _RULES if r.category in categories and r.lang in languages)


def content_detector(
    categories: Collection[str] | None = None, languages: Sequence[str] = ("en", "vi"), threshold: float = 0.5
) -> PatternDetector:
    """A detector of unsafe content of ``categories`` (see ``CONTENT_CATEGORIES``; None: all of them)
    in ``languages``; topic words alone score below the default ``threshold``.

    >>> [(f.type, f.rule) for f in content_detector(["self_harm"]).find("toi muon tu tu")]
    [('self_harm', 'content.vi.self_harm.intent')]
    """
    return PatternDetector(content_rules(categories, languages), "content", threshold)
