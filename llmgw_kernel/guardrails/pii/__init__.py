"""PII detection in English and Vietnamese, from formats, checksums and context words.

``pii_detector()`` builds a ``Detector`` (see ``llmgw_kernel.guardrails.findings``);
``PII_TYPES`` lists the entity types it reports. docs/guardrails-detection.md describes each
type's rule and what is known not to be detected.
"""

from .detector import PII_TYPES, PiiDetector, pii_detector

__all__ = ["PII_TYPES", "PiiDetector", "pii_detector"]
