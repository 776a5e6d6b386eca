"""Execution backends and their shared contracts."""

from agentic_orchestration.orchestration.backends.base import (
    SCHEMA_VERSION,
    ExecutionBackend,
    RunOptions,
    StepResult,
    StepSpec,
    WorkflowExecutionResult,
)
from agentic_orchestration.orchestration.backends.factory import execution_backend_from_env

__all__ = [
    "SCHEMA_VERSION",
    "ExecutionBackend",
    "RunOptions",
    "StepResult",
    "StepSpec",
    "WorkflowExecutionResult",
    "execution_backend_from_env",
]
