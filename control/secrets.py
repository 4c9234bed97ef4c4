"""Secrets at rest: connection passwords encrypted with Fernet; tokens stored only as hashes."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from connectors.errors import ConfigError


class Vault:
    """Encrypts and decrypts connection passwords with one Fernet key."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise ConfigError("ATOM_SECRET_KEY is not a valid Fernet key (32 url-safe base64 bytes)") from exc

    @classmethod
    def from_home(cls, home: Path, key: str | None = None) -> Vault:
        """Use `key`, else `{home}/secret.key`, creating it (mode 0600) on first use."""
        if key:
            return cls(key.encode())
        path = home / "secret.key"
        if not path.exists():
            home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigError(
                "a stored password cannot be decrypted with this secret key: "
                "set ATOM_SECRET_KEY to the key the store was written with"
            ) from exc


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
