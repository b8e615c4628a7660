"""The demo provider's embeddings as the openai SDK reads them: ``encoding_format`` and
``dimensions`` are honoured as OpenAI does.

The SDK asks for ``base64`` when the caller names no format and decodes it; a caller who asks
for ``base64`` itself gets the string as it came and decodes it (``np.frombuffer(base64.b64decode(
e), dtype="<f4")``, the documented way). The demo answered floats whatever was asked, so that
code failed on a list (``TypeError``), and ``dimensions=8`` gave 384 values, which a vector
column of 8 refuses. Real `llmgw serve` (demo route), the official openai SDK.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator

import openai
import pytest
from conftest import DEMO_POLICY, health_or_none, serve_demo, sigterm_and_wait, until


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    tmp = tmp_path_factory.mktemp("demo-embeddings")
    server, url = serve_demo(tmp, tmp / "data", DEMO_POLICY)
    try:
        until("the demo gateway answers /health", lambda: health_or_none(url), timeout=120)
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="vk-any", max_retries=0)
    finally:
        sigterm_and_wait(server, 30)


def _floats(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_base64_asked_for_is_base64(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model="demo", input="hello", encoding_format="float").data[0].embedding
    encoded = client.embeddings.create(model="demo", input="hello", encoding_format="base64").data[0].embedding
    assert isinstance(encoded, str), f"base64 was asked for, {type(encoded).__name__} came"
    assert _floats(encoded) == pytest.approx(floats, abs=1e-6)
    default = client.embeddings.create(model="demo", input="hello").data[0].embedding  # the SDK's base64, decoded
    assert default == pytest.approx(floats, abs=1e-6)


@pytest.mark.parametrize("fmt", ["float", "base64"])
def test_dimensions_shorten_and_renormalise(client: openai.OpenAI, fmt: str) -> None:
    full = client.embeddings.create(model="demo", input="hello", encoding_format="float").data[0].embedding
    short = client.embeddings.create(model="demo", input="hello", dimensions=8, encoding_format=fmt).data[0].embedding
    values = _floats(short) if fmt == "base64" else short  # type: ignore[arg-type]
    assert len(values) == 8 and math.isclose(math.hypot(*values), 1.0, abs_tol=1e-4)
    norm = math.hypot(*full[:8])
    assert values == pytest.approx([v / norm for v in full[:8]], abs=1e-4)


@pytest.mark.parametrize(
    ("field", "value"), [("dimensions", 0), ("dimensions", 385), ("dimensions", "8"), ("encoding_format", "int8")]
)
def test_a_value_it_cannot_honour_is_a_400_naming_it(client: openai.OpenAI, field: str, value: object) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.embeddings.create(model="demo", input="hello", extra_body={field: value})
    assert exc.value.param == field, exc.value.body
