"""`atom-runtime`: the runtime agent's command line (`run`, `dev`, `serve`); the container ENTRYPOINT.

How control starts a task run::

    atom-runtime run --run-id N
    env: ATOM_CONTROL_URL, ATOM_RUN_TOKEN (Bearer token), ATOM_RUN_ID, ATOM_DATA_DIR,
         ATOM_MODEL_DIR, ATOM_LOG_DIR, ATOM_SUMMARY_DIR, ATOM_SHARE_DIR,
         ATOM_HEARTBEAT_INTERVAL (seconds, default 5); optional ATOM_TRAIN_EXECUTOR
         (auto|direct|ray), RAY_ADDRESS (the Ray cluster to train on), ATOM_RAY_NUM_CPUS,
         ATOM_CONTROL_RETRY_WINDOW (seconds to retry calls while control is down, default 600),
         ATOM_LOG_SHIP (1: send stdout and stderr to control too; see runtime_agent.log_shipping)

Exit codes: 0 succeeded (runningAutoFinish sent), 1 failed (state failed reported, reason on the
last stderr line), 143 stopped (SIGTERM or a heartbeat answer), 2 bad command line.

Without control: `atom-runtime run --spec task.yaml` (a TaskSpec in YAML/JSON, camelCase;
callbacks become log lines) and `atom-runtime dev --spec task.yaml` (the same, DEBUG logs).

Inference: `atom-runtime serve --service-id N --port P` (env ATOM_CONTROL_URL, ATOM_SERVICE_TOKEN)
or `atom-runtime serve --model PATH --operator module:Class --name NAME --port P`.
Routing front of one service: `atom-runtime front --port P --state PATH` (env ATOM_FRONT_TOKEN;
see runtime_agent.front.cli).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from runtime_agent.logs import configure_logging

if TYPE_CHECKING:
    from runtime_agent.callbacks import Callbacks
    from runtime_agent.pipeline import RunOutcome
    from runtime_agent.settings import AgentSettings

logger = logging.getLogger("runtime_agent")
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The `atom-runtime` argument parser."""
    parser = argparse.ArgumentParser(prog="atom-runtime", description="Atom runtime agent")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one task (from control, or from a spec file)")
    source = run.add_mutually_exclusive_group()
    source.add_argument(
        "--run-id", type=int, help="the runtime id (default: ATOM_RUN_ID); needs ATOM_CONTROL_URL"
    )
    source.add_argument("--spec", type=Path, help="a TaskSpec YAML/JSON file: run with no control")
    run.add_argument(
        "--local-train", action="store_true", help="run train_loop in-process instead of Ray Train"
    )

    dev = sub.add_parser("dev", help="run a spec file locally with verbose logs")
    dev.add_argument("--spec", type=Path, required=True, help="a TaskSpec YAML/JSON file")
    dev.add_argument("--run-id", type=int, default=None, help="override the spec's runId")
    dev.add_argument(
        "--local-train", action="store_true", help="run train_loop in-process instead of Ray Train"
    )

    serve = sub.add_parser("serve", help="serve a model over the Open Inference Protocol (V2)")
    target = serve.add_mutually_exclusive_group(required=True)
    target.add_argument("--service-id", type=int, help="fetch the ServeSpec from control")
    target.add_argument("--model", type=Path, help="a model directory or model.tar.gz")
    serve.add_argument("--operator", help="module:Class of the reasoning operator (with --model)")
    serve.add_argument("--name", help="the V2 model name (with --model; default: the model path's stem)")
    serve.add_argument("--version", default="1", help="the V2 model version (with --model)")
    serve.add_argument("--model-conf", default="{}", help="modelConf JSON for the operator (with --model)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)

    from runtime_agent.front import cli as front_cli  # light: argparse only

    front_cli.add_arguments(sub.add_parser("front", help="route one service's traffic to its versions"))
    return parser


def complain(message: str, code: int = EXIT_USAGE) -> int:
    """Print a CLI error line to stderr; returns `code`."""
    print(message, file=sys.stderr)  # noqa: T201 - CLI output
    return code


def _settings() -> AgentSettings:
    from runtime_agent.settings import AgentSettings

    return AgentSettings()


async def _run(settings: AgentSettings, args: argparse.Namespace, spec_path: Path | None) -> RunOutcome:
    from runtime_agent.callbacks import ControlCallbacks, LogCallbacks
    from runtime_agent.pipeline import load_spec_file
    from runtime_agent.runner import run_task

    callbacks: Callbacks
    spec = None
    if spec_path is not None:
        spec = load_spec_file(spec_path, run_id=getattr(args, "run_id", None))
        callbacks = LogCallbacks()
    else:
        from control.client import AsyncControlClient

        assert settings.control_url is not None and settings.run_id is not None
        token = settings.run_token.get_secret_value() if settings.run_token else None
        from runtime_agent._retry import RetryPolicy

        client = AsyncControlClient(settings.control_url, token=token)
        retry = RetryPolicy(window=settings.control_retry_window)
        callbacks = ControlCallbacks(client, settings.run_id, retry=retry)
    try:
        return await run_task(
            settings,
            callbacks,
            spec=spec,
            train_executor="direct" if args.local_train else None,
            handle_signals=True,
            apply_env=True,
        )
    finally:
        await callbacks.aclose()


def cmd_run(args: argparse.Namespace, *, verbose: bool = False) -> int:
    """`run` / `dev`: run one task; returns the exit code."""
    from control.schemas import RunState
    from runtime_agent.errors import SpecError
    from runtime_agent.pipeline import EXIT_FAILED

    settings = _settings()
    configure_logging("DEBUG" if verbose else settings.log_level)
    if verbose:
        for quiet in ("ray", "urllib3", "filelock", "asyncio"):
            logging.getLogger(quiet).setLevel(logging.INFO)
    spec_path: Path | None = args.spec
    if spec_path is None:
        if args.run_id is not None:
            settings.run_id = args.run_id
        if settings.run_id is None or not settings.control_url:
            return complain("atom-runtime run: give --spec FILE, or --run-id N with ATOM_CONTROL_URL set")
        from runtime_agent.log_shipping import ship_output

        ship_output(settings)  # ATOM_LOG_SHIP: the output reaches control too, sent until the exit
    try:
        outcome = asyncio.run(_run(settings, args, spec_path))
    except SpecError as exc:
        logger.error("%s", exc)
        return complain(f"error: {exc}", EXIT_FAILED)
    if outcome.reason and outcome.exit_code:
        complain(f"{'stopped' if outcome.state == RunState.STOPPED else 'error'}: {outcome.reason}")
    return outcome.exit_code


def cmd_serve(args: argparse.Namespace) -> int:
    """`serve`: answer V2 inference requests until SIGTERM; returns the exit code."""
    from runtime_agent.serve import ModelServer, control_loader, create_app, local_loader, serve
    from runtime_agent.serve_auth import service_gate

    settings = _settings()
    configure_logging(settings.log_level)
    gate = None
    if args.service_id is not None:
        server = ModelServer(control_loader(settings, args.service_id))
        gate = service_gate(settings, args.service_id)
    else:
        if not args.operator:
            return complain("atom-runtime serve: --model needs --operator module:Class")
        try:
            model_conf = json.loads(args.model_conf)
        except json.JSONDecodeError as exc:
            return complain(f"atom-runtime serve: --model-conf is not JSON: {exc}")
        name = args.name or args.model.name.split(".")[0]
        loader = local_loader(
            args.model, args.operator, name=name, version=args.version, model_conf=model_conf
        )
        server = ModelServer(loader, name=name)
    logger.info("serving on http://%s:%d (V2 protocol)", args.host, args.port)
    asyncio.run(serve(create_app(server, gate=gate), host=args.host, port=args.port))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `atom-runtime` and `python -m runtime_agent`."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "front":
        from runtime_agent.front import cli as front_cli

        return front_cli.run(args)
    return cmd_run(args, verbose=args.command == "dev")


if __name__ == "__main__":
    sys.exit(main())
