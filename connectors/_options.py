"""`source_conf` options read the same way by every connector: typed, with one-line refusals.

A connection's `sourceConf` is free-form JSON (numbers may arrive as strings from a form or a
URL query); these helpers turn one option into the type a connector needs, or raise
`ConnectorConfigError` naming the option, its value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.errors import ConnectorConfigError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def conf_int(
    conf: Mapping[str, Any], name: str, default: int, *, minimum: int | None = None, where: str = ""
) -> int:
    """A whole-number option (at least `minimum` when given)."""
    value = conf.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConnectorConfigError(
            f"{_prefix(where)}sourceConf {name}={value!r} is not a whole number"
        ) from None
    if minimum is not None and number < minimum:
        raise ConnectorConfigError(f"{_prefix(where)}sourceConf {name}={number} must be at least {minimum}")
    return number


def conf_float(conf: Mapping[str, Any], name: str, default: float, *, where: str = "") -> float:
    """A number option (seconds, ...)."""
    value = conf.get(name, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConnectorConfigError(f"{_prefix(where)}sourceConf {name}={value!r} is not a number") from None


def conf_bool(conf: Mapping[str, Any], name: str, default: bool, *, where: str = "") -> bool:
    """A boolean option: JSON true/false, or "true"/"false"/"1"/"0"/"yes"/"no"/"on"/"off"."""
    value = conf.get(name, default)
    if not isinstance(value, str):
        return bool(value)
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConnectorConfigError(f"{_prefix(where)}sourceConf {name}={value!r} must be true or false")


def conf_choice(
    conf: Mapping[str, Any], name: str, default: str, valid: tuple[str, ...], *, where: str = ""
) -> str:
    """One of `valid` (case-insensitive)."""
    value = str(conf.get(name, default)).lower()
    if value not in valid:
        raise ConnectorConfigError(
            f"{_prefix(where)}sourceConf {name}={value!r}: valid values are {', '.join(valid)}"
        )
    return value
