"""The loaded, filtered catalog: what the planner may choose and what a step may use."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agentic_orchestration.catalogs.catalog_loader import load_agent_providers
from agentic_orchestration.catalogs.config_loader import load_workflows
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
from agentic_orchestration.errors import CatalogError, NoProviderError

logger = logging.getLogger(__name__)

__all__ = ["Catalog", "load_catalog", "with_llm_of"]

#: Fields that define *which LLM* answers; the rest (role, goal, backstory) is the persona.
LLM_FIELDS = ("type", "model", "openai_base_url", "ollama_host", "api_key_env", "required_env",
              "min_vram_gb", "priority")


@dataclass
class Catalog:
    """All entries plus, for those filtered out, the reason."""

    agents: dict[str, AgentProviderEntry]
    mcps: dict[str, MCPProviderEntry]
    workflows: dict[str, WorkflowConfig] = field(default_factory=dict)
    agent_exclusions: dict[str, str] = field(default_factory=dict)
    mcp_exclusions: dict[str, str] = field(default_factory=dict)
    #: Reorders a fallback chain ``(chain, step_description, topic) -> chain``; None keeps
    #: the catalog order. The CLI sets ``sessions.learning.chain_order()`` (past runs).
    chain_order: Callable[[list[AgentProviderEntry], str, str], list[AgentProviderEntry]] | None \
        = field(default=None, repr=False, compare=False)
    #: Substitutions and drops already logged: a step is resolved several times in a run
    #: (checked, materialized, built), and one warning per step says it.
    _warned: set[tuple[str, str]] = field(default_factory=set, repr=False, compare=False)

    def _warn_once(self, key: tuple[str, str], message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    @property
    def available_agents(self) -> list[AgentProviderEntry]:
        """Usable agent providers, best first (by ``priority``, then id)."""
        usable = [a for a in self.agents.values() if a.id not in self.agent_exclusions]
        return sorted(usable, key=lambda a: (a.priority, a.id))

    @property
    def available_mcps(self) -> list[MCPProviderEntry]:
        return [m for m in self.mcps.values() if m.id not in self.mcp_exclusions]

    def best_agent(self) -> AgentProviderEntry:
        if not self.available_agents:
            reasons = "; ".join(f"{k}: {v}" for k, v in self.agent_exclusions.items())
            raise NoProviderError(f"no agent provider is available ({reasons or 'catalog empty'})")
        return self.available_agents[0]

    def fallback_chain(self, first: AgentProviderEntry, *, step_description: str = "",
                       topic: str = "") -> list[AgentProviderEntry]:
        """Providers to try after ``first`` fails: other available LLM endpoints, best first.

        Entries that share ``first``'s endpoint (same type, model and URL) are skipped: they
        would fail the same way. "Best" is the catalog order, or ``chain_order``'s (given
        the failed step's description and topic) when set.
        """
        seen = {first.endpoint()}
        chain = []
        for entry in self.available_agents:
            if entry.endpoint() not in seen:
                seen.add(entry.endpoint())
                chain.append(entry)
        if self.chain_order is not None and len(chain) > 1:
            return self.chain_order(chain, step_description, topic)
        return chain

    def resolve_step_agent(self, step: StepConfig, *, workflow: str = "",
                           file: str | None = None) -> AgentProviderEntry:
        """The provider entry a step runs with.

        An unknown id is an error. A known but unavailable one (no API key here) keeps its
        persona and borrows the LLM of the best available provider, so static workflows
        written for a cloud model still run on the embedded default.
        """
        entry = self.agents.get(step.agent_provider)
        if entry is None:
            raise CatalogError(
                f"unknown agent provider {step.agent_provider!r} in step {step.id!r}"
                + _of_workflow(workflow), file=file, entry_id=step.id, field="agent_provider",
            )
        if entry.id not in self.agent_exclusions:
            return entry
        substitute = self.best_agent()
        self._warn_once((entry.id, step.id),
                        "agent provider %s unavailable (%s); step %s uses the LLM of %s",
                        entry.id, self.agent_exclusions[entry.id], step.id, substitute.id)
        return with_llm_of(entry, substitute)

    def resolve_step_mcps(self, step: StepConfig, *, workflow: str = "",
                          file: str | None = None) -> list[MCPProviderEntry]:
        """MCP entries of a step; unknown ids are errors, unavailable ones are dropped."""
        resolved = []
        for mcp_id in step.mcp_providers:
            entry = self.mcps.get(mcp_id)
            if entry is None:
                raise CatalogError(
                    f"unknown MCP provider {mcp_id!r} in step {step.id!r}"
                    + _of_workflow(workflow), file=file, entry_id=step.id, field="mcp_providers",
                )
            if mcp_id in self.mcp_exclusions:
                self._warn_once((mcp_id, step.id), "MCP provider %s dropped from step %s: %s",
                                mcp_id, step.id, self.mcp_exclusions[mcp_id])
                continue
            resolved.append(entry)
        return resolved

    def check_workflow(self, config: WorkflowConfig) -> None:
        """Raise CatalogError if a step names an id the catalog does not have."""
        for step in config.steps:
            self.resolve_step_agent(step, workflow=config.name, file=config.source_file)
            self.resolve_step_mcps(step, workflow=config.name, file=config.source_file)


def _of_workflow(name: str) -> str:
    return f" of workflow {name!r}" if name else ""


def with_llm_of(persona: AgentProviderEntry, llm: AgentProviderEntry) -> AgentProviderEntry:
    """``persona``'s role/goal/backstory on ``llm``'s endpoint (for fallback/substitution)."""
    update = {name: getattr(llm, name) for name in LLM_FIELDS}
    update["id"] = llm.id
    return persona.model_copy(update=update)


def load_catalog(
    config_dir: Path | None = None, *, include_workflows: bool = True
) -> Catalog:
    """Load agent and MCP catalogs (and workflows) and apply every availability filter."""
    from agentic_orchestration.catalogs.mcp_providers_catalog import load_mcp_providers

    agents = load_agent_providers(config_dir)
    mcps = load_mcp_providers(config_dir)
    workflows = load_workflows(config_dir) if include_workflows else {}

    agent_excl: dict[str, str] = {}
    kept_agents, excl = filter_entries_by_api_credentials(list(agents.values()))
    agent_excl.update(excl)
    _, excl = filter_entries_by_hardware(kept_agents)
    agent_excl.update(excl)

    mcp_excl: dict[str, str] = {}
    kept_mcps, excl = filter_mcp_entries_by_api_credentials(list(mcps.values()))
    mcp_excl.update(excl)
    _, excl = filter_mcp_entries_by_installed_command(kept_mcps)
    mcp_excl.update(excl)

    return Catalog(agents=agents, mcps=mcps, workflows=workflows,
                   agent_exclusions=agent_excl, mcp_exclusions=mcp_excl)
