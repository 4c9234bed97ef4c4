"""The runtime-agent subtree of Atom's error hierarchy (root: `connectors.errors.AtomError`).

```
OperatorError                                  # runtime_agent/ (this module)
├─ OperatorLoadError(Permanent)                # moduleName / executeObject cannot be imported
│   └─ CodeFetchError                          # codeMode/codeAddress/codeVersion cannot be brought here
├─ OperatorFailed(Permanent)                   # the user's code raised; carries type + message
│   └─ TrainingFailed                          # ... inside a Ray Train worker
├─ SpecError(ConfigError)                      # a task spec or spec file the agent cannot run
├─ ModelError(Permanent)                       # a model cannot be packed, stored or loaded
└─ RunStopped                                  # a user (or SIGTERM) asked the run to stop
```

Every message is one line that names the thing and says what to do; the agent reports
`str(error)` as the run's reason, so no message may contain a secret.
"""

from __future__ import annotations

from typing import Any

from connectors.errors import AtomError, ConfigError, Permanent


class OperatorError(AtomError):
    """Base of every error the runtime agent raises."""


class OperatorLoadError(OperatorError, Permanent):
    """The operator named by moduleName + executeObject cannot be imported."""


class CodeFetchError(OperatorLoadError):
    """The operator's code (a git repository, a pip requirement or wheel, an uploaded bundle) cannot be
    fetched or does not hold the module; the message names the address and what is missing."""


class OperatorFailed(OperatorError, Permanent):
    """The operator's own code raised.

    Args:
        hook: where it raised (`operate_execute`, `train_loop`, ...).
        exc: the exception the user's code raised.
    """

    def __init__(self, hook: str, exc: BaseException | str, **context: Any) -> None:
        detail = exc if isinstance(exc, str) else describe_exception(exc)
        super().__init__(f"operator failed in {hook}: {detail}", hook=hook, **context)
        self.hook = hook


class TrainingFailed(OperatorFailed):
    """A Ray Train worker (the operator's `train_loop`) raised."""


class SpecError(OperatorError, ConfigError):
    """A task spec (from control or a spec file) that the agent cannot run."""


class ModelError(OperatorError, Permanent):
    """A model that cannot be packed, stored, fetched or loaded."""


class RunStopped(OperatorError):
    """The run was asked to stop (by a user through control, or by SIGTERM)."""


def describe_exception(exc: BaseException) -> str:
    """One line for a user's exception: `ValueError: bad column 'x'` (first line of the message)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
