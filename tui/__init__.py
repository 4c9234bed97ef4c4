"""Atom's terminal dashboard (`atom tui`): a Textual app that talks to control over HTTP only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui.app import AtomApp, make_app
    from tui.config import TuiConfig

__all__ = ["AtomApp", "TuiConfig", "make_app"]


def __getattr__(name: str) -> Any:
    # deferred: importing `tui` must not load Textual until the app is built
    if name in ("AtomApp", "make_app"):
        from tui import app

        return getattr(app, name)
    if name == "TuiConfig":
        from tui.config import TuiConfig

        return TuiConfig
    raise AttributeError(name)
