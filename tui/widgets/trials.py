"""A run's hyper-parameter search trials as a table, best first, the best row highlighted."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from control.cli.trials import STATE_STYLES, params_text
from control.schemas.trials import TrialList, TrialOut

COLUMNS = ("", "trial", "params", "state", "score", "reports")
BEST_STYLE = "bold black on green"


def trial_cells(trial: TrialOut) -> tuple[Any, ...]:
    """One row's cells; the best trial's in BEST_STYLE."""
    style = BEST_STYLE if trial.best else ""
    state_style = style or STATE_STYLES.get(trial.state.value, "")
    return (
        Text("★" if trial.best else "", style=style),
        Text(trial.trial_id, style=style),
        Text(params_text(trial.params), style=style),
        Text(trial.state.value, style=state_style),
        Text("-" if trial.score is None else f"{trial.score:.6g}", style=style, justify="right"),
        Text(str(len(trial.history)), style=style, justify="right"),
    )


class TrialsTable(DataTable[Any]):
    """The trials of one run (`TrialList`), in control's order: the best first."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.page: TrialList | None = None

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def update_trials(self, page: TrialList) -> None:
        self.page = page
        self.clear()
        for trial in page.items:
            self.add_row(*trial_cells(trial), key=trial.trial_id)

    def best_row(self) -> int | None:
        """The index of the best trial's row, or None."""
        if self.page is None:
            return None
        return next((i for i, t in enumerate(self.page.items) if t.best), None)
