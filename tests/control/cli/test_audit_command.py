"""`atom audit` against the real app: the space's trail as a table or JSON, filters, no secrets."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from control.cli.audit import parse_since

SECRET = "Very-Secret-Pa55word"


def test_audit_lists_what_apply_did_without_the_password(
    atom: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "connections:\n"
        f"  - {{connectName: db, connectType: FILE, connectAddr: ., connectPassword: {SECRET}}}\n"
        "nodes:\n"
        "  - {nodeName: train, operatorRuntimeType: TRAIN}\n"
    )
    code, _, err = atom("--space", "team-a", "apply", "-f", str(spec))
    assert code == 0, err

    code, out, err = atom("--space", "team-a", "audit", "-o", "json", "--since", "1h")
    assert code == 0, err
    events = json.loads(out)
    assert [(e["actor"], e["action"], e["kind"], e["name"]) for e in events][-3:] == [
        ("local-admin", "create", "node", "train"),
        ("local-admin", "create", "connection", "db"),
        ("local-admin", "create", "space", "team-a"),
    ]
    assert SECRET not in out

    code, out, err = atom("--space", "team-a", "audit", "--kind", "connection")
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert header.split() == ["TIME", "ACTOR", "ACTION", "KIND", "NAME", "DETAIL"]
    assert row.split()[2:6] == ["local-admin", "create", "connection", "db"]

    code, out, err = atom("audit", "--all", "--action", "create", "--kind", "space")
    assert code == 0, err
    assert out.splitlines()[1].split()[2:4] == ["team-a", "local-admin"]

    code, out, err = atom("--space", "team-a", "audit", "--since", "2999-01-01")
    assert (code, out) == (0, "") and "no audit events in space 'team-a' match" in err

    code, _, err = atom("audit", "--since", "yesterday")
    assert code == 2 and "--since 'yesterday'" in err


def test_since_takes_a_time_or_an_age() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now) == "2026-03-01T10:30:00+00:00"
    assert parse_since("2d", now) == "2026-02-27T12:00:00+00:00"
    assert parse_since("2026-02-01T08:00", now) == "2026-02-01T08:00:00+00:00"
    assert parse_since("2026-02-01T08:00+02:00", now) == "2026-02-01T06:00:00+00:00"
    assert parse_since(None, now) is None
