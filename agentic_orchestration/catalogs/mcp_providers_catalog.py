"""MCP provider catalog: ``config/mcp_providers/*.yaml`` plus the extra path."""

from __future__ import annotations

from pathlib import Path

from agentic_orchestration import settings
from agentic_orchestration.catalogs._yaml import load_entries
from agentic_orchestration.catalogs.models import MCPProviderEntry

__all__ = ["load_mcp_providers"]


def _mcp_provider_paths(config_dir: Path | None = None) -> list[Path]:
    base = (config_dir or settings.config_dir()) / "mcp_providers"
    paths = [base]
    extra = settings.get_path("AGENTIC_EXTRA_MCP_PROVIDERS_PATH")
    if extra is not None:
        paths.append(extra)
    return paths


def load_mcp_providers(config_dir: Path | None = None) -> dict[str, MCPProviderEntry]:
    """All MCP provider entries by id, before any availability filter."""
    return load_entries(_mcp_provider_paths(config_dir), MCPProviderEntry)
