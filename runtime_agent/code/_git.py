"""GIT code: a repository at a branch, tag or commit, kept as a bare mirror plus one tree per commit.

`<cache>/git/mirrors/<sha256(url)[:24]>.git` is cloned once and fetched when a ref is not yet
known; `<cache>/git/trees/<url key>-<commit>` holds that commit's files (`git archive`, no
`.git`). A full commit id that is already checked out needs no network at all; a branch or tag
is resolved with `git ls-remote` first, so a moved branch is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from pathlib import Path

from runtime_agent.code._cache import build_once, locked, masked, unpack
from runtime_agent.errors import CodeFetchError

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_SHORT_SHA = re.compile(r"^[0-9a-fA-F]{4,39}$")


class _GitFailed(Exception):
    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


def condensed(stderr: str) -> str:
    """git's `fatal:` / `error:` line (else its last line), without credentials."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return masked(line.split(":", 1)[1].strip())
    return masked(lines[-1]) if lines else "git failed with no message"


async def git(*args: str) -> str:
    """Run git (never prompting for credentials); its stdout, or `_GitFailed` with its stderr."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "LC_ALL": "C"}
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise _GitFailed(err.decode(errors="replace"))
    return out.decode(errors="replace")


def _local(address: str) -> str:
    """A local path made absolute (git resolves relative paths against its cwd); URLs as they are."""
    if "://" in address or re.match(r"^[\w.-]+@[\w.-]+:", address):
        return address
    return str(Path(address).expanduser().absolute())


def _resolve(refs: dict[str, str], version: str) -> str | None:
    """The commit `version` names among `git ls-remote` refs (HEAD for an empty version)."""
    if not version:
        return refs.get("HEAD")
    for name in (f"refs/tags/{version}^{{}}", f"refs/tags/{version}", f"refs/heads/{version}", version):
        if name in refs:
            return refs[name]
    return None


def _names(refs: dict[str, str]) -> str:
    branches = sorted(r.removeprefix("refs/heads/") for r in refs if r.startswith("refs/heads/"))
    tags = sorted(
        {r.removeprefix("refs/tags/").removesuffix("^{}") for r in refs if r.startswith("refs/tags/")}
    )
    listed = [f"branches: {', '.join(branches[:10]) or 'none'}"]
    listed.append(f"tags: {', '.join(tags[:10]) or 'none'}")
    return "; ".join(listed)


async def fetch_git(address: str, version: str, root: Path) -> tuple[Path, str, bool]:
    """Check out `address` at `version` (branch, tag or commit; empty: HEAD) once.

    Returns:
        (the tree's directory, the commit id, whether it was already there).

    Raises:
        CodeFetchError: no such repository, or no such branch, tag or commit.
    """
    if not address:
        raise CodeFetchError("codeMode GIT needs codeAddress: the repository's URL or path")
    url = _local(address)
    shown = masked(address)
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    trees = root / "git" / "trees"
    if _FULL_SHA.match(version) is not None and await asyncio.to_thread((trees / f"{key}-{version}").is_dir):
        return trees / f"{key}-{version}", version, True
    try:
        listing = await git("ls-remote", "--", url)
    except _GitFailed as exc:
        raise CodeFetchError(
            f"GIT {shown}: no such repository, or it cannot be read ({condensed(exc.stderr)})"
        ) from None
    refs: dict[str, str] = {}
    for line in listing.splitlines():
        sha, _, name = line.partition("\t")
        if name:
            refs[name.strip()] = sha.strip()
    commit = _resolve(refs, version)
    if commit is not None and await asyncio.to_thread((trees / f"{key}-{commit}").is_dir):
        return trees / f"{key}-{commit}", commit, True
    if commit is None and not _SHORT_SHA.match(version) and not _FULL_SHA.match(version):
        raise CodeFetchError(f"GIT {shown}: no branch, tag or commit {version!r} ({_names(refs)})")

    mirror = root / "git" / "mirrors" / f"{key}.git"
    wanted = f"{commit or version}^{{commit}}"
    async with locked(root / "locks" / f"mirror-{key}.lock"):
        if commit is not None and await asyncio.to_thread((trees / f"{key}-{commit}").is_dir):
            return trees / f"{key}-{commit}", commit, True  # built while we waited for the lock
        try:
            if not await asyncio.to_thread(mirror.is_dir):
                await _clone(url, mirror)
            elif not await _has(mirror, wanted):
                heads = "+refs/heads/*:refs/heads/*"
                await git(f"--git-dir={mirror}", "fetch", "--quiet", "--force", "--tags", "--", url, heads)
        except _GitFailed as exc:
            raise CodeFetchError(f"GIT {shown}: cannot fetch it ({condensed(exc.stderr)})") from None
        try:
            commit = (await git(f"--git-dir={mirror}", "rev-parse", "--verify", "--quiet", wanted)).strip()
        except _GitFailed:
            missing = f"no branch, tag or commit {version!r}"
            raise CodeFetchError(f"GIT {shown}: {missing} ({_names(refs)})") from None

    final = trees / f"{key}-{commit}"

    async def build(tmp: Path) -> None:
        archive = tmp.parent / f"{tmp.name}.tar"
        try:
            await git(f"--git-dir={mirror}", "archive", "--format=tar", f"--output={archive}", commit)
            await asyncio.to_thread(unpack, archive, tmp, f"GIT {shown} at {commit}")
        except _GitFailed as exc:
            raise CodeFetchError(
                f"GIT {shown}: cannot check out {commit} ({condensed(exc.stderr)})"
            ) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(archive.unlink)

    built = await build_once(root, final, build)
    return final, commit, not built


async def _clone(url: str, mirror: Path) -> None:
    """A bare clone of `url` at `mirror`, made beside it and renamed into place."""
    tmp = mirror.with_name(f"{mirror.name}.tmp-{os.getpid()}")
    try:
        await git("clone", "--bare", "--quiet", "--", url, str(tmp))
        os.rename(tmp, mirror)
    finally:
        if await asyncio.to_thread(tmp.exists):
            await asyncio.to_thread(_rmtree, tmp)


async def _has(mirror: Path, wanted: str) -> bool:
    """Whether the mirror already holds the commit `wanted` names (then nothing is fetched)."""
    try:
        await git(f"--git-dir={mirror}", "rev-parse", "--verify", "--quiet", wanted)
    except _GitFailed:
        return False
    return True


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
