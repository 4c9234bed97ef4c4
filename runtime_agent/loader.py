"""Operator loading: import `moduleName`, take `executeObject` from it, or fail with `OperatorLoadError`."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from runtime_agent.errors import OperatorLoadError, describe_exception

logger = logging.getLogger(__name__)

#: module paths of the original Atom runtime's shipped examples -> where they live now
MODULE_ALIASES: dict[str, str] = {
    "atom_runtime.example.train_example": "runtime_agent.examples.train_example",
    "atom_runtime.examples.train_example": "runtime_agent.examples.train_example",
}


def split_ref(ref: str) -> tuple[str, str]:
    """Split `"pkg.module:ClassName"` into its module and object parts.

    Raises:
        OperatorLoadError: `ref` has no `:` or an empty side.
    """
    module, sep, obj = ref.partition(":")
    if not sep or not module.strip() or not obj.strip():
        raise OperatorLoadError(f"operator reference {ref!r} must look like 'package.module:ClassName'")
    return module.strip(), obj.strip()


def load_object(module_name: str, execute_object: str) -> Any:
    """Import `module_name` and return its attribute `execute_object` (dots walk nested names).

    Args:
        module_name: the operator's moduleName, e.g. `runtime_agent.examples.train_example`.
        execute_object: the operator's executeObject, e.g. `TrainExample`.

    Returns:
        The object (usually a class).

    Raises:
        OperatorLoadError: the module is missing or fails to import, or has no such object.
    """
    module_name = (module_name or "").strip()
    execute_object = (execute_object or "").strip()
    if not module_name:
        raise OperatorLoadError("operator moduleName is empty: set it to the operator's Python module path")
    if not execute_object:
        raise OperatorLoadError(
            f"operator executeObject is empty for module {module_name!r}: set it to the class name"
        )
    if module_name in MODULE_ALIASES:
        logger.info("moduleName %s is now %s", module_name, MODULE_ALIASES[module_name])
        module_name = MODULE_ALIASES[module_name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise OperatorLoadError(
                f"operator module {module_name!r} not found ({describe_exception(exc)}): check moduleName "
                "and that the operator's package is installed where the agent runs",
                module_name=module_name,
            ) from exc
        raise OperatorLoadError(
            f"operator module {module_name!r} failed to import: {describe_exception(exc)} "
            "(install the missing dependency in the runtime environment)",
            module_name=module_name,
        ) from exc
    except Exception as exc:
        raise OperatorLoadError(
            f"operator module {module_name!r} failed to import: {describe_exception(exc)}",
            module_name=module_name,
        ) from exc
    target: Any = module
    for part in execute_object.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            public = sorted(
                n
                for n, v in vars(module).items()
                if isinstance(v, type) and not n.startswith("_") and v.__module__ == module.__name__
            )
            hint = f" (classes there: {', '.join(public[:10])})" if public else ""
            raise OperatorLoadError(
                f"operator module {module_name!r} has no executeObject {execute_object!r}{hint}: "
                "check executeObject",
                module_name=module_name,
                execute_object=execute_object,
            ) from None
    return target


def load_ref(ref: str) -> Any:
    """`load_object` for a `"module:Object"` reference (serving objects, CLI `--operator`)."""
    module, obj = split_ref(ref)
    return load_object(module, obj)


def instantiate(obj: Any, *, module_name: str, execute_object: str) -> Any:
    """Build the operator instance: call a class with no arguments; pass instances through.

    Raises:
        OperatorLoadError: the class constructor raised.
    """
    if not isinstance(obj, type):
        return obj
    try:
        return obj()
    except Exception as exc:
        raise OperatorLoadError(
            f"operator {module_name}:{execute_object} could not be created: {describe_exception(exc)} "
            "(its __init__ must take no arguments)",
            module_name=module_name,
            execute_object=execute_object,
        ) from exc
