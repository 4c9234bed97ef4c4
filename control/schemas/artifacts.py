"""Run artifacts on the wire: what an agent reports a run left, and what users and downstream nodes see."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from control.schemas._base import Str1024, Wire
from control.schemas.pipeline import ArtifactKind

ArtifactName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_:./-]+$")]


class ArtifactReport(Wire):
    """One output the agent reports: a sink dataset it committed or a file the operator declared."""

    name: ArtifactName
    """`sink:<sourceName>` for a sink dataset; the operator's own name for a declared file."""
    kind: ArtifactKind
    uri: Str1024 = ""
    value: dict[str, Any] = Field(default_factory=dict)


class ArtifactBatch(Wire):
    """Body of `POST /api/v1/agent/runs/{id}/artifacts`; a name reported again replaces the earlier one."""

    artifacts: list[ArtifactReport] = Field(max_length=1000)


class ArtifactOut(Wire):
    name: str
    kind: ArtifactKind
    uri: str = ""
    value: dict[str, Any] = Field(default_factory=dict)
    run_id: int
    node_name: str = ""
    reused_from: int | None = None
    """The run whose artifact this is a copy of (the node was served from cache)."""
    created_at: datetime | None = None


__all__ = ["ArtifactBatch", "ArtifactName", "ArtifactOut", "ArtifactReport"]
