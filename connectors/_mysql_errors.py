"""Error boundary of the MYSQL connector: pymysql, socket and connectorx failures -> typed `ConnectorError`s.

Every message is one line that names the server (never the password) and the table, and says
what to do. connectorx reports errors as text that may quote its connection string; `scrub()`
removes credentials from any text before it reaches a message, a log line or a traceback, and
connectorx errors are raised `from None` so the raw text is not chained either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pymysql

from connectors._mysql_sql import is_query
from connectors.errors import (
    AuthenticationFailed,
    BatchDecodeError,
    ConnectorConfigError,
    ConnectorError,
    PermissionDenied,
    RequestRejected,
    SourceUnavailable,
    TargetNotFound,
)

LOST_CODES = frozenset({2006, 2013, 2055})
"""Server gone away / lost connection during query / lost at handshake."""
_UNREACHABLE = {2002, 2003, 2005} | LOST_CODES | {1040, 1053, 1205, 1213, 1927}
_DENIED = {1044, 1142, 1143, 1227, 1370}
_MISSING_TABLE = {1146, 1051}
_CX_CODE = re.compile(r"ERROR (\d{4}) \(([0-9A-Z]{5})\): (.*?)(?: \}|$)", re.DOTALL)
_CX_NETWORK = (
    "DriverError",
    "IoError",
    "Io(",
    "timed out waiting for connection",
    "Connection refused",
    "Connection reset",
    "Broken pipe",
    "broken pipe",
    "UnexpectedEof",
    "unexpected end of file",
    "Server disconnected",
)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret (and its URL-encoded form) replaced by `***`."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(form, "***")
    # a connection string with inline credentials, whatever the password was
    return re.sub(r"(mysql://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class ErrorContext:
    """What a message may say about the connection: no secrets.

    Attributes:
        user: the account.
        host: host name or socket path.
        port: TCP port (0 for a unix socket).
        database: the default database.
    """

    user: str
    host: str
    port: int
    database: str

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host

    @property
    def where(self) -> str:
        return self.server + (f"/{self.database}" if self.database else "")

    def from_code(self, code: int | None, detail: str, doing: str, target: str | None) -> ConnectorError:
        """The connector error for a server (or client library) error code."""
        ctx: dict[str, Any] = {"code": code, "where": self.where}
        detail = one_line(detail)
        if code == 1045:
            return AuthenticationFailed(
                f"MySQL refused user {self.user!r} at {self.server}: check the account and password", **ctx
            )
        if code in _DENIED:
            return PermissionDenied(
                f"MySQL user {self.user!r} may not do this ({doing}) at {self.where}: {detail}; "
                "ask for the grant or use another account",
                **ctx,
            )
        if code == 1049:
            return TargetNotFound(
                f"MySQL database {self.database!r} does not exist at {self.server}: "
                "create it or fix the connection's space",
                **ctx,
            )
        if code in _MISSING_TABLE and target and is_query(target):
            return TargetNotFound(
                f"MySQL query {target!r} reads a table that does not exist in {self.where} ({detail}): "
                "check the table names in the query",
                **ctx,
            )
        if code in _MISSING_TABLE and target:
            return TargetNotFound(
                f"MySQL table {target} does not exist in {self.where}: check the data source's table name",
                **ctx,
            )
        if code in _MISSING_TABLE:
            return TargetNotFound(f"MySQL at {self.where}: {detail}: check the table name", **ctx)
        if code == 1046:
            return ConnectorConfigError(
                f"no database selected at {self.server}: set the connection's space (database) "
                "or qualify the table as db.table",
                **ctx,
            )
        if code in _UNREACHABLE or (code is not None and 2000 <= code < 3000):
            return SourceUnavailable(
                f"MySQL at {self.server} is unreachable or dropped the connection while {doing} "
                f"({detail}): check the server is up and reachable, then retry",
                **ctx,
            )
        return RequestRejected(f"MySQL refused {doing} at {self.where}: {detail}", **ctx)

    def from_pymysql(self, exc: BaseException, doing: str, target: str | None = None) -> ConnectorError:
        """Translate a pymysql or socket error raised while `doing`."""
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        detail = str(exc.args[1]) if len(exc.args) > 1 else (str(exc) or type(exc).__name__)
        if not code and (isinstance(exc, (OSError, pymysql.err.InterfaceError)) or "sequence" in detail):
            code = 2013  # a socket error, a closed connection or a torn packet stream
        return self.from_code(code, detail, doing, target)

    def from_connectorx(
        self, exc: BaseException, doing: str, target: str | None, secrets: Iterable[str]
    ) -> ConnectorError:
        """Translate a connectorx error; its text is scrubbed of credentials first."""
        text = scrub(str(exc) or type(exc).__name__, secrets)
        found = _CX_CODE.search(text)
        if found:
            return self.from_code(int(found.group(1)), found.group(3), doing, target)
        if any(marker in text for marker in _CX_NETWORK):
            return self.from_code(2013, text, doing, target)
        return BatchDecodeError(
            f"connectorx could not read {target or 'the result'} from {self.where} ({one_line(text)}): "
            "set source_conf engine='pymysql' for this data source",
            where=self.where,
        )
