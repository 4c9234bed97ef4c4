"""Who you are to control: `atom login`, `logout`, `whoami`, `users`, `tokens` and `members`.

`atom login` keeps its token in the user's config file (`control.cli._credentials`, mode 0600);
every later command to the same control uses it unless `--token` / `ATOM_TOKEN` says otherwise.
On a fresh install (no users yet) every caller is the local admin, which is how the first user
is made: `atom users create alice --admin`, then `atom login --user alice`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.table import Table

from control.cli import _credentials as creds
from control.cli._context import UsageError
from control.cli.render import fmt_time
from control.errors import ControlAPIError

if TYPE_CHECKING:
    from control.cli._context import Context
    from control.client import AsyncControlClient
    from control.schemas.users import TokenOut

SCOPES = ("read", "write", "admin")
ROLES = ("owner", "member", "viewer")
STATE_STYLES = {
    "active": "green",
    "expired": "yellow",
    "revoked": "dim",
    "ACTIVE": "green",
    "DISABLED": "dim",
}


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the commands to the `atom` parser (`command(name, help, handler)` adds one)."""
    p = command("login", "log in to control and keep the token in your config file (mode 0600)", cmd_login)
    p.add_argument("--user", help="user name (asked when not given)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--expires-in-days", type=int, help="token lifetime (default: the server's)")

    command("logout", "revoke the stored token and forget it", cmd_logout)
    command("whoami", "who control takes you for", cmd_whoami)

    p = command("users", "create, list, disable or enable users (site admins); change a password", cmd_users)
    p.add_argument("action", choices=("create", "list", "disable", "enable", "passwd"))
    p.add_argument("name", nargs="?", metavar="USER", help="passwd: default yourself")
    p.add_argument("--admin", action="store_true", help="create: a site admin")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="create: read the password from stdin; passwd: the current one, then the new one, a line each",
    )

    p = command("tokens", "list, create or revoke your personal API tokens", cmd_tokens)
    p.add_argument("action", choices=("list", "create", "revoke"))
    p.add_argument("name", nargs="?", metavar="NAME|ID", help="create: its name; revoke: its name or id")
    p.add_argument("--scope", choices=SCOPES, default="write", help="create: what it may do (default write)")
    p.add_argument(
        "--only-space", action="append", metavar="SPACE", dest="spaces", help="create: reach only this space"
    )
    p.add_argument("--expires-in-days", type=int, help="create: lifetime (default: the server's)")
    p.add_argument("--user", help="list, revoke: this user's tokens (site admins)")

    p = command("members", "list, set or remove the members of the space (--space)", cmd_members)
    p.add_argument("action", choices=("list", "set", "remove"))
    p.add_argument("user", nargs="?", metavar="USER")
    p.add_argument("role", nargs="?", choices=ROLES, metavar="ROLE", help="set: owner, member or viewer")


def credential_url(ctx: Context) -> str:
    """The URL a stored token is kept under: an embedded server shares the local port's."""
    return creds.local_url() if ctx.embedded else ctx.url


def read_password(stdin: bool, prompt: str = "Password: ", *, confirm: bool = False) -> str:
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(prompt)
        if confirm and getpass.getpass("Again: ") != password:
            raise UsageError("the passwords differ")
    if not password:
        raise UsageError("no password given")
    return password


async def cmd_login(ctx: Context, args: argparse.Namespace) -> int:
    user = args.user or (await asyncio.to_thread(input, "User: ")).strip()
    if not user:
        raise UsageError("no user name given (--user)")
    password = read_password(args.password_stdin)
    url = credential_url(ctx)
    old = creds.credential(url)
    from control.client import AsyncControlClient

    async with AsyncControlClient(ctx.url, transport=ctx.transport) as anonymous:  # no stale token
        made = await anonymous.login(user, password, expires_in_days=args.expires_in_days)
    path = creds.remember(url, made.token, user=made.user_name, token_id=made.id)
    if old and old.get("token") != made.token:
        await _revoke_quietly(ctx, str(old["token"]), old.get("tokenId"))
    ctx.out.print(
        f"logged in to {url} as [bold]{made.user_name}[/] (token {made.token_name!r}, scope {made.scope}, "
        f"expires {fmt_time(made.expires_at)})"
    )
    ctx.err.print(f"token kept in {path}", style="dim")
    return 0


async def _revoke_quietly(ctx: Context, token: str, token_id: object) -> bool:
    """Revoke a stored token with itself; False when control refuses (it may be expired already)."""
    if not isinstance(token_id, int):
        return False
    from control.client import AsyncControlClient

    async with AsyncControlClient(ctx.url, token=token, transport=ctx.transport) as client:
        try:
            await client.revoke_token(token_id)
        except ControlAPIError:
            return False
    return True


async def cmd_logout(ctx: Context, args: argparse.Namespace) -> int:
    url = credential_url(ctx)
    entry = creds.forget(url)
    if entry is None:
        ctx.err.print(f"not logged in to {url}", style="dim")
        return 0
    revoked = await _revoke_quietly(ctx, str(entry["token"]), entry.get("tokenId"))
    note = "token revoked" if revoked else "control did not revoke the token (it may have expired)"
    ctx.out.print(f"logged out of {url} ({note})")
    return 0


