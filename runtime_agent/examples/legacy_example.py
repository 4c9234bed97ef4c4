# mypy: allow-untyped-defs, check-untyped-defs=False
"""Example operators in the original Atom runtime's API (only the import line changed): nearest centroid.

`CentroidTrain` (a `TrainOperatorApi`) averages the feature vectors of each class over the
`source` batches (each batch's feature columns, with `self.labels` holding that batch's label
values), scores itself on the `test_source` batches and returns the centroids as the model
bytes; `CentroidReasoning` (a `ReasoningOperatorApi`) loads those bytes and predicts the nearest
centroid's class.
"""

import json

import numpy as np
import pandas as pd

from runtime_agent.compat import (
    ReasoningOperatorApi,
    TrainOperatorApi,
)  # was: from atom_runtime.api import ...


class CentroidTrain(TrainOperatorApi):
    def initialization(self):
        self.features = None
        self.sums = {}
        self.counts = {}
        self.correct = 0
        self.seen = 0
        self.score = 0.0

    def execute(self, data):
        # data: this batch's feature columns; self.labels: this batch's label values
        if self.features is None:
            self.features = [str(c) for c in data.columns]
        x = np.asarray(data, dtype=float)
        y = np.asarray(self.labels)
        for cls in np.unique(y):
            key = json.dumps(cls.item() if hasattr(cls, "item") else cls)
            self.sums[key] = self.sums.get(key, 0) + x[y == cls].sum(axis=0)
            self.counts[key] = self.counts.get(key, 0) + int((y == cls).sum())

    def _centroids(self):
        keys = sorted(self.sums)
        return keys, np.stack([self.sums[k] / self.counts[k] for k in keys])

    def comparision_execute(self, data):
        keys, centroids = self._centroids()
        x = np.asarray(data, dtype=float)
        nearest = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        predictions = [json.loads(keys[i]) for i in nearest]
        truth = list(self.labels)
        self.correct += sum(int(p == t) for p, t in zip(predictions, truth, strict=True))
        self.seen += len(data)
        return pd.DataFrame({"label": truth, "prediction": predictions})

    def result(self):
        keys, centroids = self._centroids()
        self.score = self.correct / self.seen if self.seen else 0.0
        model = {
            "features": list(self.features),
            "classes": [json.loads(k) for k in keys],
            "centroids": centroids.tolist(),
        }
        return json.dumps(model).encode("utf-8")


class CentroidReasoning(ReasoningOperatorApi):
    def initialization(self):
        params = json.loads(self.model.get_model().decode("utf-8"))
        self.features = params["features"]
        self.classes = params["classes"]
        self.centroids = np.asarray(params["centroids"])

    def predict(self, data):
        x = data[self.features].to_numpy(dtype=float)
        nearest = ((x[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        return np.asarray([self.classes[i] for i in nearest])
