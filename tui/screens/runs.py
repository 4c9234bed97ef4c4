"""Runs screen (placeholder until the table lands)."""

from __future__ import annotations

from tui.screens.base import AtomScreen


class RunsScreen(AtomScreen):
    TITLE_TEXT = "Runs"
