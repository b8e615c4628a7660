"""Turn a pricing file the user supplies into a policy ``pricing:`` section.

Two published formats are read (nothing is downloaded):

* LiteLLM's ``model_prices_and_context_window.json``: one object per model with
  ``input_cost_per_token`` / ``output_cost_per_token`` / ``cache_read_input_token_cost`` in
  **USD per token**, plus ``litellm_provider`` and ``mode``.
* Portkey's open-source models repo, ``pricing/<provider>.json``: one object per model with
  ``pricing_config.pay_as_you_go.{request_token,response_token,cache_read_input_token}.price``
  in **US cents per token** (a ``default`` entry holds the provider's fallback, often zeros).

Both become USD per 1M tokens: LiteLLM x 1e6, Portkey x 1e4.

>>> render_pricing_yaml({"gpt-4o": {"input_per_1m": 2.5, "output_per_1m": 10.0}})
'pricing:\\n  gpt-4o: {input_per_1m: 2.5, output_per_1m: 10.0}\\n'
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

Pricing = dict[str, dict[str, float]]

_LITELLM_MODES = frozenset({"chat", "completion", "embedding", "responses"})


def _per_1m(value: Any, factor: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return round(value * factor, 9)


def _entry(inp: float, out: float, cached: float | None, include_cached: bool) -> dict[str, float]:
    row = {"input_per_1m": inp, "output_per_1m": out}
    if include_cached and cached is not None:
        row["cached_input_per_1m"] = cached
    return row


def import_litellm(path: str | Path, providers: Iterable[str] | None = None, include_cached: bool = False) -> Pricing:
    """Policy pricing from a LiteLLM ``model_prices_and_context_window.json``.

    Only chat/completion/embedding/responses models with an input and an output cost (an
    embedding without an output cost is 0 out). ``providers`` keeps those ``litellm_provider``
    values only. A key prefixed with its own provider (``gemini/gemini-2.5-pro``) is keyed by
    the bare model name unless another entry already has that name.
    ``include_cached`` adds ``cached_input_per_1m`` (the policy must accept that field).
    """
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    keep = set(providers) if providers is not None else None
    out: Pricing = {}
    # bare names first, so "gpt-4o" (openai) keeps its name and "azure/gpt-4o" stays prefixed
    for key in sorted(doc, key=lambda k: ("/" in k, k)):
        spec = doc[key]
        if key == "sample_spec" or not isinstance(spec, Mapping):
            continue
        provider = str(spec.get("litellm_provider") or "")
        if keep is not None and provider not in keep:
            continue
        mode = spec.get("mode")
        if mode is not None and mode not in _LITELLM_MODES:
            continue
        inp = _per_1m(spec.get("input_cost_per_token"), 1e6)
        outp = _per_1m(spec.get("output_cost_per_token"), 1e6)
        if outp is None and mode == "embedding" and "output_cost_per_token" not in spec:
            outp = 0.0
        if inp is None or outp is None:
            continue
        name = key
        if "/" in key and key.split("/", 1)[0] == provider and key.split("/", 1)[1] not in out:
            name = key.split("/", 1)[1]
        out[name] = _entry(inp, outp, _per_1m(spec.get("cache_read_input_token_cost"), 1e6), include_cached)
    return dict(sorted(out.items()))


def _cents_rate(rates: Mapping[str, Any], field: str) -> float | None:
    return _per_1m((rates.get(field) or {}).get("price"), 1e4)  # US cents per token -> USD per 1M


def _portkey_file(path: Path, include_cached: bool) -> Pricing:
    doc = json.loads(path.read_text(encoding="utf-8"))
    out: Pricing = {}
    for model, spec in doc.items():
        if model == "default" or not isinstance(spec, Mapping):
            continue
        rates = (spec.get("pricing_config") or {}).get("pay_as_you_go") or {}
        inp, outp = _cents_rate(rates, "request_token"), _cents_rate(rates, "response_token")
        if inp is None or outp is None:  # never fall back to "default": it is often a zero placeholder
            continue
        out[model] = _entry(inp, outp, _cents_rate(rates, "cache_read_input_token"), include_cached)
    return out


def import_portkey(path_or_dir: str | Path, include_cached: bool = False) -> Pricing:
    """Policy pricing from Portkey's ``pricing/<provider>.json`` (a file, or a folder of them).

    Models are keyed by name; from a folder, a name priced by two providers is keyed
    ``<provider>/<model>`` for each (the provider being the file's name). Models without their
    own request and response token prices (image, audio-only) are left out.
    """
    root = Path(path_or_dir)
    if root.is_file():
        return dict(sorted(_portkey_file(root, include_cached).items()))
    folder = root / "pricing" if (root / "pricing").is_dir() else root
    per_provider = {f.stem: _portkey_file(f, include_cached) for f in sorted(folder.glob("*.json"))}
    seen: dict[str, int] = {}
    for prices in per_provider.values():
        for model in prices:
            seen[model] = seen.get(model, 0) + 1
    out: Pricing = {}
    for provider, prices in per_provider.items():
        for model, row in prices.items():
            out[model if seen[model] == 1 else f"{provider}/{model}"] = row
    return dict(sorted(out.items()))


def render_pricing_yaml(mapping: Mapping[str, Mapping[str, float]]) -> str:
    """A policy ``pricing:`` section, one model a line, to paste into a policy file."""
    lines = ["pricing:"]
    for model in sorted(mapping):
        key = yaml.safe_dump(model, default_style=None).removesuffix("\n...\n").strip()
        row = ", ".join(f"{k}: {v!r}" for k, v in mapping[model].items())
        lines.append(f"  {key}: {{{row}}}")
    return "\n".join(lines) + "\n"


def main_import(argv: Sequence[str] | None = None) -> int:
    """``llmgw pricing import --format litellm|portkey FILE``: print a policy pricing section."""
    parser = argparse.ArgumentParser(prog="llmgw pricing import", description=main_import.__doc__)
    parser.add_argument("--format", choices=("litellm", "portkey"), required=True)
    parser.add_argument("file", help="LiteLLM JSON file, or Portkey pricing JSON file or folder")
    parser.add_argument("--provider", action="append", help="litellm only: keep this litellm_provider (repeatable)")
    parser.add_argument("--model", action="append", help="keep only this model key (repeatable)")
    parser.add_argument("--include-cached", action="store_true", help="also emit cached_input_per_1m")
    args = parser.parse_args(argv)
    try:
        if args.format == "litellm":
            mapping = import_litellm(args.file, args.provider, args.include_cached)
        else:
            mapping = import_portkey(args.file, args.include_cached)
    except (OSError, ValueError) as e:
        print(f"llmgw pricing import: {e}", file=sys.stderr)
        return 2
    if args.model:
        mapping = {k: v for k, v in mapping.items() if k in set(args.model)}
    if not mapping:
        print("llmgw pricing import: no priced models found", file=sys.stderr)
        return 1
    sys.stdout.write(render_pricing_yaml(mapping))
    return 0
