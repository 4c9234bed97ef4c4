"""Operators for the dispatch end-to-end tests (imported by real agent processes and Ray jobs)."""

from __future__ import annotations

import json
import os
from typing import Any

from runtime_agent.examples.train_example import TrainExample


class TrainShowingEnv(TrainExample):
    """TrainExample that first logs its environment variables' names and its model version."""

    def task_init_execute(self, ctx: Any) -> None:
        ctx.logger.info("ENVNAMES %s", json.dumps(sorted(os.environ)))
        ctx.logger.info("MODEL_VERSION=%s", os.environ.get("ATOM_MODEL_VERSION", ""))
