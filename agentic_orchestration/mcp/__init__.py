"""MCP servers for steps: catalog entries to transport dicts to CrewAI server configs.

- ``resolution``: entries -> ``${VAR}``-free refs for step specs (coordinator side), then
  expanded and checked where the server starts (in-process backend or worker).
- ``gateway``: a stdio server reached over streamable HTTP (Kubernetes gateway/sidecar).
- ``crewai_hotfix`` (+ ``_session``): what CrewAI's MCP support gets wrong, patched in
  place; imports CrewAI, so it is not re-exported here (import it where steps run).

Failures are ``errors.MCPServerError`` (a step's server cannot be used) and
``errors.ConfigError`` (an unset ``${VAR}``).
"""

from agentic_orchestration.mcp.gateway import SupergatewayProcess, rewrite_stdio_to_gateway
from agentic_orchestration.mcp.resolution import (
    check_mcp_env,
    check_stdio_command,
    crewai_mcps_for,
    expand_env,
    referenced_env_vars,
    resolve_workflow_mcp_refs,
    to_crewai_mcp,
)

__all__ = [
    "SupergatewayProcess",
    "check_mcp_env",
    "check_stdio_command",
    "crewai_mcps_for",
    "expand_env",
    "referenced_env_vars",
    "resolve_workflow_mcp_refs",
    "rewrite_stdio_to_gateway",
    "to_crewai_mcp",
]
