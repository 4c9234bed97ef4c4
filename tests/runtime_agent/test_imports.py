"""Import hygiene: the operator API and the agent's entry modules do not pull in Ray or torch up front."""

from __future__ import annotations

import subprocess
import sys

import runtime_agent


def test_public_names() -> None:
    assert set(runtime_agent.__all__) == {
        "Operator",
        "OperatorContext",
        "ReasoningOperator",
        "TrainOperator",
        "TrainResult",
    }
    assert all(hasattr(runtime_agent, name) for name in runtime_agent.__all__)


def test_importing_the_agent_leaves_heavy_packages_out() -> None:
    code = (
        "import sys, runtime_agent, runtime_agent.pipeline, runtime_agent.train, runtime_agent.__main__;"
        "print(sorted(m for m in ('ray', 'torch', 'sqlalchemy', 'control.store') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
