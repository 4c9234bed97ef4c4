"""`atom-runtime front`: run the routing front of one service until SIGTERM.

    atom-runtime front --port P [--host 127.0.0.1] --state PATH [--service NAME] [--timeout S]
    env: ATOM_FRONT_TOKEN (the admin token for PUT /_atom/front/routes; never logged),
         ATOM_LOG_LEVEL

On start the routing table is read from `--state` when that file exists, so a restarted front
serves at once, with or without control. Exit codes: 0 stopped, 1 could not start (a bad state
file, a port in use).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

__all__ = ["TOKEN_ENV", "add_arguments", "run"]

TOKEN_ENV = "ATOM_FRONT_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `front` subcommand's flags."""
    parser.add_argument("--port", type=int, required=True, help="the service's stable port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--state", type=Path, required=True, help="the routing table file (read on start, written on PUT)"
    )
    parser.add_argument("--service", help="refuse routing tables of any other service name")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds a replica may take to answer (default 120)"
    )


def _remember_no_sniffio() -> None:
    """Make a missing `sniffio` fail fast: httpcore imports it for every lock it sets up (a few per
    request), and a failed import walks sys.path each time: about a third of the front's CPU."""
    import importlib.util
    import sys

    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]  # "import sniffio" raises at once


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM / SIGINT; returns the exit code."""
    import asyncio
    import logging

    import uvicorn  # deferred: only serving commands need it

    from runtime_agent.front.proxy import Front, FrontConfig
    from runtime_agent.logs import add_secret, configure_logging
    from runtime_agent.settings import AgentSettings

    configure_logging(AgentSettings().log_level)
    _remember_no_sniffio()
    logger = logging.getLogger("runtime_agent.front")
    token = os.environ.get(TOKEN_ENV) or None
    add_secret(token)
    if token is None:
        logger.warning("%s is not set: PUT routes is refused; routing by the state file only", TOKEN_ENV)
    front = Front(FrontConfig(state_path=args.state, token=token, service=args.service, timeout=args.timeout))
    config = uvicorn.Config(
        front,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        server_header=False,  # the replica's own Server and Date headers go back unchanged
        date_header=False,
        timeout_graceful_shutdown=30,
        backlog=1024,
    )
    server = uvicorn.Server(config)
    logger.info("front on http://%s:%d (state %s)", args.host, args.port, args.state)
    try:
        asyncio.run(server.serve())
    except SystemExit:  # uvicorn could not start (a bad state file, the port taken): logged why
        return 1
    return 0 if server.started else 1
