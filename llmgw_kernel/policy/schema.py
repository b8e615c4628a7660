"""The policy's JSON Schema (``llmgw policy schema``; also shipped as schema/policy.schema.json)."""

from __future__ import annotations

from typing import Any

from .model import Policy


def policy_json_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "llmgw policy"
    return schema
