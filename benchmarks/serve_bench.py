"""Benchmark: Atom's model server (`atom-runtime serve`) beside MLServer 1.7.1 and a plain FastAPI handler.

    python benchmarks/serve_bench.py [--quick] [--servers atom,atom-unbatched,mlserver,fastapi]
                                     [--seconds S] [--rounds N] [--markdown PATH]

One command, localhost only. The model is the quickstart's: its dataset recipe (8 features, a
binary label), `TrainExample`'s MLP (hidden 32) trained for 3 epochs and saved as the operator
saves it (`model.pt` + `meta.json`, served by `TabularReasoning`); its weights also go to
`weights.npz`, which the peers predict from with numpy (`_serve_peer_mlp.NumpyMLP`, the same
arithmetic). Servers, each started as its own process and always stopped (Ctrl-C and errors too):

- atom: `python -m runtime_agent serve --model DIR ...` (default batching: 32 requests, 2 ms);
- atom-unbatched: the same with modelConf `{"maxBatchSize": 1}`;
- mlserver: MLServer 1.7.1 from its own venv (`~/.cache/atom-bench/mlserver-venv`, made with
  `python -m venv` + pip when missing), `parallel_workers: 0`, a custom `MLModel` with NumpyCodec
  (metrics endpoint off, debug off: both would only slow it down);
- fastapi: a minimal FastAPI handler under uvicorn (`_serve_peer_fastapi.py`), this venv.

Every server gets the same V2 body (one `[N, 8]` FP32 tensor) and must answer the expected
classes before it is timed. For 1, 8 and 64 concurrent clients and 1-row and 64-row requests,
one async httpx process (keep-alive connections, one per client) sends requests back to back for
`--seconds` after a warm-up: requests/s, p50 and p99 latency, and the server's CPU time per
request (its process tree; the load generator shares the machine, so a server that spends less
leaves it more), and how busy the load generator was (near 100% of its one core, it and not the
server sets the pace). Then the server's RSS after the runs and its start-to-ready time. All servers
run at once (idle while another is measured) and each cell is measured on each server in turn,
`--rounds` times, medians kept, so that other work on the machine weighs on all of them alike.
The table ends with Atom/MLServer ratios of requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _serve_bench_procs import Server, cpu_seconds, free_port, mlserver_python, rss_mib

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODEL = "quickstart"
FEATURES = 8
CLIENTS = (1, 8, 64)
ROWS = (1, 64)
ALL_SERVERS = ("atom", "atom-unbatched", "mlserver", "fastapi")


def make_model(dest: Path) -> None:
    """Train the quickstart's model briefly and save it as `TrainExample` does (+ weights.npz)."""
    import numpy as np
    import pandas as pd
    import torch

    from runtime_agent.examples.train_example import META_FILE, WEIGHTS_FILE, TabularSpec, build_mlp

    rng = np.random.default_rng(7)  # control.cli.quickstart.make_dataset's recipe
    x = rng.normal(size=(2000, FEATURES))
    w = rng.normal(size=FEATURES)
    w /= np.linalg.norm(w)
    y = (x @ w > 0).astype("int64")
    x += np.outer(2 * y - 1, w) * 0.5
    frame = pd.DataFrame(x.round(6), columns=[f"f{i}" for i in range(FEATURES)])
    frame["label"] = y
    spec = TabularSpec.fit(frame, "label", "id")
    torch.manual_seed(0)
    net = build_mlp(FEATURES, 32, len(spec.classes))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    features, targets = torch.from_numpy(spec.matrix(frame)), torch.from_numpy(spec.targets(frame))
    for _epoch in range(3):
        for start in range(0, len(features), 64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(
                net(features[start : start + 64]), targets[start : start + 64]
            ).backward()
            optimizer.step()
    dest.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(state, dest / WEIGHTS_FILE)
    (dest / META_FILE).write_text(json.dumps(spec.to_json(32)))
    arrays = {
        f"{k.split('.')[1][0]}{int(k.split('.')[0]) // 2}": v.numpy() for k, v in state.items()
    }  # w0 b0..
    np.savez(
        dest / "weights.npz",
        mean=np.asarray(spec.mean),
        std=np.asarray(spec.std),
        classes=np.asarray(spec.classes),
        **arrays,
    )
    frame.drop(columns="label").iloc[:64].to_csv(dest / "rows.csv", index=False)


def servers(names: list[str], model_dir: Path, work: Path) -> list[Server]:
    """The servers to compare, in order."""
    atom = [sys.executable, "-m", "runtime_agent", "serve", "--model", str(model_dir), "--name", MODEL]
    atom += ["--operator", "runtime_agent.examples.train_example:TabularReasoning"]
    peers = {"PYTHONPATH": str(HERE)}
    made: list[Server] = []
    for name in names:
        port = free_port()
        if name == "atom":
            made.append(Server(name, [*atom, "--port", str(port)], port, REPO, {"PYTHONPATH": str(REPO)}))
        elif name == "atom-unbatched":
            argv = [*atom, "--port", str(port), "--model-conf", '{"maxBatchSize": 1}']
            made.append(Server(name, argv, port, REPO, {"PYTHONPATH": str(REPO)}))
        elif name == "fastapi":
            argv = [
                sys.executable,
                str(HERE / "_serve_peer_fastapi.py"),
                str(port),
                str(model_dir / "weights.npz"),
            ]
            made.append(Server(name, argv, port, work, peers))
        elif name == "mlserver":
            repo = work / "mlserver"
            (repo / MODEL).mkdir(parents=True, exist_ok=True)
            settings = {"parallel_workers": 0, "http_port": port, "grpc_port": free_port()}
            settings |= {"metrics_endpoint": None, "debug": False}
            (repo / "settings.json").write_text(json.dumps(settings))
            model = {"name": MODEL, "implementation": "_serve_peer_mlserver.BenchMLP"}
            model["parameters"] = {"uri": str(model_dir / "weights.npz")}  # type: ignore[assignment]
            (repo / MODEL / "model-settings.json").write_text(json.dumps(model))
            mlserver = mlserver_python().parent / "mlserver"
            made.append(Server(name, [str(mlserver), "start", str(repo)], port, repo, peers))
        else:
            raise SystemExit(f"unknown server {name!r}: choose from {', '.join(ALL_SERVERS)}")
    return made


def body(rows: list[list[float]]) -> bytes:
    flat = [v for row in rows for v in row]
    tensor = {"name": "input", "shape": [len(rows), FEATURES], "datatype": "FP32", "data": flat}
    return json.dumps({"inputs": [tensor]}).encode()


def check(server: Server, payload: bytes, expected: list[int], probability_1: list[float]) -> None:
    """The server answers the expected classes and probabilities for the 64 rows."""
    resp = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", content=payload, timeout=30,
                      headers={"content-type": "application/json"})  # fmt: skip
    resp.raise_for_status()
    outputs = {o["name"]: o["data"] for o in resp.json()["outputs"]}
    got = [int(v) for v in outputs["prediction"]]
    close = all(abs(a - b) < 1e-5 for a, b in zip(outputs["probability_1"], probability_1, strict=True))
    if got != expected or not close:
        raise RuntimeError(f"{server.name} answers differently from the model: {got[:8]} vs {expected[:8]}")


