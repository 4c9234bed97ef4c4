"""Agent logging: timestamped lines on stderr (control redirects them to the run's log file).

Only entry points call `configure_logging`. Every secret the agent learns (the run token,
connection passwords) is registered with `add_secret` and masked in every record.
"""

from __future__ import annotations

import logging
import sys
import threading

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def add_secret(value: str | None) -> None:
    """Mask `value` in every log record and every reason string from now on."""
    if value and len(value) >= 3:
        with _LOCK:
            _SECRETS.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `***`."""
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter that masks registered secrets in the finished line."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str | int = "INFO") -> None:
    """Send log records to stderr with timestamps, secrets masked; quiet chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "filelock", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
