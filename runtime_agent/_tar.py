"""Unpacking tar archives safely on every Python 3.11: extraction filters came in 3.11.4, and the
agent image's Debian bookworm has 3.11.2."""

from __future__ import annotations

import tarfile
from pathlib import Path


def extract_all(tar: tarfile.TarFile, dest: Path) -> None:
    """`tar.extractall(dest, filter="data")`; where filters do not exist, the same refusals made here.

    Raises:
        tarfile.TarError: a member is a link, a device, or would land outside `dest`.
    """
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    base = dest.resolve()
    for member in tar.getmembers():
        if not (member.isfile() or member.isdir()) or not (dest / member.name).resolve().is_relative_to(base):
            raise tarfile.TarError(
                f"member {member.name!r} is not a plain file inside the archive's directory"
            )
    tar.extractall(dest)  # noqa: S202 - every member was checked above
