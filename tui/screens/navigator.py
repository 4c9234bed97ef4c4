"""NavigatorScreen (placeholder)."""

from __future__ import annotations

from tui.screens.base import AtomScreen


class NavigatorScreen(AtomScreen):
    TITLE_TEXT = "navigator"
