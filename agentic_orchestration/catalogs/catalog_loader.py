"""Agent provider catalog: ``config/agent_providers/*.yaml`` plus the extra path."""

from __future__ import annotations

from pathlib import Path

from agentic_orchestration import settings
from agentic_orchestration.catalogs._yaml import load_entries
from agentic_orchestration.catalogs.models import AgentProviderEntry

__all__ = ["load_agent_providers"]


def _agent_provider_paths(config_dir: Path | None = None) -> list[Path]:
    base = (config_dir or settings.config_dir()) / "agent_providers"
    paths = [base]
    extra = settings.get_path("AGENTIC_EXTRA_AGENT_PROVIDERS_PATH")
    if extra is not None:
        paths.append(extra)
    return paths


def load_agent_providers(config_dir: Path | None = None) -> dict[str, AgentProviderEntry]:
    """All agent provider entries by id, before any availability filter."""
    return load_entries(_agent_provider_paths(config_dir), AgentProviderEntry)
