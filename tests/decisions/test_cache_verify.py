"""Semantic-cache verification, as a specification: which prompt pairs one cached answer may
serve (``verify`` is None) and which it must not (the reason), in both directions."""

from __future__ import annotations

import pytest

from llmgw_kernel.decisions.cache import Features, features, verify

#: (prompt a, prompt b, reason to refuse or None). Every pair is checked both ways round.
SPEC = [
    # -- numbers are values, with their units, in order ---------------------------------------
    ("Can I take 0.5 mg of lorazepam?", "Can I take 5.0 mg of lorazepam?", "numbers"),
    ("Can I take 1.5 mg of lorazepam?", "Can I take 5.1 mg of lorazepam?", "numbers"),
    ("Is a score of 37.5 good?", "Is a score of 5.37 good?", "numbers"),
    ("Take 2 tablets every 6 hours?", "Take 6 tablets every 2 hours?", "numbers"),
    ("Is 3 greater than 2?", "Is 2 greater than 3?", "numbers"),
    ("Is 5 mg of melatonin safe?", "Is 5 g of melatonin safe?", "numbers"),
    ("Is 37°C a fever?", "Is 37°F a fever?", "numbers"),
    ("Is -5 degrees cold?", "Is 5 degrees cold?", "numbers"),
    ("Is 5% interest good?", "Is 5 interest good?", "numbers"),
    ("Is one tablet enough?", "Are two tablets enough?", "numbers"),
    ("Which are the 1st and 2nd largest cities?", "Which are the 2nd and 1st largest cities?", "numbers"),
    ("Does the iPhone 15 have USB-C?", "Does the iPhone have USB-C?", "numbers"),
    ("Is 5.0 mg of melatonin safe?", "Is 5 mg of melatonin safe?", None),
    ("Is 5mg of melatonin safe?", "Is 5 milligrams of melatonin safe?", None),
    ("Is 0.50 mg a lot?", "Is .5 mg a lot?", None),
    ("Towns with over 1,000 people", "Towns with over 1000 people", None),
    ("Is a 5% raise good?", "Is a five percent raise good?", None),
    ("Is $5 a fair tip?", "Is 5 USD a fair tip?", None),
    ("Is 37°C a fever?", "Is 37 °C a fever?", None),
    ("What happens at twenty-five years?", "What happens at 25 years?", None),
    ("Can 5 million people fit?", "Can 5,000,000 people fit?", None),
    ("How to care for a 3 year old child?", "How to care for a 3-year-old child?", None),
    ("Decorate with a 1980's theme", "Decorate with a 1980s theme", None),
    ("I turn 20 soon. What should I do at 20?", "What should I do when I turn 20?", None),
    # -- "one" as a pronoun is not the number 1 ----------------------------------------------
    ("Which one is better, Python or Java?", "Which is better, Python or Java?", None),
    ("How does one learn Python?", "How do you learn Python?", None),
    ("What laptop should one buy?", "What laptop should I buy?", None),
    ("Is this the best one?", "Is this the best?", None),
    ("What is the one thing you regret?", "What is one thing you regret?", None),
    # -- possessives and plurals name the same entity ------------------------------------------
    ("What are the symptoms of Behcet's disease?", "What are symptoms of Behcet disease?", None),
    ("Are SSRIs safe during pregnancy?", "Is an SSRI safe during pregnancy?", None),
    ("What will be Hillary Clinton's India policy?", "What policy will Hillary Clinton have on India?", None),
    ("What is the population of Vienna?", "What is the population of Paris?", "entities"),
    # -- negation; "without X" is matched by "without X", "X-free", "with no X" or X negated ----
    ("Why is the sky blue?", "Why isn't the sky blue?", "negation"),
    ("Is aspirin safe for children?", "Is aspirin not safe for children?", "negation"),
    ("Which foods have no sugar?", "Which foods have sugar?", "negation"),
    ("Can I take ibuprofen with alcohol?", "Can I take ibuprofen without alcohol?", "negation"),
    ("How do I make bread without yeast?", "How do I make bread with yeast?", "negation"),
    ("How do I make bread without yeast?", "How do I make yeast-free bread?", None),
    ("How do I make bread without yeast?", "How do I make bread with no yeast?", None),
    ("Who would win a war without nukes?", "Who would win a war if there were no nukes?", None),
    ("How do I lose weight without exercise?", "How do I lose weight if I don't exercise?", None),
    ("Is sugar-free coffee healthy?", "Is coffee with no sugar healthy?", None),
    ("How do I undo the last git commit?", "How do I undo the last git commit without losing my changes?", "negation"),
    ("How do I make bread without yeast?", "Give me a bread recipe that uses yeast", "negation"),
    ("Why can't I sleep?", "Why can I not sleep?", None),
    ("Is it not only fast but also cheap?", "Is it fast and cheap?", None),
    # -- Vietnamese (accents folded): không/chẳng/chưa/đừng negate; a final không/chưa asks ----
    ("Tôi có thể uống thuốc này không?", "Tôi có thể uống thuốc này?", None),
    ("Bạn đã ăn cơm chưa?", "Bạn đã ăn cơm?", None),
    ("Tôi không thể uống thuốc này.", "Tôi có thể uống thuốc này.", "negation"),
    ("Uống 2 viên mỗi 6 giờ được không?", "Uống 6 viên mỗi 2 giờ được không?", "numbers"),
    ("Uống 0,5 mg có an toàn không?", "Uống 5 mg có an toàn không?", "numbers"),
    ("Chuyển 5 km sang dặm", "Chuyển 8 km sang dặm", "numbers"),
    # -- relations read the other way round --------------------------------------------------
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?", "word order"),
    ("How do I convert Celsius to Fahrenheit?", "How can I convert celsius into fahrenheit?", None),
]


@pytest.mark.parametrize(("a", "b", "why"), SPEC, ids=[f"{a} | {b}" for a, b, _ in SPEC])
def test_verification_spec(a: str, b: str, why: str | None) -> None:
    assert verify(features(a), features(b)) == why
    assert verify(features(b), features(a)) == why


def test_features_roundtrip_through_json() -> None:
    f = features("Take 2 tablets (0.5 mg) every 6 hours without food, not 3, Ms Smith's SSRIs; sugar-free")
    assert Features.from_json(f.to_json()) == f
    assert f.version == 2 and f.privatives == 2 and f.absent and f.negations == 1


def test_logged_version_1_features_still_compare_among_themselves() -> None:
    """Logs written before numbers had values keep replaying as they were decided live: two
    version-1 features compare by the rules of version 1 (numbers as a set, "without" counted
    as a negation); a version-1 feature never answers a version-2 query."""
    old = {"n": [11, 22], "g": 1, "e": [], "w": [5, 6], "p": []}
    same = Features.from_json(old)
    assert same.version == 1 and Features.from_json(old).to_json() == old
    assert verify(same, Features.from_json({**old, "w": [5]})) is None
    assert verify(same, Features.from_json({**old, "n": [11]})) == "numbers"
    assert verify(same, Features.from_json({**old, "g": 0})) == "negation"
    assert verify(features("Is 7 prime?"), same) == "version"
    assert verify(same, features("Is 7 prime?")) == "version"
