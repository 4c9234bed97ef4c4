"""The client's calls about users, logins, personal tokens and space members (mixed into
`AsyncControlClient`)."""

from __future__ import annotations

import builtins
from typing import Any

from pydantic import TypeAdapter

from control.schemas.users import MemberOut, TokenIssued, TokenOut, UserOut, WhoAmI

API = "/api/v1"


class UsersCalls:
    """`/api/v1/users`, `/login`, `/auth`, `/tokens` and `/spaces/{space}/members`."""

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    async def login(
        self,
        user: str,
        password: str,
        *,
        token_name: str | None = None,
        expires_in_days: int | None = None,
        scope: str | None = None,
    ) -> TokenIssued:
        """A new token for `user`; `TokenIssued.token` is the secret, shown this once."""
        body: dict[str, Any] = {"userName": user, "password": password}
        for key, value in (("tokenName", token_name), ("expiresInDays", expires_in_days), ("scope", scope)):
            if value is not None:
                body[key] = value
        return TokenIssued.model_validate(await self.request("POST", f"{API}/login", json=body))

    async def whoami(self) -> WhoAmI:
        return WhoAmI.model_validate(await self.request("GET", f"{API}/auth"))

    async def create_user(self, name: str, password: str, *, admin: bool = False) -> UserOut:
        body = {"userName": name, "password": password, "admin": admin}
        return UserOut.model_validate(await self.request("POST", f"{API}/users", json=body))

    async def list_users(self) -> builtins.list[UserOut]:
        return TypeAdapter(builtins.list[UserOut]).validate_python(await self.request("GET", f"{API}/users"))

    async def get_user(self, name: str) -> UserOut:
        return UserOut.model_validate(await self.request("GET", f"{API}/users/{name}"))

    async def change_user(self, name: str, **fields: Any) -> UserOut:
        """`state` (ACTIVE / DISABLED), `admin`, `password` and `old_password`."""
        names = {"old_password": "oldPassword"}
        body = {names.get(k, k): v for k, v in fields.items() if v is not None}
        return UserOut.model_validate(await self.request("PUT", f"{API}/users/{name}", json=body))

    async def list_tokens(self, *, user: str | None = None) -> builtins.list[TokenOut]:
        answer = await self.request("GET", f"{API}/tokens", params={"user": user})
        return TypeAdapter(builtins.list[TokenOut]).validate_python(answer)

    async def create_token(
        self,
        name: str,
        *,
        scope: str = "write",
        spaces: builtins.list[str] | None = None,
        expires_in_days: int | None = None,
    ) -> TokenIssued:
        body: dict[str, Any] = {"tokenName": name, "scope": scope}
        if spaces is not None:
            body["spaces"] = spaces
        if expires_in_days is not None:
            body["expiresInDays"] = expires_in_days
        return TokenIssued.model_validate(await self.request("POST", f"{API}/tokens", json=body))

    async def revoke_token(self, ref: str | int, *, user: str | None = None) -> None:
        """Revoke a token by id or name (revoking twice is fine)."""
        await self.request("DELETE", f"{API}/tokens/{ref}", params={"user": user})

    async def list_members(self, space: str) -> builtins.list[MemberOut]:
        answer = await self.request("GET", f"{API}/spaces/{space}/members")
        return TypeAdapter(builtins.list[MemberOut]).validate_python(answer)

    async def set_member(self, space: str, user: str, role: str) -> MemberOut:
        answer = await self.request("PUT", f"{API}/spaces/{space}/members/{user}", json={"role": role})
        return MemberOut.model_validate(answer)

    async def remove_member(self, space: str, user: str) -> None:
        await self.request("DELETE", f"{API}/spaces/{space}/members/{user}")
