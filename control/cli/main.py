"""Entry point of the `atom` command: the argument parser, control resolution, dispatch and errors.

Exit codes: 0 done; 1 control, a run or a service said no (or is unreachable);
2 the command line or a spec is wrong; 130 interrupted. Errors are one red line on
stderr, `error: <message>`; `--debug` adds the traceback.

Where control is: `--url` / `ATOM_URL`; else a server already answering on
127.0.0.1:`ATOM_PORT` (8470); else an embedded server for the length of the command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.text import Text

from connectors.errors import AtomError, ConfigError
from control.cli._context import Context, UsageError
from control.cli._spec import SpecError, load_spec
from control.errors import ControlAPIError
from control.schemas import RunState

if TYPE_CHECKING:
    import httpx

Handler = Callable[[Context, argparse.Namespace], Coroutine[Any, Any, int]]


def _error(console: Console, message: str) -> None:
    console.print(
        Text.assemble(("error:", "bold red"), " ", (message, "red")), soft_wrap=True, highlight=False
    )


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one red line like every other error."""

    def error(self, message: str) -> NoReturn:
        _error(Console(stderr=True), f"{message} (see `{self.prog} --help`)")
        raise SystemExit(2)


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    env = os.environ.get

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument("--url", default=default(env("ATOM_URL")), help="control URL (env ATOM_URL)")
    group.add_argument("--token", default=default(env("ATOM_TOKEN")), help="API token (env ATOM_TOKEN)")
    group.add_argument(
        "--space",
        default=default(env("ATOM_SPACE") or "default"),
        help="space (env ATOM_SPACE; default: default)",
    )
    group.add_argument(
        "--debug", action="store_true", default=default(False), help="tracebacks and server logs"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="atom", description="Atom: run ML operators end to end, from the command line.")
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help: str, handler: Handler | None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _global_options(p, top=False)
        p.set_defaults(handler=handler)
        return p

    from control.cli import apply, audit, auth, manifests, quickstart, runs, services
    from control.cli import artifacts as artifacts_cli
    from control.cli import quota as quota_cli
    from control.cli import schedules as schedules_cli
    from control.cli import trials as trials_cli

    p = command("server", "run control in the foreground", None)
    p.add_argument("--host", help="address to listen on (env ATOM_HOST; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (env ATOM_PORT; default 8470)")

    p = command("apply", "create or update what spec files describe (idempotent)", apply.cmd_apply)
    p.add_argument(
        "-f", "--filename", action="append", required=True, metavar="SPEC", help="a YAML spec (repeatable)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="validate and show what would change; write nothing"
    )

    p = command("get", "list resources of a kind (or show one by name)", runs.cmd_get)
    p.add_argument("kind", help="connections, sources, operators, models, service-infos, experiments, exams, "
                   "nodes, runs, services")  # fmt: skip
    p.add_argument("name", nargs="?", help="show this one")
    p.add_argument("-o", "--output", choices=("table", "yaml", "json"), help="output format")

    p = command(
        "describe", "show one resource in detail (a run: state history and metrics)", runs.cmd_describe
    )
    p.add_argument("kind", help="run, or any kind `atom get` takes")
    p.add_argument("name", metavar="ID|NAME")

    p = command("start", "start a node (or an exam: every node in order)", runs.cmd_start)
    p.add_argument("what", choices=("node", "exam"))
    p.add_argument("name")
    p.add_argument(
        "--env", action="append", metavar="K=V", help="environment variable for the run (repeatable)"
    )
    p.add_argument("--param", action="append", metavar="K=V", help="runParameter entry (repeatable)")
    p.add_argument(
        "--wait", action="store_true", help="follow the run until it ends; exit 1 unless it succeeded"
    )

    p = command("runs", "list runs", runs.cmd_runs)
    p.add_argument("--node", help="only this node's runs")
    p.add_argument("--state", choices=[s.value for s in RunState])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("-w", "--watch", action="store_true", help="refresh until Ctrl-C")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    p.add_argument("--watch-count", type=int, help=argparse.SUPPRESS)

    p = command("logs", "print a run's log", runs.cmd_logs)
    p.add_argument("run", metavar="RUN_ID")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    p.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)

    p = command("stop", "stop a run", runs.cmd_stop)
    p.add_argument("run", metavar="RUN_ID")
    p.add_argument("--reason", default="stopped by user")

    from control.cli import attempts as attempts_cli

    p = command("rerun", "run an ended run again as its next attempt (same run id)", attempts_cli.cmd_rerun)
    p.add_argument("run", metavar="RUN_ID")
    p.add_argument("--reason", default="re-run by user")

    from control.cli import exam_runs as exam_runs_cli

    listing = command("exam-runs", "list exam runs, or show one with its runs", exam_runs_cli.cmd_exam_runs)
    again = command("resume", "run a failed exam run again from its failed nodes", exam_runs_cli.cmd_resume)
    exam_runs_cli.register(listing, again)

    p = command("services", "list services; `key NAME`: new key; `public NAME on|off`", services.cmd_services)
    services.register(p)

    p = command(
        "render",
        "print the YAML the Kubernetes adapter would apply for a node's next run or a service",
        manifests.cmd_render,
    )
    p.add_argument("what", choices=("node", "service"))
    p.add_argument("name", metavar="NAME", help="a node's name, or a service's name or id")

    p = command("predict", "send an Open Inference Protocol (V2) request to a service", services.cmd_predict)
    p.add_argument("service", metavar="SERVICE", help="service id or name")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--json", metavar="JSON", help="a V2 body, a record, records or columns; @file reads a file"
    )
    src.add_argument("--csv", metavar="FILE", help="rows to send")
    p.add_argument("--rows", type=int, help="send only the first N rows")
    p.add_argument(
        "--label", metavar="COLUMN", help="leave this column out and show it beside the predictions"
    )
    p.add_argument("--raw", action="store_true", help="print the V2 response as JSON")
    p.add_argument("--key", help="the service's key (default: send the token used for control)")

    p = command("quickstart", "make a dataset, train on it, serve the model, predict: one command",
                quickstart.cmd_quickstart)  # fmt: skip
    p.add_argument("--rows", type=int, default=2000, help="rows of synthetic data (default 2000)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    p.add_argument("--dir", help="where data and spec go (default {home}/quickstart)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the run and the service")
    p.add_argument("--predict-rows", type=int, default=5, help=argparse.SUPPRESS)

    auth.register(command)
    audit.register(command)
    quota_cli.register(command)
    trials_cli.register(command)
    schedules_cli.register(command)
    artifacts_cli.register(command)
    _plugin_commands(command)
    return parser


def _plugin_commands(command: Callable[[str, str, Handler | None], argparse.ArgumentParser]) -> None:
    """Commands other packages add (`atom tui`), from the `atom.commands` entry point group.

    Found at run time so that control never imports them (DESIGN.md §1).
    """
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group="atom.commands"), key=lambda e: e.name):
        try:
            register = ep.load()
        except ImportError as exc:
            command(ep.name, f"(cannot load: {exc})", _broken_plugin(ep.name, exc))
            continue
        register(command)


