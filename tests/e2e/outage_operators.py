"""A small trainer for the control-outage tests (imported by real agent and service processes).

`GatedTrainer` fits a logistic regression with numpy, one epoch at a time, reporting
`loss` and `accuracy` per epoch. After epoch `operatorConf.gateEpoch` it waits until
`operatorConf.gateFile` exists, so a test can stop control at a known point of training.
It then writes its test-set predictions to the sink and its weights to the model directory;
`GatedServe` serves them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runtime_agent.api import ReasoningOperator, TrainOperator


def _features(df: pd.DataFrame) -> np.ndarray:
    return df[[c for c in df.columns if c.startswith("f")]].to_numpy(dtype=float)


class GatedTrainer(TrainOperator):
    """Numpy logistic regression trained in `task_finish_execute` (no Ray), gated mid-training."""

    serving_object = "tests.e2e.outage_operators:GatedServe"

    def task_finish_execute(self, ctx: Any) -> None:
        conf = ctx.operator_conf
        train, test = ctx.frame("source"), ctx.frame("test_source")
        x, y = _features(train), train["label"].to_numpy(dtype=float)
        w = np.zeros(x.shape[1])
        for epoch in range(1, ctx.epochs + 1):
            p = 1 / (1 + np.exp(-(x @ w)))
            w -= 0.5 * x.T @ (p - y) / len(y)
            loss = float(-np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)))
            ctx.report({"loss": loss, "accuracy": float(np.mean((p > 0.5) == y))}, step=epoch)
            time.sleep(float(conf.get("epochSeconds", 0.2)))
            if epoch == int(conf.get("gateEpoch", 0)):
                gate = Path(conf["gateFile"])
                ctx.logger.info("epoch %d: waiting for %s", epoch, gate)
                while not gate.exists():
                    time.sleep(0.05)
        np.save(ctx.model_dir / "weights.npy", w)
        (ctx.model_dir / "meta.json").write_text(json.dumps({"features": x.shape[1]}))
        scores = 1 / (1 + np.exp(-(_features(test) @ w)))
        ctx.emit(pd.DataFrame({"row": range(len(test)), "prediction": (scores > 0.5).astype(int)}))


class GatedServe(ReasoningOperator):
    """Serves a `GatedTrainer` model: `prediction` per row."""

    def load(self, model_dir: Path) -> None:
        self.w = np.load(Path(model_dir) / "weights.npy")

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"prediction": ((_features(df) @ self.w) > 0).astype(int)})
