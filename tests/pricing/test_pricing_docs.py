"""docs/pricing.md lists exactly the models of the built-in table."""

import re
from pathlib import Path

from llmgw_kernel.pricing import load_table

DOC = Path(__file__).parent.parent.parent / "docs" / "pricing.md"


def test_docs_list_every_table_model_with_its_figures():
    rows = re.findall(r"^\| (\w+) \| `([^`]+)` \| ([\d.]+) \| ([\d.]+|—) \| ([\d.]+) \|", DOC.read_text(), re.M)
    table = load_table()
    assert {m for _, m, *_ in rows} == set(table.entries)
    for provider, model, inp, cached, out in rows:
        e = table.entries[model]
        assert (e.provider, e.input_per_1m, e.output_per_1m) == (provider, float(inp), float(out))
        assert e.cached_input_per_1m == (None if cached == "—" else float(cached))
    assert f"version {table.version}" in DOC.read_text()
