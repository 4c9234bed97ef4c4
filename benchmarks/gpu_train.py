"""Benchmark: training throughput on one GPU, plain torch vs the same loop under Atom.

    python benchmarks/gpu_train.py [--rows 500000] [--features 64] [--hidden 512] [--epochs 3]
                                   [--batch 4096] [--cpu-smoke]

Trains TrainExample's MLP shape (two hidden ReLU layers) on synthetic tabular data and prints
samples/s for:

1. plain torch: tensors on the GPU, the loop written directly;
2. Atom, direct executor: the same loop as a TrainOperator's `train_loop`, run by the agent
   (`runtime_agent.testing.AgentRunner`, data through the FILE connector, `device()` from the
   run's one-GPU plan), the loop timed inside `train_loop`;
3. Atom, Ray Train with one worker per GPU (a private local Ray), when the machine has several.

Goal: Atom >= 0.9x plain. Without a CUDA GPU it prints one line and exits 0; `--cpu-smoke`
runs the same paths on the CPU with a tiny job only to check that they work (not a GPU figure).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime_agent.api import TrainOperator  # noqa: E402 - after the sys.path line above

GOAL = 0.9


def synthetic(rows: int, features: int, seed: int = 0) -> Any:
    """A DataFrame of `features` float32 columns and a binary `label`."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype("float32")
    w = rng.normal(size=features).astype("float32")
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(features)])
    frame["label"] = (x @ w > 0).astype("int64")
    return frame


def fit(x: Any, y: Any, *, hidden: int, epochs: int, batch: int, model: Any = None) -> float:
    """Train for `epochs` epochs; returns samples/s (synchronised with the device)."""
    import torch

    from runtime_agent.examples.train_example import build_mlp

    device = x.device
    net = model if model is not None else build_mlp(x.shape[1], hidden, 2).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch() -> None:
        order = torch.randperm(len(x), device=device)
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(net(x[idx]), y[idx]).backward()
            optimizer.step()

    epoch()  # warm-up: kernels, allocator
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(epochs):
        epoch()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) * epochs / (time.perf_counter() - started)


def plain(frame: Any, args: argparse.Namespace, device: str) -> float:
    import torch

    features = [c for c in frame.columns if c != "label"]
    x = torch.from_numpy(frame[features].to_numpy(dtype="float32", copy=True)).to(device)
    y = torch.from_numpy(frame["label"].to_numpy(dtype="int64", copy=True)).to(device)
    return fit(x, y, hidden=args.hidden, epochs=args.epochs, batch=args.batch)


class ThroughputProbe(TrainOperator):
    """The benchmark's loop as an Atom TRAIN operator; reports `samples_per_s` (all ranks together)."""

    @staticmethod
    def train_loop(config: dict[str, Any]) -> None:
        import torch

        from runtime_agent import train
        from runtime_agent.examples.train_example import build_mlp

        shard = train.get_shard("source")
        features = [c for c in shard.columns if c != "label"]
        device = train.device()
        x = torch.from_numpy(shard[features].to_numpy(dtype="float32", copy=True)).to(device)
        y = torch.from_numpy(shard["label"].to_numpy(dtype="int64", copy=True)).to(device)
        model = build_mlp(len(features), int(config["hidden"]), 2).to(device)
        if train.world_size() > 1:
            from ray.train.torch import prepare_model

            model = prepare_model(model)
        rate = fit(x, y, hidden=0, epochs=int(config["epochs"]), batch=int(config["batch"]), model=model)
        on_cuda = float(device.type == "cuda")
        train.report({"samples_per_s": rate * train.world_size(), "device_cuda": on_cuda})


def under_atom(frame: Any, args: argparse.Namespace, executor: str, gpus: int) -> float:
    """samples/s of ThroughputProbe run by the agent with `executor` on `gpus` GPUs."""
    import asyncio

    from control.schemas.runs import ServiceInfoSpec
    from runtime_agent.callbacks import RecordingCallbacks
    from runtime_agent.runner import run_task
    from runtime_agent.settings import AgentSettings
    from runtime_agent.testing import AgentRunner

    with tempfile.TemporaryDirectory(prefix="atom-gpu-bench-") as tmp:
        runner = AgentRunner(
            ThroughputProbe,
            sources={"source": frame},
            operator_conf={"hidden": args.hidden, "batch": args.batch},
            epochs=args.epochs,
            disposable=True,
            model_name=None,
            workdir=Path(tmp),
        )
        spec = runner.build_spec().model_copy(
            update={"service_info": ServiceInfoSpec(si_cpu=2 * max(1, gpus), si_gpu=gpus, si_memory=0)}
        )
        settings = AgentSettings(data_dir=Path(tmp) / "data", model_dir=Path(tmp) / "model")
        callbacks = RecordingCallbacks()
        outcome = asyncio.run(
            run_task(settings, callbacks, spec=spec, operator=ThroughputProbe, train_executor=executor)
        )
        if outcome.train is None or outcome.reason:
            raise RuntimeError(f"the Atom run failed: {outcome.reason}")
        return float(outcome.train.metrics["samples_per_s"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny CPU run to check the paths work")
    args = parser.parse_args()

    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not gpus and not args.cpu_smoke:
        print("gpu_train: no CUDA GPU on this machine; nothing measured")  # noqa: T201
        return 0
    device = "cuda" if gpus else "cpu"
    if not gpus:
        args.rows, args.features, args.hidden, args.epochs = 4000, 8, 32, 1
        print("gpu_train: --cpu-smoke on CPU (a check that the paths run, not a GPU figure)")  # noqa: T201
    frame = synthetic(args.rows, args.features)
    base = plain(frame, args, device)
    rows = [("plain torch", base)]
    rows.append(("Atom direct executor", under_atom(frame, args, "direct", min(1, gpus))))
    if gpus > 1:
        rows.append((f"Atom Ray Train, {gpus} workers (1 per GPU)", under_atom(frame, args, "ray", gpus)))
    name = torch.cuda.get_device_name(0) if gpus else "CPU"
    print(f"\n{name}; {args.rows} rows x {args.features} features, hidden {args.hidden}, batch {args.batch}")  # noqa: T201
    for label, rate in rows:
        print(f"  {label:<40} {rate:>14,.0f} samples/s  {rate / base:5.2f}x plain")  # noqa: T201
    direct = rows[1][1] / base
    print(f"Atom direct / plain = {direct:.2f} (goal >= {GOAL})")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