@dataclass
class Cell:
    rps: float
    p50: float
    p99: float
    errors: int
    cpu_ms: float = 0.0
    """The server's CPU time (its process tree, user + system) per request, ms."""
    total: int = 0
    """Requests answered in the whole cell, warm-up included (what the CPU time is divided by)."""
    generator_busy: float = 0.0
    """The load generator's CPU time over the cell's wall time (1.0: one core, all it can use)."""
    client_ms: float = 0.0
    """The load generator's CPU time per request, ms."""


async def hammer(url: str, payload: bytes, clients: int, seconds: float, warmup: float) -> Cell:
    """`clients` keep-alive connections sending `payload` back to back; figures over `seconds`.

    Each client is its own `httpx.AsyncHTTPTransport` (a pool of one keep-alive connection), made
    and connected before the clock starts and sharing one SSL context: the load generator shares
    the machine with the servers, so it spends as little as httpx allows per request (one pool
    of 64 connections, or 64 clients each loading the CA bundle in the timed window, costs it
    more than the servers it measures).
    """
    import ssl

    context = ssl.create_default_context()
    pool = [
        httpx.AsyncHTTPTransport(verify=context, limits=httpx.Limits(max_connections=1))
        for _ in range(clients)
    ]
    request = httpx.Request("POST", url, content=payload, headers={"content-type": "application/json"})
    ready = httpx.Request("GET", url.split("/v2/")[0] + "/v2/health/ready")
    latencies: list[float] = []
    errors = sent = 0

    async def call(transport: httpx.AsyncHTTPTransport, req: httpx.Request) -> httpx.Response:
        resp = await transport.handle_async_request(req)
        await resp.aread()
        return resp

    try:
        await asyncio.gather(*(call(t, ready) for t in pool))
        loop = asyncio.get_running_loop()
        begin = loop.time() + warmup
        end = begin + seconds

        async def worker(transport: httpx.AsyncHTTPTransport) -> None:
            nonlocal errors, sent
            while (now := loop.time()) < end:
                resp = await call(transport, request)
                done = loop.time()
                sent += 1
                if resp.status_code != 200 or not resp.content:
                    errors += 1
                elif now >= begin:
                    latencies.append(done - now)

        await asyncio.gather(*(worker(t) for t in pool))
    finally:
        await asyncio.gather(*(t.aclose() for t in pool))
    latencies.sort()
    if not latencies:
        return Cell(0.0, 0.0, 0.0, errors, total=sent)
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return Cell(len(latencies) / seconds, pick(0.50), pick(0.99), errors, total=sent)


