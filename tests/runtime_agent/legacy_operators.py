# mypy: allow-untyped-defs, check-untyped-defs=False
"""Operators written the way the original Atom runtime's users wrote them (only the import changed).

They follow `atom_runtime/example/train_example.py`: per-batch training on `data` and
`self.labels`, `comparision_execute` on the test batches, the model as bytes from `result()`
(pickle here), and a `ReasoningOperatorApi` that loads it in `initialization()` and returns a
list from `predict`. The models are written by hand with numpy (softmax regression, perceptron).

Class attributes record what the agent handed them, so in-process tests can check batch sizes.
"""

import pickle

import numpy as np

from runtime_agent.compat import (
    ReasoningOperatorApi,
    TrainOperatorApi,
)  # was: from atom_runtime.atom_runtime_api.operator.train_api import TrainOperatorApi


class SoftmaxTrain(TrainOperatorApi):
    """Softmax regression by mini-batch gradient descent, one step per batch the runtime hands it."""

    batches: list[tuple] = []  # (len(data), len(self.labels), columns) per execute call
    test_batches: list[tuple] = []

    def __init__(self):
        super().__init__()

    def initialization(self):
        super().initialization()
        self.learning_rate = float(self.operators_config.get("lr", 0.5))
        self.classes = int(self.operators_config.get("classes", 2))
        self.w = None
        self.mean = None
        self.std = None
        self.total_batch = 0
        self.avg_cost = 0
        self.right = 0
        self.seen = 0

    def _x(self, data):
        x = np.asarray(data, dtype=float)
        return (x - self.mean) / self.std

    def execute(self, data):
        type(self).batches.append((len(data), len(self.labels), list(getattr(data, "columns", []))))
        if self.w is None:
            raw = np.asarray(data, dtype=float)
            self.mean, self.std = raw.mean(axis=0), raw.std(axis=0) + 1e-9
            self.w = np.zeros((raw.shape[1] + 1, self.classes))
        x = np.hstack([self._x(data), np.ones((len(data), 1))])
        y = np.eye(self.classes)[np.asarray(self.labels, dtype=int)]
        for _ in range(20):
            z = x @ self.w
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            self.w -= self.learning_rate * x.T @ (p - y) / len(x)
        self.total_batch += len(data)
        self.avg_cost += float(-(y * np.log(p + 1e-12)).sum(axis=1).mean())

    def comparision_execute(self, data):
        type(self).test_batches.append((len(data), len(self.labels)))
        x = np.hstack([self._x(data), np.ones((len(data), 1))])
        predicted = (x @ self.w).argmax(axis=1)
        self.right += int((predicted == np.asarray(self.labels)).sum())
        self.seen += len(data)
        return {"test_accuracy": self.right / self.seen}

    def result(self):
        self.score = self.right / self.seen if self.seen else 0.0
        return pickle.dumps({"w": self.w, "mean": self.mean, "std": self.std})


class SoftmaxReasoning(ReasoningOperatorApi):
    """Loads SoftmaxTrain's pickle and predicts class indices (as a list, like the original example)."""

    seen_columns: list[list] = []

    def initialization(self):
        with open(self.get_mode_path(), "rb") as f:
            params = pickle.load(f)
        self.w, self.mean, self.std = params["w"], params["mean"], params["std"]

    def predict(self, data):
        type(self).seen_columns.append(list(getattr(data, "columns", [])))
        x = (np.asarray(data, dtype=float) - self.mean) / self.std
        x = np.hstack([x, np.ones((len(x), 1))])
        return np.squeeze((x @ self.w).argmax(axis=1)).tolist()


class PerceptronTrain(TrainOperatorApi):
    """A perceptron over rows as lists (`data_type()` says "list", like the original's converters)."""

    rows: list[tuple] = []

    def data_type(self):
        return "list"

    def initialization(self):
        self.w = None
        self.mistakes = 0

    def execute(self, data):
        type(self).rows.append((type(data).__name__, len(data), type(self.labels).__name__, len(self.labels)))
        for features, label in zip(data, self.labels, strict=True):
            x = np.asarray(features + [1.0], dtype=float)
            if self.w is None:
                self.w = np.zeros(len(x))
            target = 1 if label else -1
            if target * (self.w @ x) <= 0:
                self.w += target * x
                self.mistakes += 1

    def result(self):
        return pickle.dumps(self.w)


class SoftmaxTrainReporting(SoftmaxTrain):
    """SoftmaxTrain that also reports, per batch, what the runtime handed it (runs in another process)."""

    def execute(self, data):
        super().execute(data)
        x = np.asarray(data, dtype=float)
        return {
            "batch_rows": len(data),
            "batch_labels": len(self.labels),
            "batch_features": x.shape[1],
            "batch_label_sum": float(np.sum(self.labels)),
            "batch_first_f0": float(x[0, 0]),
        }
