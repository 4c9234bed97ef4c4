"""What the resource forms share: saving by name with PUT, the body that keeps what the form does
not show, a name check for new resources, and choices (enums, the space's connections).

PUT replaces a resource whole, so an edit sends the stored fields back with what was typed on
top; a field the form shows but was left blank falls back to control's default; a password left
blank is omitted, and control keeps the stored one.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from control.client import KINDS
from control.errors import ControlAPIError
from tui.widgets.form import FieldSpec, FormAction, FormResult, FormScreen

if TYPE_CHECKING:
    from control.schemas import Wire
    from tui.screens.base import AtomScreen

#: reference fields by id that a form replaces with a name field (`connectionName`)
ID_REFS: dict[str, tuple[str, ...]] = {"connectionName": ("connectionId", "connectId")}


def enum_options(kind: type[enum.Enum], labels: dict[str, str] | None = None) -> list[tuple[str, Any]]:
    """(label, value) pairs for a select over an enum's wire values."""
    return [((labels or {}).get(m.value, m.value), m.value) for m in kind]


async def connection_options(screen: AtomScreen, current: str | None = None) -> list[tuple[str, Any]]:
    """The space's connections as select options (`name (TYPE)`); `current` is kept even if gone."""
    rows = await screen.attempt(lambda c: c.list(screen.space, "connections"), what="loading connections")
    options = [(f"{r['connectName']} ({r['connectType']})", r["connectName"]) for r in rows or []]
    if current and current not in {value for _, value in options}:
        options.append((current, current))
    return options


def split_defaults(existing: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """`forms.edit` passes a stored resource (it has an `id`) or defaults for a new one
    (`{"experimentId": 3}`): (the resource to edit or None, the defaults)."""
    if existing and "id" in existing:
        return existing, {}
    return None, dict(existing or {})


class ResourceForm:
    """One create-or-edit form for a resource kind, saved with PUT by name.

    Args:
        screen: the screen that opened it (its space and control client).
        kind: as `control.client.KINDS` names it.
        noun: for titles and notices (`connection`).
        model: the kind's create body (`ConnectionIn`): which view fields a PUT may send back.
        existing: the resource's view when editing, None for a new one.
        fields: the fields after the name (the name field is added for a new resource only).
        defaults: initial values for a new resource.
    """

    def __init__(
        self,
        screen: AtomScreen,
        kind: str,
        noun: str,
        model: type[Wire],
        existing: dict[str, Any] | None,
        fields: Iterable[FieldSpec],
        *,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        self.screen = screen
        self.kind = kind
        self.noun = noun
        self.model = model
        self.existing = existing
        self.name_field = KINDS[kind]
        name = (
            []
            if existing
            else [FieldSpec(self.name_field, "Name", required=True, placeholder=f"{noun} name")]
        )
        self.fields: list[FieldSpec] = [*name, *fields]
        self.values: dict[str, Any] = dict(existing) if existing else dict(defaults or {})
        self._saved: set[str] = set()

    @property
    def title(self) -> str:
        if self.existing is None:
            return f"New {self.noun} in space {self.screen.space}"
        return f"Edit {self.noun} {self.existing[self.name_field]}"

    def name_of(self, values: dict[str, Any]) -> str:
        return str(self.existing[self.name_field] if self.existing else values[self.name_field])

    def body(self, values: dict[str, Any]) -> dict[str, Any]:
        """The PUT body: stored fields the form does not show, then what the form holds."""
        allowed = {f.alias or n for n, f in self.model.model_fields.items()}
        body = {k: v for k, v in (self.existing or {}).items() if k in allowed}
        shown = {spec.name: spec for spec in self.fields}
        for name, spec in shown.items():
            if name not in values and not spec.omit_blank:
                body.pop(name, None)  # left blank: control's default
            for ref in ID_REFS.get(name, ()):
                body.pop(ref, None)
        body.update(values)
        body[self.name_field] = self.name_of(values)
        return body

    async def save(self, values: dict[str, Any]) -> dict[str, Any]:
        """PUT the resource; a new one must not take the name of one that exists."""
        name = self.name_of(values)
        if self.existing is None and name not in self._saved:
            await self._ensure_new(name)
        body = self.body(values)
        space = self.screen.space
        saved: dict[str, Any] = await self.screen.api.call(lambda c: c.put(space, self.kind, name, body))
        self._saved.add(name)
        return saved

    async def _ensure_new(self, name: str) -> None:
        space = self.screen.space
        try:
            await self.screen.api.call(lambda c: c.get(space, self.kind, name))
        except ControlAPIError as exc:
            if exc.status_code == 404:
                return
            raise
        raise ControlAPIError(
            f"a {self.noun} named {name!r} exists already in space {space}",
            status_code=409,
            fields={self.name_field: f"taken: pick another name, or edit {name} (e)"},
        )

    async def open(self, actions: Sequence[FormAction] = ()) -> dict[str, Any] | None:
        """Show the form until saved (the saved resource) or cancelled (None)."""
        form = FormScreen(self.title, self.fields, self.save, values=self.values, actions=actions)
        result: FormResult | None = await self.screen.app.push_screen_wait(form)
        if result is None:
            return None
        saved: dict[str, Any] = result.answer
        self.screen.notify(f"{self.noun} {self.name_of(result.values)} saved", title="saved")
        return saved
