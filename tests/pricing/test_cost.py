"""decisions/cost.py with the table: policy wins, then the table; cached input; worst case."""

from __future__ import annotations

import pytest

from llmgw_kernel import load_policy
from llmgw_kernel.decisions.cost import (
    cached_tokens_of,
    cost_usd,
    price_of,
    price_source,
    resolve_price,
    worst_case_usd,
)
from llmgw_kernel.pricing import load_table


def _policy(pricing):
    return load_policy(
        {
            "providers": {"o": {"kind": "demo"}},
            "routes": {"m": {"targets": [{"provider": "o", "model": "gpt-4o"}]}},
            "pricing": pricing,
        }
    )


def test_policy_price_wins_over_the_table_provider_model_key_first():
    p = _policy(
        {"o/gpt-4o": {"input_per_1m": 1, "output_per_1m": 2}, "gpt-4o": {"input_per_1m": 3, "output_per_1m": 4}}
    )
    assert cost_usd(p, "o/gpt-4o", 1_000_000, 1_000_000) == 3.0
    assert cost_usd(p, "other/gpt-4o", 1_000_000, 1_000_000) == 7.0
    assert price_source(p, "o/gpt-4o") == "policy"


def test_the_table_prices_what_the_policy_does_not():
    p = _policy({})
    version = load_table().version
    assert price_source(p, "o/gpt-4o-mini") == f"table:{version}"
    assert cost_usd(p, "o/gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd(p, "o/claude-sonnet-4-20250514", 1000, 1000) == pytest.approx(0.018)
    # price_of stays the policy's own price (replay estimates list targets the policy does not price)
    assert price_of(p, "o/gpt-4o-mini") is None


def test_unknown_price_is_none_never_zero():
    p = _policy({})
    assert cost_usd(p, "o/in-house-model", 1000, 1000) is None
    assert worst_case_usd(p, "o/in-house-model", 1000, 1000) is None
    assert price_source(p, "o/in-house-model") == "none"
    assert cost_usd(p, "o/gpt-4o", None, None) is None and cost_usd(p, None, 10, 10) is None


def test_cached_prompt_tokens_use_the_cached_input_price():
    p = _policy({})
    # gpt-4o: 2.50 input, 1.25 cached input, 10 output per 1M; 800 of the 1000 prompt tokens were cached
    assert cost_usd(p, "o/gpt-4o", 1000, 100, cached_tokens=800) == pytest.approx(
        (200 * 2.5 + 800 * 1.25 + 100 * 10) / 1e6
    )
    assert cost_usd(p, "o/gpt-4o", 1000, 100, cached_tokens=0) == cost_usd(p, "o/gpt-4o", 1000, 100)
    # more cached than prompt tokens is clamped to the prompt
    assert cost_usd(p, "o/gpt-4o", 1000, 0, cached_tokens=5000) == pytest.approx(1000 * 1.25 / 1e6)


def test_no_cached_price_bills_cached_tokens_at_the_input_price():
    policy_priced = _policy({"gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10}})
    assert cost_usd(policy_priced, "o/gpt-4o", 1000, 0, cached_tokens=800) == pytest.approx(0.0025)
    table_without_cached = _policy({})
    assert resolve_price(table_without_cached, "o/gemini-2.5-flash").cached_input_per_1m is None
    assert cost_usd(table_without_cached, "o/gemini-2.5-flash", 1000, 0, cached_tokens=800) == pytest.approx(0.0003)


def test_cached_tokens_of_reads_openai_usage():
    assert cached_tokens_of({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 4}}) == 4
    assert cached_tokens_of({"prompt_tokens": 10}) is None
    assert cached_tokens_of({"prompt_tokens_details": None}) is None
    assert cached_tokens_of(None) is None


def test_worst_case_is_the_prompt_at_input_plus_max_tokens_at_output():
    p = _policy({"gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10}})
    assert worst_case_usd(p, "o/gpt-4o", 1000, 500) == pytest.approx(0.0075)
    assert worst_case_usd(p, "o/gpt-4o", 1000, None) is None
    assert worst_case_usd(p, "o/gpt-4o", 1000, 500) >= cost_usd(p, "o/gpt-4o", 1000, 123)
