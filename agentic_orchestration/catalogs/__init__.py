"""YAML catalogs (agent providers, MCP providers, workflows) as validated pydantic models."""

from agentic_orchestration.catalogs.catalog import Catalog, load_catalog, with_llm_of
from agentic_orchestration.catalogs.config_loader import load_workflow, load_workflows
from agentic_orchestration.catalogs.filters import (
    filter_entries_by_api_credentials,
    filter_entries_by_hardware,
    filter_mcp_entries_by_api_credentials,
    filter_mcp_entries_by_installed_command,
)
from agentic_orchestration.catalogs.models import (
    AgentProviderEntry,
    MCPProviderEntry,
    StepConfig,
    WorkflowConfig,
)

__all__ = [
    "AgentProviderEntry",
    "Catalog",
    "MCPProviderEntry",
    "StepConfig",
    "WorkflowConfig",
    "filter_entries_by_api_credentials",
    "filter_entries_by_hardware",
    "filter_mcp_entries_by_api_credentials",
    "filter_mcp_entries_by_installed_command",
    "load_catalog",
    "load_workflow",
    "load_workflows",
    "with_llm_of",
]
