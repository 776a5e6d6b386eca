"""Availability filters: which catalog entries can be used on this machine, and why not.

Each filter returns ``(kept, excluded)`` where ``excluded`` maps id -> human reason, so
``--list-agents`` / ``--list-mcps`` can show exactly why an entry is filtered out.
Only env var *names* are looked at here; values are never copied anywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from agentic_orchestration.catalogs.models import AgentProviderEntry, MCPProviderEntry

__all__ = [
    "filter_entries_by_api_credentials",
    "filter_entries_by_hardware",
    "filter_mcp_entries_by_api_credentials",
    "filter_mcp_entries_by_installed_command",
    "find_stdio_command",
]

E = TypeVar("E", AgentProviderEntry, MCPProviderEntry)
Excluded = dict[str, str]


def _missing_env(names: Sequence[str], env: Mapping[str, str]) -> list[str]:
    return [name for name in names if not env.get(name, "").strip()]


def _filter_by_env(
    entries: Sequence[E], env: Mapping[str, str], extra_names: dict[str, list[str]]
) -> tuple[list[E], Excluded]:
    kept: list[E] = []
    excluded: Excluded = {}
    for entry in entries:
        names = list(dict.fromkeys([*entry.required_env, *extra_names.get(entry.id, [])]))
        missing = _missing_env(names, env)
        if missing:
            excluded[entry.id] = "required env not set: " + ", ".join(missing)
        else:
            kept.append(entry)
    return kept, excluded


def filter_entries_by_api_credentials(
    entries: Sequence[AgentProviderEntry], env: Mapping[str, str] | None = None
) -> tuple[list[AgentProviderEntry], Excluded]:
    """Drop agent providers whose required_env (or API key variable) is unset."""
    key_envs = {e.id: [e.key_env()] for e in entries if e.key_env()}
    return _filter_by_env(entries, os.environ if env is None else env, key_envs)


def filter_mcp_entries_by_api_credentials(
    entries: Sequence[MCPProviderEntry], env: Mapping[str, str] | None = None
) -> tuple[list[MCPProviderEntry], Excluded]:
    """Drop MCP providers whose required_env is unset."""
    return _filter_by_env(entries, os.environ if env is None else env, {})


def find_stdio_command(command: str, env: Mapping[str, str] | None = None) -> str | None:
    """Where a stdio server's command is: on PATH, else next to this Python; or None.

    PATH is the one the server gets: the entry's ``env`` PATH, else this process's (CrewAI
    passes ours on through the MCP SDK's default environment). The fallback finds console
    scripts installed in this interpreter's venv (``mcp-server-fetch``) when the venv is
    used as ``.venv/bin/python`` without being activated.

    Args:
        command: A name (looked up) or a path (checked).
        env: The entry's expanded ``env`` merged over this process's environment.
    """
    source = os.environ if env is None else env
    found = shutil.which(command, path=source.get("PATH", os.defpath))
    if found is None and os.sep not in command:
        found = shutil.which(command, path=str(Path(sys.executable).parent))
    return found


def filter_mcp_entries_by_installed_command(
    entries: Sequence[MCPProviderEntry],
) -> tuple[list[MCPProviderEntry], Excluded]:
    """Drop stdio MCP providers whose command is not on PATH (it would fail at run time)."""
    kept: list[MCPProviderEntry] = []
    excluded: Excluded = {}
    for entry in entries:
        if entry.stdio is not None and find_stdio_command(entry.stdio.command) is None:
            excluded[entry.id] = f"command not installed: {entry.stdio.command}"
        else:
            kept.append(entry)
    return kept, excluded


def _detect_vram_gb() -> float:
    """Largest GPU memory found (GiB), ``AGENTIC_VRAM_GB`` overriding; 0 without a GPU."""
    from agentic_orchestration import settings

    override = settings.value("AGENTIC_VRAM_GB")  # a number >= 0, or None when unset
    if override is not None:
        return float(override)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0.0
    try:
        out = subprocess.run(
            [smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout
        return max((float(line) / 1024 for line in out.split() if line.strip()), default=0.0)
    except (OSError, subprocess.SubprocessError, ValueError):
        return 0.0


def filter_entries_by_hardware(
    entries: Sequence[AgentProviderEntry], vram_gb: float | None = None
) -> tuple[list[AgentProviderEntry], Excluded]:
    """Drop agent providers whose ``min_vram_gb`` exceeds the GPU memory found."""
    kept: list[AgentProviderEntry] = []
    excluded: Excluded = {}
    available: float | None = vram_gb
    for entry in entries:
        if entry.min_vram_gb:
            if available is None:
                available = _detect_vram_gb()
            if entry.min_vram_gb > available:
                excluded[entry.id] = (
                    f"needs {entry.min_vram_gb:g} GB VRAM, found {available:g} GB"
                )
                continue
        kept.append(entry)
    return kept, excluded
