"""A modal form for any control resource: typed fields, local checks, and the API's errors beside fields.

A screen describes its fields with `FieldSpec` (wire names, as the API names them) and passes an
async `submit(values)` that calls control. A 422 from control carries `fields`
(`ControlAPIError.fields`): each message appears under its field; the rest goes in the status line.
The form stays open with what was typed until control accepts it, so nothing typed is lost.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, SelectionList, Static, TextArea
from textual.worker import Worker

from control.errors import ControlAPIError
from tui.errors import Unavailable
from tui.workers import report_failure

Kind = Literal["text", "int", "password", "select", "multi", "bool", "json"]


@dataclass
class FieldSpec:
    """One field of a form."""

    name: str
    """The wire name (camelCase), as control names it in bodies and in 422 `errors`."""
    label: str
    kind: Kind = "text"
    required: bool = False
    options: Sequence[tuple[str, Any]] = ()
    """(label, value) pairs for `select` and `multi`."""
    placeholder: str = ""
    help: str = ""
    """One line under the field."""
    omit_blank: bool = False
    """Leave the field out of the values when it is empty (passwords on edit: keep the old one)."""


@dataclass
class FormAction:
    """An extra button: runs with the current values and says how it went in the status line."""

    label: str
    run: Callable[[dict[str, Any]], Awaitable[tuple[bool, str]]]
    id: str = "action"
    variant: Literal["default", "primary", "success", "warning", "error"] = "default"


@dataclass
class FormResult:
    """What `FormScreen` dismisses with after control accepted the form."""

    values: dict[str, Any]
    answer: Any = None
    """What `submit` returned (usually the saved resource)."""
    extra: dict[str, Any] = field(default_factory=dict)


def _input_id(name: str) -> str:
    return f"f-{name}"


class FormScreen(ModalScreen[FormResult | None]):
    """Create or edit one resource.

    Args:
        title: e.g. `New connection`.
        fields: the fields, in order.
        submit: awaited with the values; raise `ControlAPIError` to keep the form open.
        values: initial values by wire name (an edit).
        actions: extra buttons (e.g. test connection).
        submit_label: the main button's label.
    """

    DEFAULT_CSS = """
    FormScreen { align: center middle; }
    FormScreen > Vertical#form {
        width: 90%; max-width: 100; height: 90%; max-height: 50;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    FormScreen #form-title { text-style: bold; padding: 0 0 1 0; }
    FormScreen .field-label { margin-top: 1; }
    FormScreen .field-help { color: $text-muted; }
    FormScreen .field-error { color: $error; display: none; }
    FormScreen .field-error.shown { display: block; }
    FormScreen #form-status { height: auto; min-height: 1; }
    FormScreen #form-status.error { color: $error; }
    FormScreen #form-status.ok { color: $success; }
    FormScreen #form-buttons { height: auto; align-horizontal: right; }
    FormScreen #form-buttons Button { margin-left: 1; }
    FormScreen TextArea { height: 6; }
    FormScreen SelectionList { height: auto; max-height: 8; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save", priority=True),
    ]

    def __init__(
        self,
        title: str,
        fields: Sequence[FieldSpec],
        submit: Callable[[dict[str, Any]], Awaitable[Any]],
        *,
        values: dict[str, Any] | None = None,
        actions: Sequence[FormAction] = (),
        submit_label: str = "Save",
    ) -> None:
        super().__init__()
        self.form_title = title
        self.fields = list(fields)
        self._submit = submit
        self._initial = dict(values or {})
        self._actions = list(actions)
        self._submit_label = submit_label

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="form"):
            yield Static(self.form_title, id="form-title")
            with VerticalScroll(id="form-fields", can_focus=False):  # focus lands on the first field
                for spec in self.fields:
                    mark = " *" if spec.required else ""
                    yield Label(f"{spec.label}{mark}", classes="field-label")
                    yield self._editor(spec)
                    if spec.help:
                        yield Static(spec.help, classes="field-help")
                    yield Static("", id=f"e-{spec.name}", classes="field-error")
            yield Static("", id="form-status")
            with Horizontal(id="form-buttons"):
                for action in self._actions:
                    yield Button(action.label, id=f"act-{action.id}", variant=action.variant)
                yield Button("Cancel", id="cancel")
                yield Button(self._submit_label, id="save", variant="primary")

    def _editor(self, spec: FieldSpec) -> Widget:
        value = self._initial.get(spec.name)
        wid = _input_id(spec.name)
        if spec.kind == "select":
            options = [(label, val) for label, val in spec.options]
            known = {val for _, val in options}
            return Select(
                options, id=wid, allow_blank=not spec.required, value=value if value in known else Select.NULL
            )
        if spec.kind == "multi":
            chosen = set(value or [])
            return SelectionList[Any](*[(label, val, val in chosen) for label, val in spec.options], id=wid)
        if spec.kind == "bool":
            return Checkbox(spec.label, value=bool(value), id=wid)
        if spec.kind == "json":
            text = json.dumps(value, indent=2) if value not in (None, {}, []) else ""
            return TextArea(text, id=wid, language="json")
        text = "" if value is None else str(value)
        return Input(
            text,
            id=wid,
            placeholder=spec.placeholder,
            password=spec.kind == "password",
            type="integer" if spec.kind == "int" else "text",
        )

    # -- values and checks ------------------------------------------------------------------

    def read_values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The typed values, and local errors by field (required, integers, JSON)."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for spec in self.fields:
            widget = self.query_one(f"#{_input_id(spec.name)}")
            raw: Any
            if isinstance(widget, Select):
                raw = None if widget.value is Select.NULL else widget.value
            elif isinstance(widget, SelectionList):
                raw = list(widget.selected)
            elif isinstance(widget, Checkbox):
                raw = widget.value
            elif isinstance(widget, TextArea):
                text = widget.text.strip()
                try:
                    raw = json.loads(text) if text else {}
                except json.JSONDecodeError as exc:
                    errors[spec.name] = f"not JSON: {exc.msg} (line {exc.lineno})"
                    continue
                if not isinstance(raw, dict):
                    errors[spec.name] = 'must be a JSON object, e.g. {"key": "value"}'
                    continue
            else:
                assert isinstance(widget, Input)
                raw = widget.value.strip() if spec.kind != "password" else widget.value
                if spec.kind == "int" and raw != "":
                    try:
                        raw = int(raw)
                    except ValueError:
                        errors[spec.name] = "must be a whole number"
                        continue
            blank = raw in (None, "", [])
            if blank and spec.required:
                errors[spec.name] = "required"
                continue
            if blank and (spec.omit_blank or spec.kind in ("int", "select")):
                continue
            values[spec.name] = raw
        return values, errors

    def show_errors(self, errors: dict[str, str], status: str = "") -> None:
        """Put each message under its field; messages for unknown fields go to the status line."""
        names = {spec.name for spec in self.fields}
        rest = [f"{name}: {msg}" for name, msg in errors.items() if name not in names]
        for spec in self.fields:
            box = self.query_one(f"#e-{spec.name}", Static)
            msg = errors.get(spec.name, "")
            box.update(Text(f"↳ {msg}") if msg else "")
            box.set_class(bool(msg), "shown")
        self.set_status("; ".join([status, *rest] if status else rest), ok=not (status or rest))
        first = next((spec.name for spec in self.fields if spec.name in errors), None)
        if first is not None:
            self.query_one(f"#{_input_id(first)}").focus()

    def set_status(self, message: str, *, ok: bool) -> None:
        status = self.query_one("#form-status", Static)
        status.update(Text(message))
        status.set_class(bool(message) and not ok, "error")
        status.set_class(bool(message) and ok, "ok")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event)

    # -- actions ----------------------------------------------------------------------------

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        values, errors = self.read_values()
        if errors:
            self.show_errors(errors, "fix the marked fields")
            return
        self.show_errors({})
        self.set_status("saving ...", ok=True)
        self._save(values)

    @work(exclusive=True, group="form", exit_on_error=False)
    async def _save(self, values: dict[str, Any]) -> None:
        try:
            answer = await self._submit(values)
        except Unavailable as exc:
            self.show_errors({}, f"{exc} (what you typed is kept)")
            return
        except ControlAPIError as exc:
            fields = dict(getattr(exc, "fields", None) or {})
            self.show_errors(
                fields, "control refused it: " + str(exc) if not fields else "control refused it"
            )
            return
        self.dismiss(FormResult(values=values, answer=answer))

    @work(exclusive=True, group="form-action", exit_on_error=False)
    async def _run_action(self, action: FormAction, values: dict[str, Any]) -> None:
        try:
            ok, message = await action.run(values)
        except Unavailable as exc:
            ok, message = False, str(exc)
        except ControlAPIError as exc:
            fields = dict(getattr(exc, "fields", None) or {})
            self.show_errors(fields, str(exc))
            return
        self.set_status(message, ok=ok)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.action_cancel()
        elif event.button.id == "save":
            self.action_save()
        else:
            for action in self._actions:
                if event.button.id == f"act-{action.id}":
                    values, errors = self.read_values()
                    if errors:
                        self.show_errors(errors, "fix the marked fields")
                        return
                    self.set_status(f"{action.label} ...", ok=True)
                    self._run_action(action, values)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()
