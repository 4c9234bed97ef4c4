"""The six-hook lifecycle (DESIGN §4): resolves each hook for each data source and calls it in order.

`run_lifecycle` reads every input source (roles the operator's `read_roles` lists, in `order`)
and drives taskInitExecute -> operateExecuteBefore -> (dataExecuteBefore -> operateExecute ->
dataExecuteAfter per batch) -> operateExecuteAfter, then `task_finish_execute` once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from connectors.errors import AtomError
from runtime_agent._aio import call
from runtime_agent.api import READ_ROLES, Operator
from runtime_agent.errors import OperatorFailed

if TYPE_CHECKING:
    from control.schemas import SourceSpec
    from runtime_agent.context import OperatorContext
    from runtime_agent.sources import SourceReader

logger = logging.getLogger(__name__)

#: hooks a data source's fields can redirect (operateExecute is the source's target, not a hook)
SOURCE_HOOK_FIELDS = (
    "task_init_execute",
    "operate_execute_before",
    "data_execute_before",
    "data_execute_after",
    "operate_execute_after",
)


def snake_case(name: str) -> str:
    """`dataExecuteBefore` -> `data_execute_before` (snake_case names pass through)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def camel_case(name: str) -> str:
    """`data_execute_before` -> `dataExecuteBefore`."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def find_method(op: Any, name: str) -> Callable[..., Any] | None:
    """The operator's method called `name` (or its snake_case / camelCase twin), if it has one."""
    for candidate in (name, snake_case(name), camel_case(name)):
        if not candidate.isidentifier() or candidate.startswith("_"):
            continue
        method = getattr(op, candidate, None)
        if callable(method):
            return method
    return None


def own_hook(op: Any, hook: str) -> Callable[..., Any] | None:
    """The operator's implementation of `hook` (snake_case or camelCase), or None.

    `Operator`'s do-nothing defaults do not count, so the agent skips them without a thread hop.
    """
    impl = getattr(type(op), hook, None)
    if impl is not None and impl is not getattr(Operator, hook, None):
        method = getattr(op, hook)
        return method if callable(method) else None
    twin = getattr(op, camel_case(hook), None)
    return twin if callable(twin) else None


class Hooks:
    """Resolves hooks: a source's field naming an operator method wins over the default method."""

    def __init__(self, op: Any) -> None:
        self.op = op
        self._warned: set[tuple[str, str]] = set()

    def default(self, hook: str) -> Callable[..., Any] | None:
        """The operator's own method for `hook`, or None when it has none (or the base no-op)."""
        return own_hook(self.op, hook)

    def override(self, source: SourceSpec, hook: str) -> Callable[..., Any] | None:
        """The method a source's hook field names, or None (empty, or names nothing: warned once)."""
        value = str(getattr(source, hook, "") or "").strip()
        if not value:
            return None
        method = find_method(self.op, value)
        if method is not None:
            return method
        key = (source.source_name, hook)
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(
                "data source %r: %s=%r names no method of %s; using the default hook",
                source.source_name,
                camel_case(hook),
                value,
                type(self.op).__name__,
            )
        return None

    def for_source(self, source: SourceSpec, hook: str) -> Callable[..., Any] | None:
        """The hook to call for `source`: its override, else the default."""
        return self.override(source, hook) or self.default(hook)


async def call_hook(name: str, fn: Callable[..., Any] | None, *args: Any) -> Any:
    """Call one hook (sync in a thread, async awaited); wrap the user's exceptions in OperatorFailed."""
    if fn is None:
        return None
    try:
        return await call(fn, *args)
    except AtomError:
        raise
    except Exception as exc:
        raise OperatorFailed(getattr(fn, "__name__", name), exc) from exc


def read_roles(op: Any) -> tuple[str, ...]:
    """The roles the operator wants read and fed through its hooks."""
    roles = getattr(op, "read_roles", READ_ROLES)
    return tuple(str(r) for r in roles)


async def run_lifecycle(
    op: Any,
    ctx: OperatorContext,
    reader: SourceReader,
    *,
    after_batch: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run the operator's hooks over every input source.

    Args:
        op: the operator instance.
        ctx: its context.
        reader: reads the run's sources.
        after_batch: awaited after each batch (the pipeline flushes sinks there).

    Raises:
        OperatorFailed: a hook raised.
    """
    import pandas as pd  # deferred: keep `import runtime_agent` light

    hooks = Hooks(op)
    roles = read_roles(op)
    inputs = [s for s in reader.sources if str(s.source_type) in roles]

    ctx.stage = "init"
    inits: list[Callable[..., Any] | None] = []
    for source in reader.sources:
        method = hooks.override(source, "task_init_execute")
        if method is not None and method not in inits:
            inits.append(method)
    for init in inits or [hooks.default("task_init_execute")]:
        await call_hook("task_init_execute", init, ctx)

    operate = hooks.default("operate_execute")
    for source in inputs:
        ctx.stage = f"read {source.source_name}"
        ctx.current_source = source
        before = hooks.for_source(source, "data_execute_before")
        after = hooks.for_source(source, "data_execute_after")
        await call_hook(
            "operate_execute_before", hooks.for_source(source, "operate_execute_before"), ctx, source
        )
        async for raw in reader.read(source):
            batch = raw
            replaced = await call_hook("data_execute_before", before, batch, ctx)
            if replaced is not None:
                if not isinstance(replaced, pd.DataFrame):
                    raise OperatorFailed(
                        getattr(before, "__name__", "data_execute_before"),
                        f"returned {type(replaced).__name__}; return a DataFrame or None",
                    )
                batch = replaced
                if batch.empty:
                    continue
            ctx.rows_read += len(raw)
            await call_hook("operate_execute", operate, batch, ctx)
            await call_hook("data_execute_after", after, batch, ctx)
            if after_batch is not None:
                await after_batch()
        await call_hook("operate_execute_after", hooks.for_source(source, "operate_execute_after"), ctx)
    ctx.current_source = None
    ctx.stage = "finish"
    await call_hook("task_finish_execute", hooks.default("task_finish_execute"), ctx)
