"""A run's artifacts (model version, metrics, sink datasets, declared files) as a table.

`enter` or `v` on a model row opens the Models screen on that model, with its versions.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from control.schemas.artifacts import ArtifactOut

COLUMNS = ("name", "kind", "value", "uri", "reused from")


def value_text(item: ArtifactOut) -> Text:
    """One line of what the artifact holds."""
    value: dict[str, Any] = item.value or {}
    kind = item.kind.value
    if kind == "model":
        best = value.get("operatorResult") == "CONTAIN_OPTIMAL"
        return Text.assemble(
            (f"{value.get('modelName', '')} v{value.get('version', '')}", "bold"),
            f"  score {value.get('score', '')}  ",
            ("best so far" if best else "not the best", "green" if best else "bright_black"),
        )
    if kind == "metrics":
        return Text(
            "  ".join(f"{k}={v:.4g}" if isinstance(v, int | float) else f"{k}={v}" for k, v in value.items())
        )
    if kind == "dataset":
        return Text(
            f"{value.get('rows', '?')} rows to {value.get('target', '')} ({value.get('connection', '')})"
        )
    return Text(f"{value.get('file', '')} ({value.get('bytes', '?')} bytes)")


class ArtifactsTable(DataTable[Any]):
    """The artifacts of one run; a model row opens that model's versions."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("v", "open_model", "Model versions")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.items: list[ArtifactOut] = []

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def update_items(self, items: list[ArtifactOut]) -> None:
        self.items = list(items)
        self.clear()
        for item in self.items:
            self.add_row(
                item.name,
                item.kind.value,
                value_text(item),
                item.uri or "-",
                f"#{item.reused_from}" if item.reused_from else "-",
                key=item.name,
            )

    def selected(self) -> ArtifactOut | None:
        if not self.items or self.cursor_row < 0 or self.cursor_row >= len(self.items):
            return None
        return self.items[self.cursor_row]

    def model_name(self) -> str | None:
        """The model of the selected row (a model artifact), else None."""
        item = self.selected()
        if item is None or item.kind.value != "model":
            return None
        return str((item.value or {}).get("modelName") or "") or None

    async def action_open_model(self) -> None:
        name = self.model_name()
        if name is None:
            self.notify("pick a model artifact to open its versions", severity="warning")
            return
        app = self.app
        await app.switch_mode("models")
        setter = getattr(app.screen, "set_filter", None)
        if setter is not None:
            app.call_after_refresh(setter, name)

    async def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if self.model_name() is not None:
            await self.action_open_model()
