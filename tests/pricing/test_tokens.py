"""Offline token counting: exact for OpenAI models (bpe-openai), marked estimates otherwise."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from llmgw_kernel.pricing import count_tokens, encoding_name
from llmgw_kernel.pricing import tokens as tokens_mod

HAVE_BPE = tokens_mod._encoding("o200k_base") is not None


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("openai/gpt-4.1-nano", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("ft:gpt-4o-mini:org::abc", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("claude-sonnet-4", None),
        ("gemini-2.5-flash", None),
        ("mistral-large-latest", None),
    ],
)
def test_encoding_by_model(model, encoding):
    assert encoding_name(model) == encoding


@pytest.mark.skipif(not HAVE_BPE, reason="bpe-openai not installed")
def test_openai_counts_are_exact_and_offline():
    # reference counts from tiktoken's own encodings
    assert count_tokens("hello world", "gpt-4o") == (2, False)
    assert count_tokens("tiktoken is great!", "gpt-3.5-turbo") == (6, False)
    assert count_tokens("<|endoftext|> is just text here", "gpt-4o")[1] is False  # no special-token error


def test_other_providers_are_estimated_chars_over_four():
    assert count_tokens("x" * 10, "claude-sonnet-4") == (3, True)
    assert count_tokens("", "gemini-2.5-pro") == (0, True)


def test_messages_add_the_chat_overhead():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello world", "name": "ann"}]
    n, estimated = count_tokens(messages, "claude-3-5-haiku")
    assert estimated and n == 3 + 2 * 3 + 1 + sum(
        -(-len(t) // 4) for t in ["system", "Be brief.", "user", "hello world", "ann"]
    )
    if HAVE_BPE:
        n, estimated = count_tokens(messages, "gpt-4o")
        assert not estimated and n > 3 + 2 * 3
    # an image part cannot be counted from text: the total is an estimate
    with_image = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "x"}}],
        }
    ]
    assert count_tokens(with_image, "gpt-4o")[1] is True


def test_missing_package_falls_back_to_estimates(monkeypatch):
    monkeypatch.setattr(tokens_mod, "_encoding", lambda name: None)
    assert count_tokens("hello world", "gpt-4o") == (3, True)


def test_the_package_is_imported_lazily():
    code = "import llmgw_kernel.pricing, llmgw_kernel.decisions.cost, sys; print('bpe_openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.skipif(not HAVE_BPE, reason="bpe-openai not installed")
def test_a_1kb_prompt_costs_well_under_a_millisecond():
    text = ("The quick brown fox jumps over the lazy dog; 12345 élan 東京. " * 20)[:1024]
    count_tokens(text, "gpt-4o")
    n = 200
    t = time.perf_counter()
    for _ in range(n):
        count_tokens(text, "gpt-4o")
    assert (time.perf_counter() - t) / n < 1e-3
