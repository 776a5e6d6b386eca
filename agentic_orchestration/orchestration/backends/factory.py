"""Backend selection by name: ``AGENTIC_EXECUTION_BACKEND`` or ``--execution-backend``.

Backends are imported lazily from this registry so choosing one never imports another.
"""

from __future__ import annotations

import importlib

from agentic_orchestration import settings
from agentic_orchestration.errors import BackendError
from agentic_orchestration.orchestration.backends.base import ExecutionBackend

__all__ = ["BACKENDS", "backend_name_from_env", "execution_backend_from_env"]

#: name -> "module:Class", or None for a backend that is planned but not built yet.
_PKG = "agentic_orchestration.orchestration.backends"
BACKENDS: dict[str, str | None] = {
    "inprocess": f"{_PKG}.crewai:CrewAIExecutionBackend",
    "subprocess": f"{_PKG}.subprocess:SubprocessExecutionBackend",
    "kubernetes": f"{_PKG}.kubernetes:KubernetesExecutionBackend",
}


def backend_name_from_env(override: str | None = None) -> str:
    name = (override or settings.get("AGENTIC_EXECUTION_BACKEND")).strip().lower()
    if name not in BACKENDS:
        known = ", ".join(BACKENDS)
        raise BackendError(f"unknown execution backend {name!r} (known: {known})")
    return name


def execution_backend_from_env(override: str | None = None) -> ExecutionBackend:
    """The backend named by ``override`` or ``AGENTIC_EXECUTION_BACKEND`` (default inprocess)."""
    name = backend_name_from_env(override)
    target = BACKENDS[name]
    if target is None:
        raise BackendError(
            f"execution backend {name!r} is not built yet in this version; "
            "use AGENTIC_EXECUTION_BACKEND=inprocess"
        )
    module_name, _, class_name = target.partition(":")
    backend_cls = getattr(importlib.import_module(module_name), class_name)
    return backend_cls()
