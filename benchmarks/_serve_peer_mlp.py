"""The benchmark's model for the peer servers: the quickstart MLP's weights (`weights.npz`), numpy only.

`serve_bench.py` writes `weights.npz` beside the `model.pt` Atom serves; MLServer's runtime and the
plain FastAPI handler both predict with `NumpyMLP`, the same arithmetic as `TabularReasoning`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class NumpyMLP:
    """Normalise, Linear -> ReLU -> Linear -> ReLU -> Linear, softmax; the class of the largest."""

    def __init__(self, path: str | Path) -> None:
        w = np.load(path)
        self.mean, self.std, self.classes = w["mean"], w["std"], w["classes"]
        self.layers = [(w[f"w{i}"].T.copy(), w[f"b{i}"]) for i in range(3)]

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(classes, probabilities)` for the rows of `x` ([N, 8])."""
        h: Any = ((x.astype("float64") - self.mean) / self.std).astype("float32")
        for i, (weight_t, bias) in enumerate(self.layers):
            h = h @ weight_t + bias
            if i < 2:
                np.maximum(h, 0, out=h)
        h = np.exp(h - h.max(axis=1, keepdims=True))
        h /= h.sum(axis=1, keepdims=True)
        return self.classes[h.argmax(axis=1)], h
