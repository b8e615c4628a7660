"""Importers on hand-written files in LiteLLM's and Portkey's published formats (units!)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmgw_kernel import load_policy
from llmgw_kernel.pricing import import_litellm, import_portkey, main_import, render_pricing_yaml

FIXTURES = Path(__file__).parent / "fixtures"
LITELLM = FIXTURES / "litellm_prices.json"
PORTKEY = FIXTURES / "portkey"


def test_litellm_usd_per_token_becomes_usd_per_1m():
    prices = import_litellm(LITELLM)
    assert prices["gpt-4o"] == {"input_per_1m": 2.5, "output_per_1m": 10.0}
    assert prices["gpt-4o-mini"] == {"input_per_1m": 0.15, "output_per_1m": 0.6}
    assert prices["claude-3-5-haiku-20241022"] == {"input_per_1m": 0.8, "output_per_1m": 4.0}
    assert prices["text-embedding-3-small"] == {"input_per_1m": 0.02, "output_per_1m": 0.0}
    # the key prefixed with its own provider loses the prefix; another provider's keeps it
    assert prices["gemini-2.5-flash"] == {"input_per_1m": 0.3, "output_per_1m": 2.5}
    assert prices["azure/gpt-4o"] == {"input_per_1m": 2.75, "output_per_1m": 11.0}
    # sample_spec, image and audio models are not token-priced
    assert not {"sample_spec", "dall-e-3", "whisper-1"} & set(prices)


def test_litellm_provider_filter_and_cached_prices():
    prices = import_litellm(LITELLM, providers=["openai"], include_cached=True)
    assert set(prices) == {"gpt-4o", "gpt-4o-mini", "text-embedding-3-small"}
    assert prices["gpt-4o"]["cached_input_per_1m"] == 1.25
    assert prices["gpt-4o-mini"]["cached_input_per_1m"] == 0.075


def test_portkey_cents_per_token_becomes_usd_per_1m():
    prices = import_portkey(PORTKEY / "pricing" / "openai.json")
    assert prices == {
        "gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10.0},
        "gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6},
    }  # "default" (zeros) and the image model are left out
    cached = import_portkey(PORTKEY / "pricing" / "openai.json", include_cached=True)
    assert cached["gpt-4o"]["cached_input_per_1m"] == 1.25


def test_portkey_folder_qualifies_names_two_providers_price():
    prices = import_portkey(PORTKEY)  # the repo root: its pricing/ folder is read
    assert prices["openai/gpt-4o"] == {"input_per_1m": 2.5, "output_per_1m": 10.0}
    assert prices["azure-openai/gpt-4o"] == {"input_per_1m": 2.75, "output_per_1m": 11.0}
    assert prices["gpt-4o-mini"]["input_per_1m"] == 0.15
    assert prices["text-embedding-3-large"] == {"input_per_1m": 0.13, "output_per_1m": 0.0}
    assert "gpt-4o" not in prices


def test_rendered_section_loads_as_policy_pricing():
    text = render_pricing_yaml(import_litellm(LITELLM))
    doc = yaml.safe_load(text)
    policy = load_policy(
        {
            "providers": {"o": {"kind": "demo"}},
            "routes": {"m": {"targets": [{"provider": "o", "model": "gpt-4o"}]}},
            "pricing": doc["pricing"],
        }
    )
    assert policy.pricing["gpt-4o"].input_per_1m == 2.5
    assert policy.pricing["azure/gpt-4o"].output_per_1m == 11.0


def test_main_import_prints_a_pricing_section(capsys):
    assert main_import(["--format", "portkey", str(PORTKEY), "--model", "gpt-4o-mini"]) == 0
    assert capsys.readouterr().out == "pricing:\n  gpt-4o-mini: {input_per_1m: 0.15, output_per_1m: 0.6}\n"
    assert main_import(["--format", "litellm", str(FIXTURES / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main_import(["--format", "csv", str(LITELLM)])


def test_the_cli_prints_a_pricing_section_the_policy_accepts(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from llmgw_kernel import load_policy

    fixture = Path(__file__).parent / "fixtures" / "litellm_prices.json"
    out = subprocess.run(
        [sys.executable, "-m", "llmgw_kernel", "pricing", "import", "--format", "litellm", str(fixture), "--include-cached"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    doc = yaml.safe_load(out)
    policy = load_policy({"providers": {"d": {"kind": "demo"}},
                          "routes": {"m": {"targets": [{"provider": "d", "model": "gpt-4o"}]}}, **doc})  # fmt: skip
    assert policy.pricing["gpt-4o"].cached_input_per_1m == 1.25
