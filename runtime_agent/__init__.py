"""Atom runtime agent: runs one operator task (train, reason, data) or serves a model.

The operator API lives here (cheap to import: no Ray, torch or pandas until used):
`Operator`, `TrainOperator`, `ReasoningOperator`, `OperatorContext`, `TrainResult`;
`runtime_agent.train` has the helpers a `train_loop` calls, `runtime_agent.compat` the
original runtime's `TrainOperatorApi` / `ReasoningOperatorApi`, and `runtime_agent.testing`
the `AgentRunner` for local tests.
"""

from runtime_agent.api import Operator, ReasoningOperator, TrainOperator, TrainResult
from runtime_agent.context import OperatorContext

__all__ = ["Operator", "OperatorContext", "ReasoningOperator", "TrainOperator", "TrainResult"]
