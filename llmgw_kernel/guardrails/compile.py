"""The policy's guardrail settings, compiled into checks that can run: each check's detector
built once (at policy load, so ``llmgw policy validate`` reports a bad entity, category or
rule module with its path), shared by every route and every reload that asks for the same
settings.

A check is ``(name, stage, type, action, detector)``; :mod:`.stage` runs them. Built-in
detectors come from the detection modules (:func:`~.pii.pii_detector`,
:func:`~.content.content_detector`, :func:`~.injection.injection_detector`); a ``custom``
check is a policy's own function (``rule: module:function`` beside the policy file, loaded
like routing rules: :mod:`llmgw_kernel.policy.functions`), called with one text and returning
:class:`~.findings.Finding` s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .findings import Detector, Finding

if TYPE_CHECKING:
    from ..policy.guardrail_settings import GuardrailCheck
    from ..policy.model import Policy


@dataclass(frozen=True, slots=True)
class Check:
    """One runnable check: what found it (``detector``), what to do (``action``), and the
    ``name`` it goes by in errors, the log and metrics."""

    name: str
    stage: str  # input | output
    type: str  # pii | content | injection | custom
    action: str  # redact | block | flag
    detector: Detector


@dataclass(frozen=True, slots=True)
class Guardrails:
    """The checks in force on one route."""

    input: tuple[Check, ...]
    output: tuple[Check, ...]
    holdback: int  # stream characters held back per choice and field (docs/guardrails.md#streams)


class CustomRule:
    """A policy's ``custom`` check: its function's findings, checked (a rule that returns
    something else, or spans outside the text, fails loudly rather than redacting the wrong
    characters), sorted, overlaps dropped, and named ``ref`` when they name no rule."""

    __slots__ = ("func", "ref")

    def __init__(self, func: Callable[[str], Iterable[Finding]], ref: str) -> None:
        self.func = func
        self.ref = ref

    def find(self, text: str) -> list[Finding]:
        found = self.func(text)
        out: list[Finding] = []
        for f in sorted(found or (), key=_span_key):
            if not isinstance(f, Finding):
                raise TypeError(f"guardrail rule {self.ref} returned {type(f).__name__}, not a Finding")
            if not (0 <= f.start < f.end <= len(text)):
                raise ValueError(f"guardrail rule {self.ref} returned the span [{f.start}, {f.end}) outside the text")
            if out and f.start < out[-1].end:
                continue  # overlaps the previous finding: the earlier (and longer) one stands
            out.append(f if f.rule else Finding(f.type, f.start, f.end, f.score, self.ref))
        return out


def _span_key(f: Any) -> tuple[int, int]:
    return (f.start, -f.end) if isinstance(f, Finding) else (-1, 0)


class _AtLeast:
    """Findings of a custom rule scored at least ``threshold`` (the built-in detectors take
    their threshold themselves)."""

    __slots__ = ("detector", "threshold")

    def __init__(self, detector: Detector, threshold: float) -> None:
        self.detector = detector
        self.threshold = threshold

    def find(self, text: str) -> list[Finding]:
        return [f for f in self.detector.find(text) if f.score >= self.threshold]


_BUILT: dict[tuple[Any, ...], Detector] = {}
_BUILT_LOCK = threading.Lock()


def _builtin(check: GuardrailCheck) -> Detector:
    """The detector of a built-in check type, shared by every check with the same settings."""
    languages = tuple(check.languages)
    key = (check.type, languages, tuple(check.entities or ()), tuple(check.categories or ()), check.threshold)
    with _BUILT_LOCK:
        detector = _BUILT.get(key)
        if detector is None:
            detector = _BUILT[key] = _build(check, languages)
    return detector


def _build(check: GuardrailCheck, languages: tuple[str, ...]) -> Detector:
    if check.type == "pii":
        from .pii import pii_detector

        return pii_detector(languages=languages, entities=check.entities, threshold=check.threshold)
    if check.type == "content":
        from .content import content_detector

        return content_detector(check.categories, languages, check.threshold)  # None: every category
    from .injection import injection_detector

    return injection_detector(languages, check.threshold)


def _compile_check(stage: str, index: int, check: GuardrailCheck, source: str | None) -> tuple[Check, str | None]:
    """A runnable check and, for a custom one, the digest of its module (part of the version).
    Raises ``ValueError`` with a message fit for the check's path."""
    from ..policy.guardrail_settings import check_name

    name = check_name(stage, index, check)
    if check.type == "custom":
        from ..policy.functions import load_rule_function

        assert check.rule is not None  # the settings model requires it
        func, digest = load_rule_function(check.rule, source, "text: str")
        detector: Detector = CustomRule(func, check.rule)
        if check.threshold > 0:
            detector = _AtLeast(detector, check.threshold)
        return Check(name, stage, check.type, check.action, detector), digest
    try:
        detector = _builtin(check)
    except ImportError as exc:
        raise ValueError(f"the {check.type} detector is not available ({type(exc).__name__}: {exc})") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    return Check(name, stage, check.type, check.action, detector), None


def compile_policy_guardrails(policy: Policy, source: str | None) -> list[tuple[str, str]]:
    """Compile the guardrails of every route into ``policy._guardrails`` (route -> Guardrails;
    routes without guardrails are absent) and the custom rules' digests into
    ``policy._guardrail_modules``. Returns ``(path, message)`` errors; a check shared by
    several routes (a top-level one) is compiled, and reported, once."""
    errors: dict[str, str] = {}
    done: dict[str, Check] = {}
    failed: set[str] = set()

    def compiled(prefix: str, stage: str, checks: list[GuardrailCheck]) -> tuple[Check, ...]:
        out = []
        for i, check in enumerate(checks):
            path = f"{prefix}.{stage}[{i}]"
            if path not in done and path not in failed:
                try:
                    done[path], digest = _compile_check(stage, i, check, source)
                except ValueError as exc:
                    failed.add(path)
                    errors[path + _option(check)] = str(exc)
                    continue
                if digest is not None:
                    policy._guardrail_modules[path] = digest
            if path in done:
                out.append(done[path])
        return tuple(out)

    for route_name, route in policy.routes.items():
        settings = policy.guardrails_for(route_name)
        if settings is None:
            continue
        own = route.guardrails.model_fields_set if route.guardrails else set()
        prefixes = {s: f"routes.{route_name}.guardrails" if s in own else "guardrails" for s in ("input", "output")}
        policy._guardrails[route_name] = Guardrails(
            compiled(prefixes["input"], "input", settings.input),
            compiled(prefixes["output"], "output", settings.output),
            settings.stream_holdback_chars,
        )
    if policy.guardrails is not None:  # top-level checks no route uses are still validated
        compiled("guardrails", "input", policy.guardrails.input)
        compiled("guardrails", "output", policy.guardrails.output)
    return sorted(errors.items())


def _option(check: GuardrailCheck) -> str:
    """The option a check's build error is about: the rule module, or the entities /
    categories it asked for (the built-in detectors validate those)."""
    if check.type == "custom":
        return ".rule"
    if check.entities is not None:
        return ".entities"
    return ".categories" if check.categories is not None else ""
