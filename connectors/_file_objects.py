"""FILE objects on disk: stat, list and copy files inside a connection's root folder (blocking helpers).

Each opens or stats the already contained path without following a symlink in its last
component (see `connectors.file_root`), so a link swapped in after the check is refused.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from connectors._atomic import write_atomically
from connectors.base import ObjectInfo
from connectors.errors import ConnectorConfigError
from connectors.file_root import FileRoot, open_inside


def file_etag(st: os.stat_result) -> str:
    """A file's version: mtime and size."""
    return f"{st.st_mtime_ns:x}-{st.st_size:x}"


def stat_inside(file: Path, root: FileRoot, shown: str) -> ObjectInfo:
    """Size and version of a contained file.

    Raises:
        OutsideRoot: the file was swapped for a symlink after the check.
        ConnectorConfigError: it is a directory.
    """
    st = os.stat(file, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        raise root.refusal(shown, "was swapped for a symlink, which may lead outside")
    if stat.S_ISDIR(st.st_mode):
        raise ConnectorConfigError(f"{file} is a directory, not an object: name a file", path=str(file))
    return ObjectInfo(shown, st.st_size, file_etag(st), st.st_mtime)


def scan_objects(base: Path, prefix: str, root: FileRoot) -> list[ObjectInfo]:
    """Every non-hidden file under `base` whose relative path starts with `prefix`, in path order;
    a symlink leading out of the root is not an object of the connection and is left out."""
    found = []
    for dirpath, _dirs, names in os.walk(base):
        for fname in names:
            full = Path(dirpath) / fname
            rel = full.relative_to(base).as_posix()
            if rel.startswith(prefix) and not fname.startswith(".") and root.holds(full):
                st = full.stat()
                found.append(ObjectInfo(rel, st.st_size, file_etag(st), st.st_mtime))
    return sorted(found, key=lambda o: o.path)


def copy_inside(file: Path, root: FileRoot, shown: str, target: Path) -> None:
    """Copy a contained file to `target` atomically, opened with `open_inside`."""
    with os.fdopen(open_inside(file, root, shown=shown), "rb") as src:

        def fill(tmp: Path) -> None:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)

        write_atomically(target, fill)
