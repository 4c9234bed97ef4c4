"""ModelsScreen (placeholder)."""

from __future__ import annotations

from tui.screens.base import AtomScreen


class ModelsScreen(AtomScreen):
    TITLE_TEXT = "models"
