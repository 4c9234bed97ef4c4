"""Example TRAIN operator (the seed's `TrainExample`): a PyTorch MLP classifier on a tabular dataset.

Use it as moduleName `runtime_agent.examples.train_example`, executeObject `TrainExample`.
Features are every numeric column except the label (`operatorConf.labelColumn`, default `label`)
and the id column (`idColumn`, default `id`); labels may be binary or multiclass, numbers or
strings. Each epoch reports loss, accuracy (train shard), test_accuracy (when a `test_source`
exists) and `score` (test accuracy, else train accuracy). The checkpoint holds `model.pt` (the
state_dict) and `meta.json` (columns, classes, normalisation stats). After training the agent
scores the test source and emits `id, label, prediction` rows to the sink.
`TabularReasoning` serves the model (`serving_object`).

operatorConf knobs: labelColumn, idColumn, hidden (32), lr (0.01), batchSize (64), seed (0).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from runtime_agent.api import ReasoningOperator, TrainOperator, TrainResult

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch

    from runtime_agent.context import OperatorContext

META_FILE = "meta.json"
WEIGHTS_FILE = "model.pt"


def build_mlp(inputs: int, hidden: int, outputs: int) -> torch.nn.Module:
    """The example's network: two hidden ReLU layers."""
    from torch import nn

    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, outputs)
    )


def _plain(value: Any) -> Any:
    """A numpy scalar as a JSON-ready Python value."""
    return value.item() if hasattr(value, "item") else value


class TabularSpec:
    """Which columns are features, the label classes, and the normalisation stats."""

    def __init__(
        self,
        features: list[str],
        label: str,
        id_column: str,
        classes: list[Any],
        mean: list[float],
        std: list[float],
    ) -> None:
        self.features = features
        self.label = label
        self.id_column = id_column
        self.classes = classes
        self.mean = mean
        self.std = std

    @classmethod
    def fit(cls, df: pd.DataFrame, label: str, id_column: str) -> TabularSpec:
        """Learn the spec from the whole training set.

        Raises:
            ValueError: the label column is missing, or there are no numeric feature columns.
        """
        if label not in df.columns:
            raise ValueError(
                f"label column {label!r} not in the data (columns: {list(df.columns)}); set labelColumn"
            )
        numeric = df.select_dtypes(include=["number", "bool"]).columns
        features = [str(c) for c in numeric if c not in (label, id_column)]
        if not features:
            raise ValueError("no numeric feature columns besides the label and id")
        x = df[features].astype("float64")
        std = x.std(ddof=0).fillna(1.0).replace(0.0, 1.0)
        classes = sorted(_plain(v) for v in df[label].dropna().unique())
        return cls(features, label, id_column, classes, x.mean().fillna(0.0).tolist(), std.tolist())

    def matrix(self, df: pd.DataFrame) -> np.ndarray:
        """Normalised float32 features of `df` (NaN -> the mean).

        Raises:
            ValueError: a feature column is missing.
        """
        import numpy as np

        if list(df.columns) == self.features:  # just the features, in order: no copy of the frame
            x = df.to_numpy(dtype="float64")
        else:
            missing = [f for f in self.features if f not in df.columns]
            if missing:
                raise ValueError(f"missing feature column(s) {missing}")
            x = df[self.features].to_numpy(dtype="float64")
        x = (x - np.asarray(self.mean)) / np.asarray(self.std)
        return np.nan_to_num(x, nan=0.0).astype("float32")

    def targets(self, df: pd.DataFrame) -> np.ndarray:
        """Class indexes of `df`'s labels."""
        import numpy as np

        index = {c: i for i, c in enumerate(self.classes)}
        return np.asarray([index[_plain(v)] for v in df[self.label]], dtype="int64")

    def to_json(self, hidden: int) -> dict[str, Any]:
        return {
            "features": self.features,
            "label": self.label,
            "id_column": self.id_column,
            "classes": self.classes,
            "mean": self.mean,
            "std": self.std,
            "hidden": hidden,
        }

    @classmethod
    def from_json(cls, meta: dict[str, Any]) -> TabularSpec:
        return cls(
            meta["features"], meta["label"], meta["id_column"], meta["classes"], meta["mean"], meta["std"]
        )