def _broken_plugin(name: str, exc: ImportError) -> Handler:
    async def handler(ctx: Context, args: argparse.Namespace) -> int:
        raise UsageError(f"`atom {name}` cannot load ({exc}): reinstall Atom with `pip install -e .`")

    return handler


def main(argv: Sequence[str] | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> int:
    """Run one `atom` command; return its exit code.

    Args:
        argv: the arguments (default: `sys.argv[1:]`).
        transport: talk to control through this httpx transport instead of a URL (tests).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    err = Console(stderr=True)
    _configure_logging(args)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "server":
            return _serve(args, Console())
        return _dispatch(args, transport)
    except SpecError as exc:
        for problem in exc.problems:
            _error(err, problem)
        return _fail(err, args, 2)
    except ConfigError as exc:
        _error(err, str(exc))
        return _fail(err, args, 2)
    except (ControlAPIError, AtomError, TimeoutError) as exc:
        _error(err, str(exc) or type(exc).__name__)
        return _fail(err, args, 1)
    except KeyboardInterrupt:
        if getattr(args, "watch", False) or getattr(args, "follow", False):
            return 0  # Ctrl-C is how a watch ends
        _error(err, "interrupted")
        return 130
    except BrokenPipeError:  # `atom logs 7 | head`: the reader left; say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        _error(
            err, f"unexpected {type(exc).__name__}: {exc}" + ("" if args.debug else " (--debug shows where)")
        )
        return _fail(err, args, 1)


def _configure_logging(args: argparse.Namespace) -> None:
    """`--debug` and `atom server` log to stderr; otherwise an embedded server stays quiet."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    root = logging.getLogger()
    if args.debug:
        logging.basicConfig(level=logging.INFO, format=fmt)
    elif args.command == "server":
        logging.basicConfig(level=logging.WARNING, format=fmt)
    elif not root.handlers:
        root.addHandler(logging.NullHandler())  # no "last resort" lines between the command's output


def _fail(err: Console, args: argparse.Namespace, code: int) -> int:
    if args.debug:
        err.print_exception()
    return code


def _dispatch(args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None) -> int:
    handler: Handler = args.handler
    if args.command == "apply":  # refuse a bad spec before any server is started
        args.spec = load_spec([Path(f) for f in args.filename], args.space)
    with contextlib.ExitStack() as stack:
        if transport is not None:
            from control.cli._credentials import stored_token

            url = args.url or "http://atom.test"
            token = args.token or stored_token(url)
            ctx = Context(url=url, token=token, space=args.space, transport=transport)
        else:
            from control.cli._embedded import control_url

            where = stack.enter_context(control_url(args.url, args.token, debug=args.debug))
            ctx = Context(
                url=where.url,
                token=where.token,
                space=args.space,
                embedded=where.embedded,
                startup_s=where.startup_s,
            )
        ctx.debug = args.debug
        return asyncio.run(handler(ctx, args))


def _serve(args: argparse.Namespace, out: Console) -> int:
    # deferred: the server side (FastAPI, SQLAlchemy, the store) loads only for `atom server`
    import uvicorn
    from sqlalchemy.engine import make_url

    from control.api.app import create_app
    from control.settings import Settings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    with socket.socket() as probe:  # uvicorn's own bind error is a log line and sys.exit
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            where = f"{settings.host}:{settings.port}"
            raise UsageError(
                f"cannot listen on {where} ({exc.strerror}): is `atom server` running already? "
                "--port picks another"
            ) from None
    app = create_app(settings)
    store = make_url(settings.database_url).render_as_string(hide_password=True)
    out.print(f"[bold]atom control[/] on [cyan]http://{settings.host}:{settings.port}[/]")
    out.print(f"store  {store}")
    out.print(f"home   {settings.home}")
    if settings.api_token is None:
        out.print("auth   none until a user exists (atom users create NAME --admin) or ATOM_API_TOKEN is set",
                  style="dim")  # fmt: skip
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info" if args.debug else "warning")
    return 0