async def cmd_whoami(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.client() as client:
        me = await client.whoami()
    spaces = ", ".join(me.spaces) if me.spaces is not None else "all its user's"
    what = {"local": "the local admin (no login needed)", "api-token": "the API token (ATOM_API_TOKEN)"}
    ctx.out.print(f"[bold]{me.user_name}[/]{' (site admin)' if me.admin else ''} at {ctx.url}")
    if me.kind in what:
        ctx.out.print(what[me.kind])
    else:
        ctx.out.print(f"token {me.token_name!r}: scope {me.scope}, spaces: {spaces}")
    return 0


def _need(value: str | None, what: str, command: str) -> str:
    if not value:
        raise UsageError(f"`atom {command}` needs {what}")
    return value


async def cmd_users(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.client() as client:
        if args.action == "list":
            table = Table("NAME", "ADMIN", "STATE", "CREATED", box=None, header_style="bold", pad_edge=False)
            for u in await client.list_users():
                state = f"[{STATE_STYLES.get(u.state, '')}]{u.state}[/]"
                table.add_row(u.user_name, "yes" if u.admin else "", state, fmt_time(u.created_at))
            ctx.out.print(table)
            return 0
        if args.action == "passwd":
            return await _passwd(ctx, client, args)
        name = _need(args.name, "a user name", f"users {args.action}")
        if args.action == "create":
            bootstrap = (await client.whoami()).kind == "local"
            password = read_password(args.password_stdin, f"Password for {name}: ", confirm=True)
            user = await client.create_user(name, password, admin=args.admin)
            ctx.out.print(f"user [bold]{user.user_name}[/] created{' (site admin)' if user.admin else ''}")
            if bootstrap:
                ctx.err.print(f"every call now needs a token: `atom login --user {name}`", style="yellow")
            return 0
        state = "DISABLED" if args.action == "disable" else "ACTIVE"
        user = await client.change_user(name, state=state)
        ctx.out.print(f"user [bold]{user.user_name}[/] is {user.state.lower()}")
        return 0


async def _passwd(ctx: Context, client: AsyncControlClient, args: argparse.Namespace) -> int:
    """Change a password: your own (asks for the current one), or another user's (site admins)."""
    me = await client.whoami()
    name = args.name or me.user_name
    fields: dict[str, str] = {}
    if name == me.user_name:
        fields["old_password"] = read_password(args.password_stdin, "Current password: ")
    fields["password"] = read_password(args.password_stdin, f"New password for {name}: ", confirm=True)
    user = await client.change_user(name, **fields)
    ctx.out.print(f"password of [bold]{user.user_name}[/] changed")
    return 0


def tokens_table(tokens: list[TokenOut]) -> Table:
    heads = ("ID", "NAME", "SCOPE", "SPACES", "CREATED", "EXPIRES", "LAST USED", "STATE")
    table = Table(*heads, box=None, header_style="bold", pad_edge=False)
    for t in tokens:
        table.add_row(
            str(t.id),
            t.token_name,
            t.scope,
            ", ".join(t.spaces) if t.spaces is not None else "all",
            fmt_time(t.created_at),
            fmt_time(t.expires_at),
            fmt_time(t.last_used_at),
            f"[{STATE_STYLES[t.state]}]{t.state}[/]",
        )
    return table


async def cmd_tokens(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.client() as client:
        if args.action == "list":
            tokens = await client.list_tokens(user=args.user)
            if not tokens:
                ctx.err.print("no tokens", style="dim")
                return 0
            ctx.out.print(tokens_table(tokens))
            return 0
        ref = _need(args.name, "a token name" if args.action == "create" else "a token name or id",
                    f"tokens {args.action}")  # fmt: skip
        if args.action == "revoke":
            await client.revoke_token(ref, user=args.user)
            ctx.out.print(f"token {ref!r} revoked")
            return 0
        made = await client.create_token(
            ref, scope=args.scope, spaces=args.spaces, expires_in_days=args.expires_in_days
        )
    ctx.err.print(
        f"token {made.token_name!r} (scope {made.scope}, expires {fmt_time(made.expires_at)}); "
        "it is shown this once:",
        style="dim",
    )
    # alone on stdout, so that `atom tokens create ci > file` keeps only the secret
    ctx.out.print(made.token, markup=False, highlight=False, soft_wrap=True)
    return 0


async def cmd_members(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.client() as client:
        if args.action == "list":
            table = Table("USER", "ROLE", "SINCE", box=None, header_style="bold", pad_edge=False)
            for m in await client.list_members(ctx.space):
                table.add_row(m.user_name, m.role, fmt_time(m.created_at))
            ctx.out.print(table)
            return 0
        user = _need(args.user, "a user name", f"members {args.action}")
        if args.action == "set":
            role = _need(args.role, "a role (owner, member or viewer)", "members set")
            row = await client.set_member(ctx.space, user, role)
            ctx.out.print(f"{row.user_name} is {row.role} in space {ctx.space!r}")
            return 0
        await client.remove_member(ctx.space, user)
        ctx.out.print(f"{user} is no longer in space {ctx.space!r}")
        return 0
