"""Unpacking tar archives safely on every Python 3.11 (extraction filters came in 3.11.4, and the
agent image's Debian bookworm has 3.11.2): the checks live in `connectors.safe_archive`."""

from __future__ import annotations

import tarfile
from pathlib import Path

from connectors.safe_archive import extract_tar


def extract_all(tar: tarfile.TarFile, dest: Path, what: str = "archive") -> None:
    """Check every member, then `tar.extractall(dest, filter="data")` (see `connectors.safe_archive`).

    Raises:
        UnsafeArchive: a member would land outside `dest`, a link points out, or a device; nothing
            was written.
        tarfile.TarError: the archive is damaged.
    """
    extract_tar(tar, dest, what)
