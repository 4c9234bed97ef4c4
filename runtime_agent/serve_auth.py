"""Who may call a served model: the service's key, a user token reaching its space, or anyone.

A service started by control (`serve --service-id`) asks control, with its service token, for
its access (public or not, the sha256 of its key) and refreshes that at most every
`refresh_s` seconds while requests come, so a rotated key stops working within seconds. A
token that is not the key is a user's: control says whether it may read the service's space,
and the answer is cached for `verdict_s` seconds (at most `cache_size` tokens), so control is
not asked per request. When control cannot be reached, the last known access still answers.

The health routes (`/v2/health/live`, `/v2/health/ready`) are always open.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import httpx
from fastapi.responses import JSONResponse

if TYPE_CHECKING:
    from starlette.requests import Request

    from runtime_agent.settings import AgentSettings

logger = logging.getLogger(__name__)

#: routes that answer without a token (orchestrators probe them)
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
#: service keys start with this (`control.service_keys.KEY_PREFIX`)
KEY_PREFIX = "atomsk_"
#: user tokens start with this (`control.users.issue_token`); no other token is worth asking about
USER_PREFIX = "atom_"
SEND = "send 'Authorization: Bearer <key>' with the service's key or your Atom token (ATOM_TOKEN)"


@dataclass(frozen=True)
class Access:
    """What control says about the service: public, its key hashes, and whether it needs no login."""

    public: bool
    key_hashes: frozenset[str]
    anonymous: bool = False


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    status: int = 200
    reason: str = ""


class AccessSource(Protocol):
    async def access(self) -> Access: ...

    async def verdict(self, token: str) -> Verdict: ...


class ControlAccess:
    """Asks control about the service, authenticated by the service token.

    Args:
        control_url: control's base URL.
        service_id: the service served.
        service_token: its token (ATOM_SERVICE_TOKEN).
        transport: an httpx transport (tests: the real control app over ASGI).
    """

    def __init__(
        self,
        control_url: str,
        service_id: int,
        service_token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
    ) -> None:
        self._base = f"{control_url.rstrip('/')}/api/v1/agent/services/{service_id}/access"
        self._headers = {"Authorization": f"Bearer {service_token}"}
        self._transport = transport
        self._timeout = timeout

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(headers=self._headers, timeout=self._timeout, transport=self._transport)

    async def access(self) -> Access:
        async with self._client() as http:
            resp = await http.get(self._base)
        resp.raise_for_status()
        body = resp.json()
        return Access(
            public=bool(body["public"]),
            key_hashes=frozenset(body.get("keyHashes") or ()),
            anonymous=bool(body.get("anonymous", False)),
        )

    async def verdict(self, token: str) -> Verdict:
        async with self._client() as http:
            resp = await http.post(f"{self._base}/check", json={"token": token})
        resp.raise_for_status()
        body = resp.json()
        return Verdict(bool(body["allowed"]), int(body.get("status", 200)), str(body.get("reason", "")))


def refusal(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="atom"'} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def bearer(header: str | None) -> str | None:
    scheme, _, value = (header or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class Gate:
    """Admits or refuses each request (`admit`), from the service's access known to it.

    Args:
        source: where access and verdicts come from (control).
        refresh_s: the access is fetched again when older than this (a rotated key's lag).
        verdict_s: how long a user token's verdict (yes or no) is kept.
        cache_size: at most this many user tokens' verdicts are kept (the oldest goes first).
        lookups_per_s: control is asked about at most this many unknown tokens a second (a burst
            of as many); beyond that a caller gets 429, so guessed tokens cannot flood control.
        clock: monotonic seconds (tests).
    """

    def __init__(
        self,
        source: AccessSource,
        *,
        refresh_s: float = 2.0,
        verdict_s: float = 30.0,
        cache_size: int = 1024,
        lookups_per_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._refresh_s = refresh_s
        self._verdict_s = verdict_s
        self._cache_size = cache_size
        self._clock = clock
        self._known: Access | None = None
        self._fetched_at = float("-inf")
        self._tried_at = float("-inf")
        self._lock = asyncio.Lock()
        self._verdicts: OrderedDict[str, tuple[float, Verdict]] = OrderedDict()
        self._rate = lookups_per_s
        self._allowance = lookups_per_s
        self._allowance_at = clock()

    async def _access(self, *, at_most: float | None = None) -> Access | None:
        """The access known, fetched again when older than `at_most` (default `refresh_s`).

        A failed fetch keeps the last known access and is not retried for `refresh_s`.
        """
        age = self._refresh_s if at_most is None else at_most
        if self._clock() - self._fetched_at <= age:
            return self._known
        async with self._lock:
            now = self._clock()
            if now - self._fetched_at <= age or now - self._tried_at < min(age, self._refresh_s):
                return self._known
            self._tried_at = now
            try:
                self._known = await self._source.access()
                self._fetched_at = self._clock()
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                logger.warning(
                    "cannot refresh the service's access from control (%s); using the last known", exc
                )
            return self._known

    def _may_ask(self) -> bool:
        """Take one control lookup from the allowance (refilled at `lookups_per_s`)."""
        now = self._clock()
        self._allowance = min(self._rate, self._allowance + (now - self._allowance_at) * self._rate)
        self._allowance_at = now
        if self._allowance < 1:
            return False
        self._allowance -= 1
        return True

    async def _verdict(self, token: str, digest: str) -> Verdict | None:
        """Control's answer about a user token (cached); None when over the lookup allowance."""
        now = self._clock()
        cached = self._verdicts.get(digest)
        if cached is not None and now - cached[0] <= self._verdict_s:
            self._verdicts.move_to_end(digest)
            return cached[1]
        if not self._may_ask():
            return None
        verdict = await self._source.verdict(token)
        self._verdicts[digest] = (self._clock(), verdict)
        self._verdicts.move_to_end(digest)
        while len(self._verdicts) > self._cache_size:
            self._verdicts.popitem(last=False)
        return verdict

    async def admit(self, request: Request) -> JSONResponse | None:
        """None when the request may go on, else the refusal to send."""
        if request.url.path in OPEN_PATHS:
            return None
        known = await self._access()
        if known is None:
            return refusal(
                503, "cannot check access: control is unreachable and this service has not heard from it yet"
            )
        if known.public:
            return None
        token = bearer(request.headers.get("authorization"))
        if token is None:
            if known.anonymous:
                return None
            return refusal(401, f"this service needs a token: {SEND}")
        digest = hashlib.sha256(token.encode()).hexdigest()
        if digest in known.key_hashes:
            return None
        if token.startswith(KEY_PREFIX):  # perhaps a key made since the last refresh
            fresh = await self._access(at_most=0.5)
            if fresh is not None and digest in fresh.key_hashes:
                return None
            return refusal(401, "the service key is not valid (it may have been rotated): " + SEND)
        if not token.startswith(USER_PREFIX):
            return refusal(401, "the token is neither this service's key nor an Atom user token: " + SEND)
        try:
            verdict = await self._verdict(token, digest)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            logger.warning("cannot ask control about a token (%s)", type(exc).__name__)
            return refusal(
                503, "cannot check the token: control is unreachable; send the service's key instead"
            )
        if verdict is None:
            busy = refusal(429, "too many unknown tokens to check just now: retry in a second")
            busy.headers["Retry-After"] = "1"
            return busy
        if verdict.allowed:
            return None
        return refusal(verdict.status if verdict.status in (401, 403) else 401, verdict.reason or SEND)


def service_gate(settings: AgentSettings, service_id: int) -> Gate | None:
    """The gate of `serve --service-id N`: control's answers, with ATOM_SERVICE_TOKEN.

    None when control is not configured (the loader then refuses to start anyway).
    """
    token = settings.service_token.get_secret_value() if settings.service_token else None
    if not settings.control_url or not token:
        return None
    return Gate(
        ControlAccess(settings.control_url, service_id, token),
        refresh_s=settings.serve_access_refresh,
        verdict_s=settings.serve_token_cache,
        lookups_per_s=settings.serve_token_lookups,
    )
