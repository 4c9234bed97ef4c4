"""Operators for the hyper-parameter search tests (importable by Ray Tune's trial workers)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from runtime_agent.api import TrainOperator


class LinearByGradientDescent(TrainOperator):
    """Fits `y = w * x + b` by full-batch gradient descent, written like `TrainExample`: the loop reads
    its knobs from the config (operatorConf), reports loss and score every epoch, and checkpoints the
    model on the last one. A larger (stable) `lr` gives a lower loss at every epoch."""

    @staticmethod
    def train_loop(config: dict[str, Any]) -> None:
        from runtime_agent import train

        lr = float(config["lr"])
        steps = int(config.get("stepsPerEpoch", 5))
        df = train.get_shard("source", whole=True)
        x, y = df["x"].to_numpy(dtype="float64"), df["y"].to_numpy(dtype="float64")
        w = b = 0.0
        epochs = int(config["epochs"])
        for epoch in range(epochs):
            for _ in range(steps):
                err = w * x + b - y
                w -= lr * float(np.mean(err * x))
                b -= lr * float(np.mean(err))
            loss = float(np.mean((w * x + b - y) ** 2))
            metrics = {"epoch": epoch + 1, "loss": loss, "score": 1.0 / (1.0 + loss)}
            if epoch == epochs - 1:
                with tempfile.TemporaryDirectory() as tmp:
                    (Path(tmp) / "linear.json").write_text(json.dumps({"w": w, "b": b, "lr": lr}))
                    train.report(metrics, model_dir=tmp)
            else:
                train.report(metrics)


class RaisesForSomeParams(TrainOperator):
    """Fails when `lr` is above `failAbove`; otherwise reports `score = lr` once, with a model."""

    @staticmethod
    def train_loop(config: dict[str, Any]) -> None:
        from runtime_agent import train

        lr = float(config["lr"])
        if lr > float(config["failAbove"]):
            raise FloatingPointError(f"lr {lr} diverged")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "lr.txt").write_text(str(lr))
            train.report({"score": lr}, model_dir=tmp)
