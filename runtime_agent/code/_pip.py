"""PIP code: a requirement or wheel installed with `pip install --target` into its own cached directory.

Never into the agent's (or control's) site-packages: each requirement gets
`<cache>/pip/<sha256 of requirement, version, Python, platform[, the file's sha256]>`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
import sysconfig
from pathlib import Path

from runtime_agent.code._cache import build_once, file_sha256, masked
from runtime_agent.errors import CodeFetchError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?")


def is_path(address: str) -> bool:
    """True when a PIP address names a local file rather than a requirement or URL."""
    if address.startswith("file://"):
        return True
    if "://" in address or "@" in address:
        return False
    return os.sep in address or address.endswith((".whl", ".tar.gz", ".zip", ".tgz"))


def local_file(address: str) -> Path:
    """The absolute path a PIP address names (`~` expanded, `file://` dropped)."""
    return Path(address.removeprefix("file://")).expanduser().absolute()


def pip_error(output: str) -> str:
    """pip's key error line from its output (the first `ERROR:` line, else the last line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("ERROR:"):
            return masked(line.removeprefix("ERROR:").strip())
    return masked(lines[-1]) if lines else "pip failed with no output"


async def fetch_pip(address: str, version: str, root: Path) -> tuple[Path, str, bool]:
    """Install `address` (== `version` for a bare name) once; returns (directory, version, cached).

    Raises:
        CodeFetchError: no such file, or pip could not install it (pip's error line).
    """
    if not address:
        raise CodeFetchError("codeMode PIP needs codeAddress: a pip requirement, or a wheel's path or URL")
    requirement = address
    identity = [address, version, f"py{sys.version_info[0]}.{sys.version_info[1]}", sysconfig.get_platform()]
    if is_path(address):
        local = local_file(address)
        if not await asyncio.to_thread(local.is_file):
            raise CodeFetchError(f"PIP {address}: no such file (give a wheel's or sdist's path)")
        requirement = str(local)
        identity.append(await asyncio.to_thread(file_sha256, local))
    elif version and _NAME.fullmatch(address):
        requirement = f"{address}=={version}"
    key = hashlib.sha256("\n".join(identity).encode()).hexdigest()

    async def build(tmp: Path) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-input",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--target",
            str(tmp),
            requirement,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            why = pip_error(out.decode(errors="replace"))
            raise CodeFetchError(f"PIP {masked(address)}: pip could not install it: {why}")

    final = root / "pip" / key
    built = await build_once(root, final, build)
    return final, version, not built
