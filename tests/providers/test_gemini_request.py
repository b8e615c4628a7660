"""OpenAI request pieces → Gemini pieces, case by case (no server needed)."""

from __future__ import annotations

import pytest

from llmgw_kernel.providers import UpstreamError
from llmgw_kernel.providers._gemini_request import convert_tool_choice, convert_tools, gemini_schema

SCHEMAS = [
    ("subset keys pass, the rest is dropped",
     {"type": "object", "$schema": "x", "additionalProperties": False, "title": "T", "properties": {"a": {"type": "integer", "minimum": 1}}},
     {"type": "object", "title": "T", "properties": {"a": {"type": "integer", "minimum": 1}}}),
    ("type list with null → nullable",
     {"type": ["string", "null"], "maxLength": 3}, {"type": "string", "nullable": True, "maxLength": 3}),
    ("several types → anyOf",
     {"type": ["string", "integer"]}, {"anyOf": [{"type": "string"}, {"type": "integer"}]}),
    ("oneOf → anyOf; anyOf with null → nullable",
     {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
     {"anyOf": [{"type": "string"}, {"type": "integer"}], "nullable": True}),
    ("string const → enum; non-string enum dropped",
     {"type": "object", "properties": {"k": {"const": "x"}, "n": {"type": "integer", "enum": [1, 2]}}},
     {"type": "object", "properties": {"k": {"enum": ["x"]}, "n": {"type": "integer"}}}),
    ("formats Gemini does not know are dropped",
     {"type": "object", "properties": {"u": {"type": "string", "format": "uri"}, "t": {"type": "string", "format": "date-time"}}},
     {"type": "object", "properties": {"u": {"type": "string"}, "t": {"type": "string", "format": "date-time"}}}),
    ("local refs are inlined, the ref's siblings win",
     {"definitions": {"P": {"type": "object", "properties": {"x": {"type": "number"}}}},
      "type": "array", "items": {"$ref": "#/definitions/P", "description": "a point"}},
     {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "number"}}, "description": "a point"}}),
    ("single allOf is merged",
     {"allOf": [{"type": "string"}], "description": "d"}, {"type": "string", "description": "d"}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "schema", "expected"), SCHEMAS, ids=[s[0] for s in SCHEMAS])
def test_gemini_schema(case, schema, expected):
    assert gemini_schema(schema, "p") == expected


@pytest.mark.parametrize("schema", [
    {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"},
    {"type": "object", "properties": {"x": {"$ref": "https://example.com/schema.json"}}},
])  # fmt: skip
def test_schemas_gemini_cannot_express_are_refused_naming_the_field(schema):
    with pytest.raises(UpstreamError) as exc:
        gemini_schema(schema, "tools[0].function.parameters")
    assert exc.value.kind == "unsupported" and exc.value.param == "tools[0].function.parameters"


def test_a_function_without_arguments_has_no_parameters():
    tools = [{"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}]
    assert convert_tools(tools) == [{"functionDeclarations": [{"name": "now"}]}]


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}),
    ("required", {"mode": "ANY"}),
    ("none", {"mode": "NONE"}),
    ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
])  # fmt: skip
def test_tool_choice(choice, config):
    assert convert_tool_choice(choice) == {"functionCallingConfig": config}
