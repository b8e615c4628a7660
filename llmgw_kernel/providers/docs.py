"""The parameter tables of ``docs/providers.md``, rendered from the native adapters' ``PARAMS``.

Each native adapter (a :class:`~.engine.NativeAdapter` in the registry) has a block in the
doc between ``<!-- params:KIND:begin -->`` and ``<!-- params:KIND:end -->``; a test checks
that every block is exactly what :func:`render_params_markdown` makes of the adapter's table,
so the docs and the behaviour cannot drift. Regenerate the blocks in place with
``python -m llmgw_kernel.providers.docs docs/providers.md``.
"""

from __future__ import annotations

import importlib
import re
import sys

from . import _REGISTRY
from .engine import GATEWAY_FIELDS, NativeAdapter, params_table

_BLOCK = re.compile(r"(<!-- params:(?P<kind>[a-z0-9_-]+):begin -->\n).*?(<!-- params:(?P=kind):end -->)", re.S)


def native_adapters() -> dict[str, type[NativeAdapter]]:
    """Registry kinds whose adapter is table-driven, in registry order."""
    out = {}
    for kind, ref in _REGISTRY.items():
        module, _, name = ref.partition(":")
        cls = getattr(importlib.import_module(module), name)
        if isinstance(cls, type) and issubclass(cls, NativeAdapter):
            out[kind] = cls
    return out


def render_params_markdown(kind: str) -> str:
    """The Markdown table for ``kind``'s parameters, and the rule for fields it does not list."""
    rows = ["| OpenAI field | what happens | note |", "|---|---|---|"]
    for name, what, note in params_table(native_adapters()[kind]):
        rows.append(f"| `{name}` | {_cell(what)} | {_cell(note)} |")
    handled = ", ".join(f"`{f}`" for f in sorted(GATEWAY_FIELDS))
    rows.append("")
    rows.append(f"Handled by the gateway itself: {handled}. Any other field is refused (400 naming it).")
    return "\n".join(rows) + "\n"


def update_doc(text: str) -> str:
    """``text`` with every ``params`` block replaced by the freshly rendered table."""
    return _BLOCK.sub(lambda m: m.group(1) + render_params_markdown(m.group("kind")) + m.group(3), text)


def blocks(text: str) -> list[str]:
    """The kinds that have a ``params`` block in ``text``."""
    return [m.group("kind") for m in _BLOCK.finditer(text)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m llmgw_kernel.providers.docs docs/providers.md", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        text = f.read()
    missing = sorted(set(native_adapters()) - set(blocks(text)))
    if missing:
        print(f"no params block for: {', '.join(missing)}", file=sys.stderr)
        return 1
    with open(argv[0], "w", encoding="utf-8") as f:
        f.write(update_doc(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
