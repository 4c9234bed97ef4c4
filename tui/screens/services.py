"""ServicesScreen (placeholder)."""

from __future__ import annotations

from tui.screens.base import AtomScreen


class ServicesScreen(AtomScreen):
    TITLE_TEXT = "services"
