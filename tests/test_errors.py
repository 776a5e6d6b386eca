"""``errors``: every error class in one module, and the one wording of validation errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentic_orchestration.catalogs.models import AgentProviderEntry, WorkflowConfig
from agentic_orchestration.errors import (
    EXIT_BAD_INPUT,
    EXIT_STEP_FAILED,
    AgenticError,
    BackendError,
    MCPServerError,
    ZygoteGone,
    from_validation_error,
)


def _validation_error(model: type, data: dict) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value


def test_from_validation_error_names_the_field_as_a_reader_writes_it() -> None:
    exc = _validation_error(WorkflowConfig, {"name": "wf", "steps": [
        {"agent_provider": "a", "description": "d", "surprise": 1}]})
    assert from_validation_error(exc) == "steps[0].surprise: unknown field"
    assert from_validation_error(exc, prefix="plan") == "plan.steps[0].surprise: unknown field"
    assert from_validation_error(exc, file="run.json") == (
        "run.json: field steps[0].surprise: unknown field")


def test_from_validation_error_counts_the_other_problems_on_one_line() -> None:
    exc = _validation_error(AgentProviderEntry, {"id": "a1", "type": "local"})
    line = from_validation_error(exc)
    assert line.startswith(("role: missing required field (and ",
                            "goal: missing required field (and "))
    assert line.endswith("more problems)") and "\n" not in line


def test_from_validation_error_of_the_whole_object_and_of_other_exceptions() -> None:
    exc = _validation_error(WorkflowConfig, {"name": "wf", "steps": [
        {"id": "s", "agent_provider": "a", "description": "d"},
        {"id": "s", "agent_provider": "a", "description": "d"}]})
    assert from_validation_error(exc).startswith("(top level): ")
    assert "duplicate step id" in from_validation_error(exc)
    assert from_validation_error(OSError("disk gone\nmore")) == "disk gone"
    assert from_validation_error(ValueError()) == "ValueError"


def test_moved_errors_keep_their_exit_code_and_retryability() -> None:
    mcp = MCPServerError("fetch", "not answering")
    assert isinstance(mcp, AgenticError) and str(mcp) == "MCP server 'fetch': not answering"
    assert (mcp.exit_code, mcp.recoverable, mcp.mcp_id) == (EXIT_STEP_FAILED, False, "fetch")
    gone = ZygoteGone("warm worker closed its output")
    assert isinstance(gone, BackendError)
    assert (gone.exit_code, gone.recoverable) == (EXIT_BAD_INPUT, True)
