"""docs/providers.md holds exactly the parameter tables the native adapters' PARAMS render."""

from __future__ import annotations

from pathlib import Path

from llmgw_kernel.policy.model import ProviderKind
from llmgw_kernel.providers.docs import blocks, native_adapters, render_params_markdown, update_doc

DOC = Path(__file__).parents[2] / "docs" / "providers.md"


def test_every_native_adapter_has_a_table_in_the_docs():
    assert set(native_adapters()) == {"anthropic", "gemini"}
    assert sorted(blocks(DOC.read_text())) == sorted(native_adapters())


def test_the_tables_are_what_the_adapters_do():
    text = DOC.read_text()
    assert update_doc(text) == text, "regenerate: python -m llmgw_kernel.providers.docs docs/providers.md"


def test_every_kind_has_a_section():
    text = DOC.read_text()
    for kind in ProviderKind.__args__:
        assert f"\n## {kind}\n" in text, kind


def test_a_table_names_every_field_and_what_happens_to_it():
    table = render_params_markdown("gemini")
    assert "| `logprobs` | refused (400) |" in table
    assert "| `top_p` | → `generationConfig.topP` | range [0, 1] |" in table
    assert "| `parallel_tool_calls` | dropped |" in table
