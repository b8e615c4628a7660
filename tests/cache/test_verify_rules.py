"""Verification rules that cost recall for nothing (measured with
``benchmarks/cache_verify_devsets.py --ablate``), fixed, with the pairs that showed them."""

from __future__ import annotations

from llmgw_kernel.decisions.cache import features, verify


def test_an_acronyms_possessive_is_the_acronym():
    # "CPU's" lost its possessive and then, read as a plural acronym, its last letter ("cp"):
    # the entity rule then rejected this MeanCache paraphrase pair
    assert verify(features("what is the CPU's function"), features("role of the CPU")) is None
    assert verify(features("What is the GPU's memory?"), features("How much memory does the GPU have?")) is None
    # a plural acronym is still the acronym; another acronym is still another entity
    assert verify(features("Which SSRIs help?"), features("Which SSRI helps?")) is None
    assert verify(features("what is the CPU's function"), features("role of the GPU")) == "entities"
