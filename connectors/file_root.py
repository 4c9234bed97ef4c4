"""A FILE connection's root folder: every local path a FILE connection touches resolves inside it.

`FileRoot.contain(path)` joins a user's path to the root and resolves it one component at a
time, taking `os.path.realpath` of every prefix, so each of these is refused with `OutsideRoot`
(one line naming the path and the root):

- `..` that climbs above the root (`../../etc/passwd`, `sub/../../x`), even when a later
  component would lead back in;
- an absolute path (or `file://` URI) that does not lie under the root;
- a symlink, at any depth, whose target lies outside the root.

Symlinks whose target stays inside the root are followed. The path handed back is fully
resolved, so the file opened is the file checked; objects are then opened with `O_NOFOLLOW`
(`open_inside`), so a symlink swapped in for the last component after the check is refused too.
Writes need no such flag: temp files are created with `O_EXCL` and renamed over the target, and
neither follows a symlink in the last component.

A connection without a root is rooted at the working directory of the process (where its
relative paths always resolved). When that directory is `/` itself, the connection would reach
every file on the machine, so its local paths are refused: set the connection's root
(`connectAddr`) to the folder its files are in. A root set explicitly to `/` is taken at its word.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from connectors.errors import OutsideRoot

__all__ = ["FileRoot", "open_inside", "read_inside"]


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _under(path: Path, base: Path) -> tuple[str, ...] | None:
    """The parts of the absolute `path` after `base`, taken lexically; None when it is not under it."""
    n = len(base.parts)
    return path.parts[n:] if path.parts[:n] == base.parts else None


class FileRoot:
    """The folder a FILE connection's local paths must stay in (see the module docstring).

    Args:
        root: the connection's root folder; None: the working directory (refused when it is `/`).
    """

    def __init__(self, root: Path | None) -> None:
        self.implicit = root is None
        base = Path.cwd() if root is None else Path(root).expanduser()
        self.given = Path(os.path.abspath(base))
        """The root as configured (made absolute, links not resolved): messages and lexical matches."""
        self.real = Path(os.path.realpath(base))
        """The root with every symlink resolved: what contained paths are compared with."""

    def __repr__(self) -> str:
        return f"FileRoot({str(self.given)!r})"

    def refusal(self, shown: str, why: str = "is outside") -> OutsideRoot:
        """The one-line error for a path that leaves the root."""
        return OutsideRoot(
            f"FILE path {shown!r} {why} the connection's root {str(self.given)!r}: use a path inside it",
            path=shown,
            root=str(self.given),
        )

    def contain(self, path: str | Path, *, shown: str | None = None, writable: bool = False) -> Path:
        """`path` (relative to the root, or absolute under it) resolved, checked to stay inside the root.

        Args:
            path: the user's path (`file://` URIs decoded, `~` expanded by the caller).
            shown: how the path is named in a refusal (default: `path` as given).
            writable: the path is written to: the root folder itself is refused too (writes stage
                temp files beside their target, which for the root would lie outside it).

        Raises:
            OutsideRoot: the path leaves the root (`..`, absolute elsewhere, a symlink pointing out),
                or the connection has no root and the working directory is `/`.
        """
        shown = str(path) if shown is None else shown
        if self.implicit and self.real == Path(self.real.anchor):
            raise OutsideRoot(
                f"FILE path {shown!r} has no root folder to stay in (the connection has no connectAddr "
                f"and the working directory is {str(self.real)!r}): "
                "set connectAddr to the folder its files are in",
                path=shown,
            )
        given = Path(path)
        if given.is_absolute():
            parts = _under(given, self.given)
            if parts is None:
                parts = _under(given, self.real)
            if parts is None:
                raise self.refusal(shown)
        else:
            parts = given.parts
        current = self.real
        for part in parts:
            if part in ("", "."):
                continue
            step = current / part
            current = Path(os.path.realpath(step))
            if not _inside(current, self.real):
                if part != ".." and os.path.islink(step):
                    why = f"leads through the symlink {part!r} (to {str(current)!r}) outside"
                    raise self.refusal(shown, why)
                raise self.refusal(shown)
        if writable and current == self.real:
            raise self.refusal(shown, "names the root folder itself, not a file or folder inside")
        return current

    def check(self, path: Path, *, shown: str | None = None) -> Path:
        """A path found inside the root (a dataset part, a listed file), refused if a symlink takes it out."""
        real = Path(os.path.realpath(path))
        if not _inside(real, self.real):
            name = shown if shown is not None else str(path)
            raise self.refusal(name, f"leads through a symlink (to {str(real)!r}) outside")
        return real

    def holds(self, path: Path) -> bool:
        """Whether `path`, symlinks resolved, lies inside the root."""
        return _inside(Path(os.path.realpath(path)), self.real)


def open_inside(path: Path, root: FileRoot, *, shown: str | None = None) -> int:
    """Open a contained path for reading without following a symlink in its last component.

    Raises:
        OutsideRoot: the last component was swapped for a symlink after the check.
        OSError: as `os.open` (FileNotFoundError, IsADirectoryError, ...).
    """
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            why = "was swapped for a symlink, which may lead outside"
            raise root.refusal(shown or str(path), why) from exc
        raise


def read_inside(path: Path, root: FileRoot, *, shown: str | None = None) -> bytes:
    """The bytes of a contained file, opened with `open_inside` (blocking)."""
    with os.fdopen(open_inside(path, root, shown=shown), "rb") as fh:
        return fh.read()
