"""Route a WorkflowConfig to the backend that will really run it (spec F3.1, F4.5, K3.0).

``subprocess`` runs step workers only with ``AGENTIC_SUBPROCESS_WORKERS=1``; without it the
spec says the subprocess backend falls back to in-process CrewAI, and the session records
``inprocess`` because that is what ran. ``kubernetes`` always takes the distributed path.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from agentic_orchestration import settings
from agentic_orchestration.orchestration.backends.factory import (
    backend_name_from_env,
    execution_backend_from_env,
)

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog, WorkflowConfig
    from agentic_orchestration.orchestration.backends.base import (
        ExecutionBackend,
        RunOptions,
        WorkflowExecutionResult,
    )

logger = logging.getLogger(__name__)

DISTRIBUTED = ("subprocess", "kubernetes")


def use_distributed_execute_config(backend_name: str) -> bool:
    """Whether ``backend_name`` runs steps as separate workers in this configuration."""
    if backend_name == "kubernetes":
        return True
    return backend_name == "subprocess" and settings.get_bool("AGENTIC_SUBPROCESS_WORKERS")


def resolve_backend(override: str | None = None) -> ExecutionBackend:
    """The backend that will run: checks the name first (fails before any planning)."""
    name = backend_name_from_env(override)
    if name in DISTRIBUTED and not use_distributed_execute_config(name):
        logger.info("%s backend without AGENTIC_SUBPROCESS_WORKERS=1: running in-process", name)
        name = "inprocess"
    return execution_backend_from_env(name)


def execute_workflow_config_resolved(
    config: WorkflowConfig,
    *,
    options: RunOptions,
    catalog: Catalog | None = None,
    backend: ExecutionBackend | None = None,
    resume: bool = False,
) -> WorkflowExecutionResult:
    """Run ``config`` on ``backend`` (default: ``resolve_backend()``).

    ``resume`` continues ``options.run_id`` from its run store; only distributed backends
    keep one.
    """
    backend = backend or resolve_backend()
    if resume:
        if not backend.supports_resume:
            from agentic_orchestration.errors import BackendError

            raise BackendError(f"backend {backend.name!r} keeps no run store to resume from")
        return backend.resume_config(config, options=options, catalog=catalog)
    return backend.execute_config(config, options=options, catalog=catalog)
