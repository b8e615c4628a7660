"""Policy model pieces for guardrails (docs/guardrails.md): the ``guardrails`` section and a
route's override of it.

```yaml
guardrails:
  input:
    - {type: pii, action: redact, languages: [en, vi]}
    - {type: injection, action: flag}
  output:
    - {type: pii, action: redact}
    - {type: content, action: block, categories: [self_harm, violence]}
```

A check names *what* to look for (``type`` and its options) and *what to do* when it is
found (``action``); detectors are built from these settings when the policy loads
(:mod:`llmgw_kernel.guardrails.compile`), so an unknown entity, category or rule module is a
validation error with its path, never a surprise at the first request.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .conditions import RULE_PATTERN

GuardrailType = Literal["pii", "content", "injection", "custom"]
GuardrailAction = Literal["redact", "block", "flag"]
GuardrailLanguage = Literal["en", "vi"]
#: characters of a stream's text held back (per choice and field) so a value split across
#: chunks is seen whole before any of it is sent (docs/guardrails.md#streams)
DEFAULT_HOLDBACK_CHARS = 64


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class GuardrailCheck(_Frozen):
    """One check: a detector (``type`` and its options) and the ``action`` its findings get."""

    type: GuardrailType = Field(description="pii | content | injection | custom (rule: module:function)")
    action: GuardrailAction = Field(
        description="redact: replace each finding with a typed placeholder (<PHONE_NUMBER_1>); "
        "block: refuse (400) naming the check, rule and type; flag: serve and record"
    )
    name: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:\-\[\]]+$")] | None = Field(
        default=None,
        description="Names the check in errors, the log and metrics (default: <stage>[i]:<type>, e.g. input[0]:pii)",
    )
    languages: Annotated[list[GuardrailLanguage], Field(min_length=1)] = Field(
        default_factory=lambda: list[GuardrailLanguage](["en", "vi"]),
        description="Languages whose formats, context words and word lists apply (pii, content, injection)",
    )
    entities: Annotated[list[str], Field(min_length=1)] | None = Field(
        default=None, description="pii only: the entity types to find (absent: all; docs/guardrails-detection.md)"
    )
    categories: Annotated[list[str], Field(min_length=1)] | None = Field(
        default=None, description="content only: the categories to find (absent: all)"
    )
    threshold: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.5, description="Findings scored below this are ignored"
    )
    rule: Annotated[str, Field(pattern=RULE_PATTERN)] | None = Field(
        default=None,
        description="custom only: module:function in the policy's folder, called with one text and "
        "returning Findings (llmgw_kernel.guardrails.findings)",
    )

    @model_validator(mode="after")
    def _options_fit_the_type(self) -> GuardrailCheck:
        if self.type == "custom" and self.rule is None:
            raise ValueError("type: custom needs rule: module:function (a file in the policy's folder)")
        if self.type != "custom" and self.rule is not None:
            raise ValueError(f"rule is only for type: custom, not type: {self.type}")
        if self.entities is not None and self.type != "pii":
            raise ValueError(f"entities is only for type: pii, not type: {self.type}")
        if self.categories is not None and self.type != "content":
            raise ValueError(f"categories is only for type: content, not type: {self.type}")
        return self


class GuardrailSettings(_Frozen):
    """Checks on what a request carries (``input``) and on the answer (``output``). On a route,
    the keys it names replace the top level's (``guardrails: false`` turns them off)."""

    input: list[GuardrailCheck] = Field(
        default_factory=list, description="Run on every text of the request before it is routed upstream"
    )
    output: list[GuardrailCheck] = Field(
        default_factory=list, description="Run on the answer (JSON, streams, cache hits) before the client gets it"
    )
    stream_holdback_chars: Annotated[int, Field(ge=0, le=4096)] = Field(
        default=DEFAULT_HOLDBACK_CHARS,
        description="Stream text held back per choice so a value split across chunks is checked whole "
        "(adds the time to generate this many characters to the first token; 0: chunk by chunk)",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> GuardrailSettings:
        seen: set[str] = set()
        for stage, checks in (("input", self.input), ("output", self.output)):
            for i, check in enumerate(checks):
                name = check_name(stage, i, check)
                if name in seen:
                    raise ValueError(f"{stage}[{i}]: the name {name!r} is used by another check")
                seen.add(name)
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.input or self.output)

    @property
    def uses_pii(self) -> bool:
        return any(c.type == "pii" for c in (*self.input, *self.output))


def check_name(stage: str, index: int, check: GuardrailCheck) -> str:
    """The name a check goes by: its own ``name``, else ``<stage>[i]:<type>``."""
    return check.name or f"{stage}[{index}]:{check.type}"
