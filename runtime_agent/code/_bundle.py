"""BUNDLE code: a tar.gz or zip uploaded to control, fetched with a run or service token, unpacked once."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from control.schemas import BUNDLE_ADDRESS
from runtime_agent.code._cache import build_once, unpack
from runtime_agent.errors import CodeFetchError

if TYPE_CHECKING:
    import httpx

    from runtime_agent.code import CodeAuth


async def fetch_bundle(
    address: str,
    root: Path,
    control_url: str | None,
    auth: CodeAuth,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[Path, str, bool]:
    """Bring `atom-code://sha256:<hex>` into `root/bundle/<hex>`; returns (directory, digest, cached).

    Raises:
        CodeFetchError: a malformed address, no control, an unknown digest (404), a damaged
            download, or not an archive.
    """
    found = BUNDLE_ADDRESS.match(address)
    if found is None:
        raise CodeFetchError(f"BUNDLE code address {address!r} is not atom-code://sha256:<64 hex digits>")
    digest = found.group(1)
    final = root / "bundle" / digest.split(":", 1)[1]
    if await asyncio.to_thread(final.is_dir):
        return final, digest, True
    if not control_url:
        raise CodeFetchError(f"BUNDLE {address}: no control to download it from (set ATOM_CONTROL_URL)")
    from control.client import AsyncControlClient  # deferred: only BUNDLE runs download
    from control.errors import ControlAPIError

    url = control_url

    async def build(tmp: Path) -> None:
        archive = tmp.parent / f"{tmp.name}.download"
        try:
            async with AsyncControlClient(url, token=auth.token, transport=transport) as client:
                try:
                    got = await client.download_code(
                        digest, archive, run_id=auth.run_id, service_id=auth.service_id
                    )
                except ControlAPIError as exc:
                    if exc.status_code == 404:
                        why = "control has no such code (404): upload it again with `atom apply`"
                    else:
                        why = f"cannot download it ({exc.status_code}: {exc})"
                    raise CodeFetchError(f"BUNDLE {address}: {why}") from exc
            if got != digest:
                raise CodeFetchError(f"BUNDLE {address}: the download's digest is {got}: it was damaged")
            await asyncio.to_thread(unpack, archive, tmp, f"BUNDLE {address}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(archive.unlink)

    built = await build_once(root, final, build)
    return final, digest, not built
