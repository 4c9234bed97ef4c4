"""A BUNDLE operator's local code in a spec: a directory or archive, digested before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control.code_store import archive_kind, file_digest, pack_dir


@dataclass(frozen=True)
class CodeUpload:
    """Local operator code for a BUNDLE operator: a directory (packed at upload) or an archive."""

    path: Path
    digest: str
    """`sha256:<hex>` of the tar.gz (directory) or of the file."""
    size: int


def resolve_code(raw: dict[str, Any], base: Path, where: str, problems: list[str]) -> CodeUpload | None:
    """For `codeMode: BUNDLE` with a local `codeAddress`: digest it and write `atom-code://<digest>`."""
    mode = str(raw.get("codeMode", raw.get("code_mode")) or "").strip().upper()
    key = "codeAddress" if "codeAddress" in raw else "code_address"
    addr = raw.get(key)
    if mode != "BUNDLE" or not isinstance(addr, str) or not addr.strip() or addr.startswith("atom-code://"):
        return None
    path = Path(addr).expanduser()
    path = path if path.is_absolute() else (base / path).resolve()
    raw[key] = "atom-code://sha256:" + "0" * 64  # stands in until the digest is known
    try:
        if path.is_dir():
            module = str(raw.get("moduleName", raw.get("module_name")) or "").strip()
            missing = _missing_module(path, module.split(".")[0]) if module else None
            if missing:
                problems.append(f"{where}: codeAddress {addr!r}: {missing}")
                return None
            digest, size = pack_dir(path)
        elif path.is_file():
            with open(path, "rb") as f:
                kind = archive_kind(f.read(8))
            if kind is None:
                problems.append(
                    f"{where}: codeAddress {addr!r}: {path} is neither a directory, a .tar.gz nor a .zip"
                )
                return None
            digest, size = file_digest(path)
        else:
            problems.append(f"{where}: codeAddress {addr!r}: no such file or directory ({path})")
            return None
    except OSError as exc:
        problems.append(f"{where}: codeAddress {addr!r}: cannot read {path}: {exc.strerror or exc}")
        return None
    raw[key] = f"atom-code://{digest}"
    return CodeUpload(path, digest, size)


def _missing_module(path: Path, top: str) -> str | None:
    """Why `top` would not import from the directory `path` (None when it would)."""
    for where in (path, path / "src"):
        if (where / top).is_dir() or (where / f"{top}.py").is_file():
            return None
    entries = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    shown = ", ".join(entries[:15]) + (", ..." if len(entries) > 15 else "")
    return f"no module {top!r} in {path} (top-level entries: {shown or 'none'})"
