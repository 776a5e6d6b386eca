"""MCP catalog entries -> transport dicts (for step specs) -> CrewAI MCP server objects.

Three stages, split by *where* they may run:

1. :func:`resolve_workflow_mcp_refs` (coordinator, planner, materializer): catalog entries
   become ``{"id": ..., "resolved": {"stdio": {...}}}`` or ``{"streamable_http": {...}}``
   dicts. ``${VAR}`` references are left as written, so these dicts can go into a step spec,
   a log or a run store without carrying a secret.
2. :func:`expand_env` (only the process that starts or connects to the server: the
   in-process backend, or the worker): ``${VAR}`` becomes its value; a missing variable is
   a ``ConfigError`` naming the MCP id and the variable. Every value it expands, and every
   credential-like HTTP header value, is registered with ``agentic_orchestration.redaction``
   so it is masked in everything this process writes or prints.
3. :func:`to_crewai_mcp`: the expanded dict becomes ``crewai.mcp.MCPServerStdio`` or
   ``MCPServerHTTP`` (CrewAI imported lazily, here only), tagged with its MCP id and the
   secret values to hide, for ``mcp.crewai_hotfix``.

:func:`crewai_mcps_for` does 2 and 3 for a step's refs, plus the attach-time health check
(:func:`check_stdio_command`): a stdio command that is not installed fails the step before
any LLM call, naming the MCP id, instead of inside CrewAI (a traceback on stderr and a
``ConnectionError`` our fallback would take for the LLM endpoint's).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentic_orchestration.catalogs.filters import find_stdio_command
from agentic_orchestration.catalogs.models import MCPProviderEntry
from agentic_orchestration.errors import ConfigError, MCPServerError
from agentic_orchestration.redaction import register_values

if TYPE_CHECKING:
    from crewai.mcp import MCPServerHTTP, MCPServerStdio

    from agentic_orchestration.catalogs import Catalog, WorkflowConfig

__all__ = [
    "check_mcp_env",
    "check_stdio_command",
    "crewai_mcps_for",
    "expand_env",
    "referenced_env_vars",
    "resolve_workflow_mcp_refs",
    "to_crewai_mcp",
]

_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
TRANSPORTS = ("stdio", "streamable_http")
#: Expanded values shorter than this are not redacted (they would mangle ordinary words).
_MIN_SECRET_LEN = 4
#: Header names (lowercase, or containing one of these words) whose values are credentials.
_CREDENTIAL_HEADER_WORDS = ("auth", "cookie", "key", "token", "secret", "password")


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
    expanded: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = source.get(name, "")
        if not value.strip():
            raise ConfigError(
                f"MCP provider {mcp_id or '?'!r}: env var {name} is not set "
                f"(referenced as ${{{name}}})"
            )
        expanded.append(value)
        return value

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return _VAR_REF.sub(substitute, value)
        if isinstance(value, Mapping):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    result = walk(dict(resolved))
    register_values(expanded)
    register_values(_credential_header_values(resolved, result))
    return result


def _credential_header_values(resolved: Mapping[str, Any], expanded: Mapping[str, Any]
                             ) -> list[str]:
    """Expanded HTTP header values that are credentials: those built from a ``${VAR}`` and
    those of a header whose name says so (``Authorization``, ``X-Api-Key``, ``Cookie``...)."""
    raw = (resolved.get("streamable_http") or {}).get("headers") or {}
    done = (expanded.get("streamable_http") or {}).get("headers") or {}
    return [str(value) for name, value in done.items()
            if _VAR_REF.search(str(raw.get(name, "")))
            or any(word in str(name).lower() for word in _CREDENTIAL_HEADER_WORDS)]


def check_mcp_env(
    config: WorkflowConfig, catalog: Catalog, env: Mapping[str, str] | None = None,
) -> None:
    """Fail before any step runs if an MCP server of the plan refers to an unset ``${VAR}``.

    Both local backends call it first, so an unset variable is the same exit 2, with no
    step started, whether steps run in-process or in workers (which inherit this
    environment). Only names are looked at; nothing is expanded.

    Raises:
        ConfigError: Names the MCP id, the variable and the step.
    """
    source = os.environ if env is None else env
    for step in config.steps:
        entries = catalog.resolve_step_mcps(step, workflow=config.name)
        for ref in resolve_workflow_mcp_refs(entries):
            for name in referenced_env_vars(ref["resolved"]):
                if not source.get(name, "").strip():
                    raise ConfigError(
                        f"MCP provider {ref['id']!r}: env var {name} is not set (referenced "
                        f"as ${{{name}}}, used by step {step.id!r}); set it, or list it in "
                        "the entry's required_env so the server is left out when it is unset"
                    )


def to_crewai_mcp(
    resolved: Mapping[str, Any],
    *,
    mcp_id: str = "",
    secrets: Sequence[str] = (),
) -> MCPServerStdio | MCPServerHTTP:
    """CrewAI's server config for an *expanded* resolved dict.

    ``stdio`` -> ``MCPServerStdio(command, args, env)`` (CrewAI merges ``env`` over the MCP
    SDK's safe default environment, so only the variables the entry lists reach the
    server); ``streamable_http`` -> ``MCPServerHTTP(url, headers, streamable=True)``.
    Both are the hotfix's subclasses, carrying ``mcp_id`` (tool names, errors) and
    ``secrets`` (hidden in error messages).

    Args:
        resolved: The expanded dict (or a whole ref, whose id is then used).
        mcp_id: Catalog id; default the ref's id, else the transport name.
        secrets: Expanded values to redact from errors.

    Raises:
        ConfigError: ``resolved`` does not hold exactly one known transport block, or a
            ``${VAR}`` was not expanded first.
    """
    if "resolved" in resolved:
        mcp_id = mcp_id or str(resolved.get("id", ""))
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
    from agentic_orchestration.mcp.crewai_hotfix import (
        AgenticMCPServerHTTP,
        AgenticMCPServerStdio,
    )

    block = dict(resolved[keys[0]])
    tags = {"mcp_id": mcp_id or keys[0],
            "redact": sorted({s for s in secrets if len(s) >= _MIN_SECRET_LEN}, key=len,
                             reverse=True)}
    if keys[0] == "stdio":
        return AgenticMCPServerStdio(
            command=block["command"], args=list(block.get("args") or []),
            env=dict(block.get("env") or {}) or None, **tags,
        )
    return AgenticMCPServerHTTP(
        url=block["url"], headers=dict(block.get("headers") or {}) or None, streamable=True,
        **tags,
    )


def check_stdio_command(
    mcp_id: str, resolved: Mapping[str, Any], env: Mapping[str, str] | None = None,
) -> str | None:
    """Fail now if an expanded stdio block's command cannot be found (see
    :func:`find_stdio_command`); HTTP blocks are left to the connect timeout.

    Returns:
        The command's path for a stdio block, None for HTTP.

    Raises:
        MCPServerError: The command is not an executable there (names the MCP id).
    """
    block = resolved.get("stdio")
    if block is None:
        return None
    source = dict(os.environ if env is None else env)
    source.update(block.get("env") or {})
    command = str(block["command"])
    found = find_stdio_command(command, source)
    if found is None:
        where = "is not an executable file" if os.sep in command else "is not on PATH"
        raise MCPServerError(
            mcp_id, f"stdio command {command!r} {where} (install it, or fix the catalog "
                    f"entry; `--list-mcps` shows what is available)")
    return found


def crewai_mcps_for(
    refs: Iterable[Mapping[str, Any]], env: Mapping[str, str] | None = None,
) -> list[MCPServerStdio | MCPServerHTTP]:
    """A step's refs as CrewAI server configs, ready for ``Agent(mcps=...)``.

    Expands ``${VAR}`` (so call it only where the servers start: the in-process backend or
    the worker), checks stdio commands, and tags each config with its id and secrets.

    Raises:
        ConfigError: A referenced variable is unset (names the MCP id and variable).
        MCPServerError: A stdio command is not installed (names the MCP id).
    """
    source = os.environ if env is None else env
    configs = []
    for ref in refs:
        mcp_id = str(ref["id"])
        expanded = expand_env(ref, source)
        found = check_stdio_command(mcp_id, expanded, source)
        if found:  # the path checked is the path started (it may be next to this Python)
            expanded["stdio"]["command"] = found
        secrets = [source.get(name, "") for name in referenced_env_vars(ref["resolved"])]
        configs.append(to_crewai_mcp(expanded, mcp_id=mcp_id, secrets=secrets))
    return configs