def measure(server: Server, work: Path, payload: bytes, clients: int, seconds: float, warmup: float) -> Cell:
    """One cell against `server`; restarted and measured again (twice at most) if it died meanwhile."""
    url = f"{server.url}/v2/models/{MODEL}/infer"
    for _attempt in range(3):
        if not server.alive():
            print(f"{server.name} is gone (killed from outside?): starting it again", flush=True)
            server.start(work / f"{server.name}.log")
        assert server.proc is not None
        try:
            cpu, mine, wall = cpu_seconds(server.proc.pid), time.process_time(), time.perf_counter()
            cell = asyncio.run(hammer(url, payload, clients, seconds, warmup))
            cpu = cpu_seconds(server.proc.pid) - cpu
            mine, wall = time.process_time() - mine, time.perf_counter() - wall
        except httpx.HTTPError:
            cell = None
        if cell is not None and server.alive():
            cell.cpu_ms = cpu * 1000 / max(1, cell.total)
            cell.generator_busy = mine / wall
            cell.client_ms = mine * 1000 / max(1, cell.total)
            return cell
    raise RuntimeError(f"{server.name} kept dying; see {work / (server.name + '.log')}")


def table(results: dict[str, dict[tuple[int, int], Cell]], started: list[Server]) -> str:
    names = [s.name for s in started]
    head = "| clients | rows | " + " | ".join(f"{n}: req/s (p50 / p99 ms; CPU ms/req)" for n in names)
    ratio = "atom" in results and "mlserver" in results
    lines = [head + (" | atom / mlserver" if ratio else "") + " | load generator busy |"]
    lines.append("|---|---|" + "---|" * (len(names) + ratio + 1))
    for clients in CLIENTS:
        for rows in ROWS:
            cells = [results[n][(clients, rows)] for n in names]
            text = [f"{c.rps:,.0f} ({c.p50:.1f} / {c.p99:.1f}; {c.cpu_ms:.2f})"
                    + (f" {c.errors} errors" if c.errors else "") for c in cells]  # fmt: skip
            line = f"| {clients} | {rows} | " + " | ".join(text)
            if ratio:
                mls = results["mlserver"][(clients, rows)].rps
                line += f" | {results['atom'][(clients, rows)].rps / mls:.2f}x" if mls else " | -"
            busy = [c.generator_busy for c in cells]
            lines.append(line + f" | {min(busy):.0%}-{max(busy):.0%} |")
    lines.append(
        "| RSS after the runs (MiB) | | "
        + " | ".join(f"{s.rss:.0f}" for s in started)
        + (" | | |" if ratio else " | |")
    )
    lines.append(
        "| start to ready (s) | | "
        + " | ".join(f"{s.ready_s:.2f}" for s in started)
        + (" | | |" if ratio else " | |")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one round of 1 s cells (a smoke run)")
    parser.add_argument("--seconds", type=float, help="measured seconds per cell (default 3)")
    parser.add_argument("--rounds", type=int, help="rounds over every cell and server; medians (default 3)")
    parser.add_argument("--servers", default=",".join(ALL_SERVERS), help="comma-separated, in order")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--make-model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make_model:
        make_model(args.make_model)
        return 0
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    rounds = args.rounds or (1 if args.quick else 3)
    warmup = min(1.0, seconds / 2)
    load_before = os.getloadavg()

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    with tempfile.TemporaryDirectory(prefix="atom-serve-bench-") as tmp:
        work = Path(tmp)
        model_dir = work / "model"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, __file__, "--make-model", str(model_dir)], check=True, env=env)
        sys.path.insert(0, str(HERE))
        import numpy as np
        from _serve_peer_mlp import NumpyMLP

        rows = np.loadtxt(model_dir / "rows.csv", delimiter=",", skiprows=1, dtype="float32")
        classes, probs = NumpyMLP(model_dir / "weights.npz").predict(rows)
        payloads = {n: body(rows[:n].tolist()) for n in ROWS}
        started = servers(args.servers.split(","), model_dir, work)
        runs: dict[str, dict[tuple[int, int], list[Cell]]] = {s.name: {} for s in started}
        with contextlib.ExitStack() as stack:
            for server in started:
                stack.callback(server.stop)
                server.start(work / f"{server.name}.log")
                check(server, payloads[64], classes.tolist(), probs[:, 1].tolist())
            for round_ in range(rounds):
                order = started[round_ % len(started) :] + started[: round_ % len(started)]
                for clients in CLIENTS:
                    for n in ROWS:
                        for server in order:
                            cell = measure(server, work, payloads[n], clients, seconds, warmup)
                            runs[server.name].setdefault((clients, n), []).append(cell)
                            print(
                                f"round {round_ + 1}/{rounds} {server.name:>15} "
                                f"{clients:>3} clients {n:>3} rows: "
                                f"{cell.rps:8,.0f} req/s  p50 {cell.p50:6.1f} ms  p99 {cell.p99:6.1f} ms  "
                                f"server CPU {cell.cpu_ms:.2f} ms/req, load generator busy "
                                f"{cell.generator_busy:.0%} ({cell.client_ms:.2f} ms/req)"
                                + (f"  {cell.errors} errors" if cell.errors else ""),
                                flush=True,
                            )
            for server in started:
                assert server.proc is not None
                server.rss = rss_mib(server.proc.pid)
        results = {
            name: {key: sorted(cells, key=lambda c: c.rps)[len(cells) // 2] for key, cells in by_cell.items()}
            for name, by_cell in runs.items()
        }
    out = table(results, started)
    load = os.getloadavg()
    header = (
        f"{platform.node()} ({os.cpu_count()} CPUs, Python {platform.python_version()}), "
        f"{time.strftime('%Y-%m-%d %H:%M')}; load average (1/5/15 min) before "
        f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {rounds} round(s) of {seconds:g} s per cell, medians"
    )
    print(f"\n{header}\n\n{out}")
    if args.markdown:
        args.markdown.write_text(f"{header}\n\n{out}\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