class TrainExample(TrainOperator):
    """Trains an MLP classifier under Ray Train; one worker per GPU, or one CPU worker."""

    serving_object: ClassVar[str | None] = "runtime_agent.examples.train_example:TabularReasoning"

    @staticmethod
    def train_loop(config: dict[str, Any]) -> None:
        """Runs in each Ray Train worker: train for `config["epochs"]`, report, checkpoint."""
        import torch

        from runtime_agent import train

        label = str(config.get("labelColumn", "label"))
        id_column = str(config.get("idColumn", "id"))
        hidden = int(config.get("hidden", 32))
        epochs = max(1, int(config.get("epochs", 1)))
        batch_size = int(config.get("batchSize", 64))
        torch.manual_seed(int(config.get("seed", 0)))

        spec = TabularSpec.fit(train.get_shard("source", whole=True), label, id_column)
        shard = train.get_shard("source")
        device = train.device()
        x = torch.from_numpy(spec.matrix(shard)).to(device)
        y = torch.from_numpy(spec.targets(shard)).to(device)
        test = train.get_shard("test_source", whole=True) if "test_source" in train.roles() else None
        tx: torch.Tensor | None = None
        ty: torch.Tensor | None = None
        if test is not None and spec.label in test.columns:
            tx = torch.from_numpy(spec.matrix(test)).to(device)
            ty = torch.from_numpy(spec.targets(test)).to(device)

        model = build_mlp(len(spec.features), hidden, len(spec.classes))
        if train.world_size() > 1:
            from ray.train.torch import prepare_model

            model = prepare_model(model)
        else:
            model = model.to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=float(config.get("lr", 0.01)))
        loss_fn = torch.nn.CrossEntropyLoss()

        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(x), device=device)
            total = 0.0
            for start in range(0, len(x), batch_size):
                idx = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(x[idx]), y[idx])
                loss.backward()
                optimizer.step()
                total += float(loss.item()) * len(idx)
            model.eval()
            with torch.no_grad():
                accuracy = float((model(x).argmax(dim=1) == y).float().mean().item()) if len(x) else 0.0
                metrics: dict[str, float] = {
                    "epoch": epoch + 1,
                    "loss": total / max(1, len(x)),
                    "accuracy": accuracy,
                }
                if tx is not None and ty is not None:
                    metrics["test_accuracy"] = float((model(tx).argmax(dim=1) == ty).float().mean().item())
            metrics["score"] = metrics.get("test_accuracy", accuracy)
            if epoch == epochs - 1 and train.world_rank() == 0:
                with tempfile.TemporaryDirectory() as tmp:
                    net = getattr(model, "module", model)
                    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, Path(tmp) / WEIGHTS_FILE)
                    (Path(tmp) / META_FILE).write_text(json.dumps(spec.to_json(hidden)))
                    train.report(metrics, model_dir=tmp)
            else:
                train.report(metrics)

    def after_train(self, ctx: OperatorContext, result: TrainResult) -> None:
        """Score the test source with the trained model and emit `id, label, prediction` rows."""
        import pandas as pd

        test = ctx.frame("test_source")
        if test is None or not (ctx.model_dir / META_FILE).is_file():
            return
        reasoning = TabularReasoning()
        reasoning.load(ctx.model_dir)
        predictions = reasoning.predict(test)
        spec = reasoning.spec
        ids = test[spec.id_column].to_numpy() if spec.id_column in test.columns else range(len(test))
        rows = pd.DataFrame({"id": list(ids)})
        if spec.label in test.columns:
            rows["label"] = test[spec.label].to_numpy()
        rows["prediction"] = predictions["prediction"].to_numpy()
        ctx.emit(rows)
        if "label" in rows.columns:
            ctx.logger.info(
                "test accuracy %.4f on %d rows", float((rows.label == rows.prediction).mean()), len(rows)
            )


class TabularReasoning(ReasoningOperator):
    """Serves a `TrainExample` model: `predict(df)` -> `prediction` and `probability_<class>` columns."""

    def __init__(self) -> None:
        self._spec: TabularSpec | None = None
        self._layers: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._model: Any = None
        self._device: Any = None

    @property
    def spec(self) -> TabularSpec:
        """The loaded model's columns and classes."""
        if self._spec is None:
            raise RuntimeError("call load(model_dir) first")
        return self._spec

    def load(self, model_dir: Path) -> None:
        """Load `meta.json` and `model.pt` from `model_dir`.

        The weights are read with numpy when the file is a plain state_dict of this MLP, so that
        serving needs no torch (`_numpy_mlp`); otherwise torch loads them as before.
        """
        from runtime_agent.examples._numpy_mlp import read_state_dict, sequential_layers

        model_dir = Path(model_dir)
        meta = json.loads((model_dir / META_FILE).read_text())
        self._spec = TabularSpec.from_json(meta)
        state = read_state_dict(model_dir / WEIGHTS_FILE)
        layers = sequential_layers(state) if state is not None else None
        sizes = [len(self._spec.features), int(meta["hidden"]), int(meta["hidden"]), len(self._spec.classes)]
        if layers is not None and [w.shape[0] for w, _ in layers] + [layers[-1][0].shape[1]] == sizes:
            self._layers = layers
            return
        import torch  # deferred: only a checkpoint numpy cannot read needs it

        self._device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = build_mlp(len(self._spec.features), int(meta["hidden"]), len(self._spec.classes))
        state = torch.load(model_dir / WEIGHTS_FILE, map_location=self._device, weights_only=True)
        model.load_state_dict(state)
        self._model = model.to(self._device).eval()

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for the normalised feature rows `x` (float32)."""
        if self._layers is not None:
            from runtime_agent.examples._numpy_mlp import mlp_probabilities

            return mlp_probabilities(self._layers, x)
        import torch

        with torch.no_grad():
            logits = self._model(torch.from_numpy(x).to(self._device))
            return torch.softmax(logits, dim=1).cpu().numpy()

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """The predicted class and per-class probabilities for each row.

        Raises:
            ValueError: a feature column is missing.
        """
        import pandas as pd

        spec = self.spec
        probs = self.probabilities(spec.matrix(df))
        columns: dict[str, Any] = {"prediction": [spec.classes[i] for i in probs.argmax(axis=1).tolist()]}
        for i, cls in enumerate(spec.classes):
            columns[f"probability_{cls}"] = probs[:, i].astype("float32")
        return pd.DataFrame(columns)  # one constructor call: a column at a time costs 3x

    def signature(self) -> dict[str, list[dict[str, Any]]]:
        """V2 metadata: one FP32 `[-1]` input per feature; prediction + probabilities out."""
        spec = self.spec
        label_type = "INT64" if all(isinstance(c, int) for c in spec.classes) else "BYTES"
        if all(isinstance(c, float) for c in spec.classes):
            label_type = "FP64"
        outputs = [{"name": "prediction", "datatype": label_type, "shape": [-1]}]
        outputs += [{"name": f"probability_{c}", "datatype": "FP32", "shape": [-1]} for c in spec.classes]
        return {
            "inputs": [{"name": f, "datatype": "FP32", "shape": [-1]} for f in spec.features],
            "outputs": outputs,
        }
