"""MCP catalog entries -> transport dicts (for step specs) -> CrewAI MCP server objects.

Three stages, split by *where* they may run:

1. :func:`resolve_workflow_mcp_refs` (coordinator, planner, materializer): catalog entries
   become ``{"id": ..., "resolved": {"stdio": {...}}}`` or ``{"streamable_http": {...}}``
   dicts. ``${VAR}`` references are left as written, so these dicts can go into a step spec,
   a log or a run store without carrying a secret.
2. :func:`expand_env` (only the process that starts or connects to the server: the
   in-process backend, or the worker): ``${VAR}`` becomes its value; a missing variable is
   a ``ConfigError`` naming the MCP id and the variable.
3. :func:`to_crewai_mcp`: the expanded dict becomes ``crewai.mcp.MCPServerStdio`` or
   ``MCPServerHTTP`` (CrewAI imported lazily, here only).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agentic_orchestration.catalogs.models import MCPProviderEntry
from agentic_orchestration.errors import ConfigError

if TYPE_CHECKING:
    from crewai.mcp import MCPServerHTTP, MCPServerStdio

_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
TRANSPORTS = ("stdio", "streamable_http")


def resolve_workflow_mcp_refs(
    entries: Iterable[MCPProviderEntry | Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Catalog entries as ``{"id", "resolved": {<transport>: {...}}}`` dicts, unexpanded.

    Args:
        entries: MCP catalog entries (models, or their dicts as loaded from YAML).

    Returns:
        One dict per entry, in order; ``resolved`` holds exactly one transport block with
        every field present (defaults filled) and every ``${VAR}`` left as written.
    """
    refs = []
    for raw in entries:
        entry = raw if isinstance(raw, MCPProviderEntry) else MCPProviderEntry.model_validate(raw)
        block = entry.stdio if entry.stdio is not None else entry.streamable_http
        assert block is not None  # guaranteed by MCPProviderEntry's validator
        refs.append({"id": entry.id, "resolved": {entry.transport: block.model_dump(mode="json")}})
    return refs


def referenced_env_vars(resolved: Mapping[str, Any]) -> list[str]:
    """Names of every ``${VAR}`` a resolved dict refers to, in first-seen order."""
    names: dict[str, None] = {}

    def walk(value: Any) -> None:
        if isinstance(value, str):
            names.update(dict.fromkeys(_VAR_REF.findall(value)))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(resolved)
    return list(names)


def expand_env(
    resolved: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    *,
    mcp_id: str = "",
) -> dict[str, Any]:
    """A copy of ``resolved`` with every ``${VAR}`` replaced by its value from ``env``.

    Call this only in the process that starts (stdio) or connects to (HTTP) the server; the
    result holds secrets and must not be logged or written to a spec.

    Args:
        resolved: ``{"stdio": {...}}`` / ``{"streamable_http": {...}}``, or a whole ref
            ``{"id": ..., "resolved": {...}}`` (then its id names errors).
        env: Where values come from; default ``os.environ``.
        mcp_id: Names the server in errors when ``resolved`` is not a whole ref.

    Raises:
        ConfigError: A referenced variable is unset or blank (names the MCP id and var).
    """
    if "resolved" in resolved:
        mcp_id = str(resolved.get("id", mcp_id))
        resolved = resolved["resolved"]
    source = os.environ if env is None else env

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = source.get(name, "")
        if not value.strip():
            raise ConfigError(
                f"MCP provider {mcp_id or '?'!r}: env var {name} is not set "
                f"(referenced as ${{{name}}})"
            )
        return value

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return _VAR_REF.sub(substitute, value)
        if isinstance(value, Mapping):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return walk(dict(resolved))


def to_crewai_mcp(resolved: Mapping[str, Any]) -> MCPServerStdio | MCPServerHTTP:
    """CrewAI's server config for an *expanded* resolved dict.

    ``stdio`` -> ``MCPServerStdio(command, args, env)`` (CrewAI merges ``env`` over the MCP
    SDK's safe default environment, so only the variables the entry lists reach the
    server); ``streamable_http`` -> ``MCPServerHTTP(url, headers, streamable=True)``.

    Raises:
        ConfigError: ``resolved`` does not hold exactly one known transport block, or a
            ``${VAR}`` was not expanded first.
    """
    if "resolved" in resolved:
        resolved = resolved["resolved"]
    keys = [key for key in resolved if key in TRANSPORTS]
    if len(keys) != 1 or len(resolved) != 1:
        raise ConfigError(
            f"resolved MCP config must hold exactly one of {TRANSPORTS}, got {sorted(resolved)}"
        )
    leftover = referenced_env_vars(resolved)
    if leftover:
        raise ConfigError(
            "MCP config still holds ${VAR} references (call expand_env first): "
            + ", ".join(leftover)
        )
    from agentic_orchestration import settings

    settings.quiet_crewai_network()
    from crewai.mcp import MCPServerHTTP, MCPServerStdio

    block = dict(resolved[keys[0]])
    if keys[0] == "stdio":
        return MCPServerStdio(
            command=block["command"], args=list(block.get("args") or []),
            env=dict(block.get("env") or {}) or None,
        )
    return MCPServerHTTP(
        url=block["url"], headers=dict(block.get("headers") or {}) or None, streamable=True,
    )
