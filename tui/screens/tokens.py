"""Tokens screen: your personal API tokens (name, scope, spaces, expiry, last use, state). `n` makes
one and shows its secret once in a dialog (`c` copies it); `x` revokes the selected one after a
confirm. Lists never hold a secret: control does not send one back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from control.errors import ControlAPIError
from control.schemas.users import TokenIssued
from tui.screens.table import Column, TableScreen, dash
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.form import FieldSpec, FormResult, FormScreen

STATE_STYLES = {"active": "green", "expired": "yellow", "revoked": "bright_black"}
SCOPES = [("read: look only", "read"), ("write: change things", "write"), ("admin: manage spaces", "admin")]

FIELDS = [
    FieldSpec("tokenName", "Name", required=True, placeholder="what uses it, e.g. ci-pipeline"),
    FieldSpec("scope", "Scope", kind="select", required=True, options=SCOPES),
    FieldSpec("spaces", "Spaces", placeholder="all of yours", help="space names, comma-separated"),
    FieldSpec("expiresInDays", "Expires in days", kind="int", placeholder="the server's default"),
]


def when(value: str | datetime | None) -> str:
    """`YYYY-MM-DD HH:MM` in local time; empty for None."""
    if not value:
        return ""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone().strftime("%Y-%m-%d %H:%M")


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def spaces_of(text: str | None) -> list[str] | None:
    names = [s.strip() for s in (text or "").split(",") if s.strip()]
    return names or None


class SecretScreen(ModalScreen[None]):
    """A new token's secret, shown this once; `c` copies it, Enter or Escape closes."""

    DEFAULT_CSS = """
    SecretScreen { align: center middle; }
    SecretScreen > Vertical { width: 90; max-width: 95%; height: auto; border: thick $success;
                              background: $surface; padding: 1 2; }
    SecretScreen #secret { margin: 1 0; text-style: bold; }
    SecretScreen #secret-buttons { height: auto; align-horizontal: right; }
    SecretScreen Button { margin-left: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy"),
        Binding("escape", "close", "Close"),
        Binding("enter", "close", "Close", show=False),
    ]

    def __init__(self, made: TokenIssued) -> None:
        super().__init__()
        self.made = made

    def compose(self) -> ComposeResult:
        made = self.made
        with Vertical():
            yield Static(
                f"Token {made.token_name!r} (scope {made.scope}, expires {when(made.expires_at)}). "
                "Copy it now: it is not shown again."
            )
            yield Static(Text(made.token, overflow="fold"), id="secret")
            with Horizontal(id="secret-buttons"):
                yield Button("Copy (c)", id="copy")
                yield Button("Done", id="done", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#done", Button).focus()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.made.token)
        self.notify("copied the token", title="clipboard")

    def action_close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "copy":
            self.action_copy()
        else:
            self.action_close()


class TokensScreen(TableScreen):
    """The caller's personal tokens, refreshed live."""

    TITLE_TEXT = "Tokens"
    NOUN = "token"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_token", "New token"),
        Binding("x", "revoke", "Revoke"),
    ]

    def columns(self) -> Sequence[Column]:
        return [
            Column("id", lambda r: r["id"]),
            Column("name", lambda r: r["tokenName"]),
            Column("scope", lambda r: r["scope"]),
            Column("spaces", lambda r: ", ".join(r["spaces"]) if r.get("spaces") is not None else "all"),
            Column("expires", lambda r: dash(when(r.get("expiresAt")))),
            Column("last used", lambda r: dash(when(r.get("lastUsedAt")))),
            Column("state", lambda r: state_text(r["state"])),
            Column("created", lambda r: when(r.get("createdAt")), wide=True),
        ]

    async def fetch(self) -> list[dict[str, Any]] | None:
        tokens = await self.attempt(lambda c: c.list_tokens(), what="loading tokens")
        return None if tokens is None else [t.wire() for t in tokens]

    # -- keys -------------------------------------------------------------------------------

    def action_new_token(self) -> None:
        self._new_token()

    @work(group="token-action", exit_on_error=False)
    async def _new_token(self) -> None:
        client = self.api.client  # direct: a 403 here is an answer for the form, not lost access

        async def submit(values: dict[str, Any]) -> TokenIssued:
            return await client.create_token(
                values["tokenName"],
                scope=values.get("scope") or "write",
                spaces=spaces_of(values.get("spaces")),
                expires_in_days=values.get("expiresInDays"),
            )

        form = FormScreen("New token", FIELDS, submit, values={"scope": "write"}, submit_label="Create")
        result: FormResult | None = await self.app.push_screen_wait(form)
        if result is None:
            return
        made: TokenIssued = result.answer
        self.select(str(made.id))
        self.refresh_data()
        await self.app.push_screen_wait(SecretScreen(made))

    def action_revoke(self) -> None:
        row = self.selected()
        if row is None:
            self.notify("no token selected", severity="warning")
            return
        if row["state"] == "revoked":
            self.notify(f"{row['tokenName']} is already revoked", severity="warning")
            return
        self._revoke(int(row["id"]), str(row["tokenName"]))

    @work(group="token-action", exit_on_error=False)
    async def _revoke(self, token_id: int, name: str) -> None:
        question = f"Revoke token {name}? Whatever uses it is refused from now on."
        if not await self.app.push_screen_wait(ConfirmScreen(question, yes="Revoke")):
            return
        try:
            await self.api.client.revoke_token(token_id)
        except ControlAPIError as exc:
            self.notify(f"revoking {name}: {exc}", severity="error", timeout=8)
        else:
            self.notify(f"{name} revoked", title="revoked")
        self.refresh_data()
