"""Unpacking tar and zip archives without letting a member land outside the folder they unpack into.

Every member is checked before anything is written, and one bad member refuses the whole
archive with `UnsafeArchive` (one line naming the archive and the member):

- a name that is absolute (`/etc/cron.d/x`, `C:\\x`) or climbs out with `..`;
- a name under a symlink of the archive (`link/x` where `link` is a symlink member);
- a symlink whose target is absolute or leads out (`../x`, or through another symlink member);
- a hard link to a name outside, or through a symlink member;
- a device, fifo or any other member that is not a file, a folder or a link.

Tar archives are then extracted with Python's `filter="data"` (3.11.4+), which checks the same
against the filesystem while it writes; where filters do not exist (Debian bookworm's 3.11.2)
links are refused as well, since nothing would check them at write time. Zip members are
extracted by `zipfile`, which writes symlink entries as plain files. Control checks uploaded
code bundles with `check_archive`, the agent unpacks with `unpack`.
"""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from connectors.errors import UnsafeArchive

__all__ = ["check_archive", "check_tar", "check_zip", "extract_tar", "extract_zip", "unpack"]

_DRIVE = re.compile(r"^[A-Za-z]:")


def _refuse(what: str, name: str, why: str) -> UnsafeArchive:
    return UnsafeArchive(
        f"{what}: member {name!r} {why}; the whole archive is refused: "
        "rebuild it from inside the folder it packs",
        member=name,
    )


def _walk(parts: Iterable[str], links: set[str]) -> tuple[str, ...] | str:
    """Resolve relative path parts lexically; a string says why they leave or pass through a link."""
    stack: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return "leads outside the folder it is unpacked into"
            stack.pop()
            continue
        stack.append(part)
        here = "/".join(stack)
        if here in links:
            return f"goes through the symlink member {here!r}"
    return tuple(stack)


def _name_problem(name: str, links: set[str]) -> str | None:
    if not name or "\x00" in name:
        return "has an empty or NUL name"
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "has an absolute name"
    walked = _walk(name.split("/")[:-1], links)
    if isinstance(walked, str):
        return walked
    last = name.rstrip("/").rsplit("/", 1)[-1]
    walked = _walk([*walked, last], set())
    return walked if isinstance(walked, str) else None


def _target_problem(parts: list[str], links: set[str]) -> str | None:
    walked = _walk(parts, links)
    if not isinstance(walked, str):
        return None
    return f"links to a target that {walked.replace('leads', 'lies')}"


def tar_problems(members: list[tarfile.TarInfo], *, links_allowed: bool = True) -> tuple[str, str] | None:
    """The first unsafe member of a tar archive: (name, why), or None."""
    symlinks = {
        "/".join(w) for m in members if m.issym() and isinstance(w := _walk(m.name.split("/"), set()), tuple)
    }
    for m in members:
        problem = _name_problem(m.name, symlinks)
        if problem is None and not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            problem = "is a device, fifo or other special file"
        if problem is None and (m.issym() or m.islnk()):
            if not links_allowed:
                problem = "is a link, which this Python cannot unpack safely (it has no extraction filters)"
            elif m.linkname.startswith(("/", "\\")) or _DRIVE.match(m.linkname) or not m.linkname:
                problem = f"links to the absolute or empty target {m.linkname!r}"
            else:
                base = m.name.rstrip("/").split("/")[:-1] if m.issym() else []
                problem = _target_problem(base + m.linkname.split("/"), symlinks)
        if problem is not None:
            return m.name, problem
    return None


def check_tar(tar: tarfile.TarFile, what: str, *, links_allowed: bool = True) -> None:
    """Refuse a tar archive with any unsafe member (see the module docstring).

    Raises:
        UnsafeArchive: the first unsafe member, named.
    """
    found = tar_problems(tar.getmembers(), links_allowed=links_allowed)
    if found is not None:
        raise _refuse(what, *found)


def check_zip(zf: zipfile.ZipFile, what: str) -> None:
    """Refuse a zip archive with a member whose name is absolute or climbs out with `..`.

    Raises:
        UnsafeArchive: the first unsafe member, named.
    """
    for info in zf.infolist():
        problem = _name_problem(info.filename, set())
        if problem is None and "\\" in info.filename:
            problem = "has a backslash in its name, which Windows tools read as a folder separator"
        if problem is not None:
            raise _refuse(what, info.filename, problem)


def extract_tar(tar: tarfile.TarFile, dest: Path, what: str) -> None:
    """Check every member, then extract with the `data` filter (plain files and folders only without it).

    Raises:
        UnsafeArchive: an unsafe member; nothing was written.
        tarfile.TarError, OSError: the archive is damaged or the disk refuses.
    """
    filters = hasattr(tarfile, "data_filter")
    check_tar(tar, what, links_allowed=filters)
    dest.mkdir(parents=True, exist_ok=True)
    if filters:
        try:
            tar.extractall(dest, filter="data")
        except tarfile.FilterError as exc:  # what the lexical check cannot see (links on disk)
            name = exc.tarinfo.name if exc.tarinfo is not None else "?"
            raise _refuse(what, name, f"was refused while unpacking ({exc})") from exc
    else:
        tar.extractall(dest)  # noqa: S202 - every member was checked above (files and folders only)


def extract_zip(zf: zipfile.ZipFile, dest: Path, what: str) -> None:
    """Check every member name, then extract.

    Raises:
        UnsafeArchive: an unsafe member; nothing was written.
    """
    check_zip(zf, what)
    dest.mkdir(parents=True, exist_ok=True)
    zf.extractall(dest)  # noqa: S202 - every name was checked above


def unpack(archive: Path | bytes, dest: Path, what: str) -> None:
    """Unpack a tar (any compression) or zip, given as a file or bytes, into `dest` (blocking).

    Raises:
        UnsafeArchive: an unsafe member; nothing was written.
        tarfile.TarError, zipfile.BadZipFile, OSError, EOFError: not a readable archive.
    """
    source = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            extract_zip(zf, dest, what)
        return
    if isinstance(source, io.BytesIO):
        source.seek(0)
    opened = {"fileobj": source} if isinstance(source, io.BytesIO) else {"name": source}
    with tarfile.open(mode="r:*", **opened) as tar:
        extract_tar(tar, dest, what)


def check_archive(path: Path, what: str) -> None:
    """Check every member of a tar (any compression) or zip file without unpacking it (blocking).

    Raises:
        UnsafeArchive: an unsafe member.
        tarfile.TarError, zipfile.BadZipFile, OSError, EOFError: not a readable archive.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            check_zip(zf, what)
        return
    with tarfile.open(path, mode="r:*") as tar:
        check_tar(tar, what)
