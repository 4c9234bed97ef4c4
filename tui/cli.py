"""`atom tui`: registered into the `atom` command through the `atom.commands` entry point group,
so that control never imports the dashboard. Control is found as for every `atom` command: `--url`
/ `ATOM_URL` (+ `--token` / `ATOM_TOKEN`), else a server on the local port, else an embedded one
that lives as long as the dashboard."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from control.cli._context import Context, UsageError
from tui.config import TuiConfig


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `tui` to the `atom` command line (called by control.cli.main for each entry point)."""
    p = command("tui", "the terminal dashboard (works over SSH)", cmd_tui)
    p.add_argument(
        "--theme", choices=("dark", "light"), help="colour theme (env ATOM_TUI_THEME; default dark)"
    )
    p.add_argument(
        "--log-file", metavar="PATH", help="where the dashboard logs (default: {home}/logs/tui.log)"
    )


def log_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    from control.settings import Settings

    return Settings().home / "logs" / "tui.log"


def log_to_file(path: Path, *, debug: bool) -> None:
    """The dashboard owns the terminal: every log line (the embedded server's too) goes to a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)


async def cmd_tui(ctx: Context, args: argparse.Namespace) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("atom tui needs an interactive terminal (over SSH: `ssh -t HOST atom tui`)")
    from tui.app import make_app  # deferred: Textual loads only for this command

    log_to_file(log_path(args.log_file), debug=ctx.debug)
    config = TuiConfig.from_env(ctx.url, space=ctx.space, embedded=ctx.embedded)
    if args.theme:
        config.theme = args.theme
    app = make_app(config, ctx.client(timeout=15.0), owns_client=True)
    await app.run_async()
    return app.return_code or 0
