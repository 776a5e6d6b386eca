"""WorkflowConfig -> CrewAI Crew (one Agent and one Task per step, sequential).

Internal to the in-process backend (``backends/crewai.py``): callers outside it see only
``WorkflowExecutionResult``, never a ``BuiltWorkflow``.

Prior-output context: CrewAI's ``Task.context`` defaults to "not specified", and for such
a task a sequential crew passes the raw output of *every* earlier task (joined by
dividers) as context (``Crew._get_context``). We set ``context=[]`` on every task, which
CrewAI treats as "no context", and inject exactly one bounded previous output ourselves
with ``step_context.prepare_step_description`` (the same function the distributed
coordinator uses). So a step sees its predecessor's output once, capped by
``AGENTIC_STEP_CONTEXT_CHARS``, whatever the plan's length.

``{topic}`` is filled by us too: we never pass ``inputs`` to ``kickoff``, so CrewAI's own
interpolation (which raises on any other ``{...}`` in a description or role) never runs.

Steps whose providers share an LLM endpoint share one CrewAI ``LLM`` object: building one
costs about 60 ms (CrewAI creates a sync and an async OpenAI client, each loading the CA
bundle), which was most of our per-step overhead. Sharing is safe for per-step token
usage because steps run one after another and the backend diffs the counters around each.

Agents get ``max_retry_limit=0``: retrying is our fallback chain's job (on another
endpoint). CrewAI's default (2 retries of the whole task) would multiply the wait on a dead
endpoint, each try up to ``AGENTIC_LLM_TIMEOUT_SECONDS``, before the fallback could start.
CrewAI still retries HTTP 429 inside one LLM call (3 tries with backoff, ``llms/retry.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.catalogs.models import AgentProviderEntry, StepConfig, WorkflowConfig
from agentic_orchestration.mcp.resolution import crewai_mcps_for, resolve_workflow_mcp_refs
from agentic_orchestration.orchestration.step_context import prepare_step_description
from agentic_orchestration.providers.agent_providers import AgentProvider, agent_provider_from_dict

if TYPE_CHECKING:
    from crewai import Agent, Crew, Task

    from agentic_orchestration.catalogs import Catalog

logger = logging.getLogger(__name__)

__all__ = ["BuiltWorkflow", "build_workflow"]

#: Entry fields that decide what the LLM client talks to (see ``AgentProvider.llm_kwargs``).
_CLIENT_FIELDS = ("type", "model", "openai_base_url", "ollama_host", "api_key_env")


@dataclass
class BuiltWorkflow:
    """A Crew ready to kick off, plus what the backend needs to report on each step.

    All per-step lists are parallel and cover ``config.steps[start_index:]``; position
    ``k`` in them is step number ``start_index + k`` of the plan.
    """

    config: WorkflowConfig
    crew: Crew
    agents: list[Agent]
    tasks: list[Task]
    steps: list[StepConfig]
    providers: list[AgentProvider]
    #: Resolved agent entries (after substitution/fallback), one per step.
    entries: list[AgentProviderEntry]
    #: Per step, ``resolve_workflow_mcp_refs`` output (``${VAR}`` unexpanded).
    mcp_refs: list[list[dict[str, Any]]]
    #: Per step, the description with ``{topic}`` filled and no prior output: the base the
    #: task callback injects into, so re-running never injects twice.
    base_descriptions: list[str]
    #: Index in ``config.steps`` of ``steps[0]`` (> 0 when resuming after a fallback).
    start_index: int = 0
    #: Output of step ``start_index - 1`` when resuming ("" otherwise).
    prior_output: str = ""

    @property
    def total_steps(self) -> int:
        """Steps in the whole plan (not only the ones this crew runs)."""
        return len(self.config.steps)


def _shared_llm(cache: dict[str, Any], provider: AgentProvider) -> Any:
    """One CrewAI LLM per distinct endpoint (LLM fields of the entry) within one build."""
    key = json.dumps([getattr(provider.entry, name) for name in _CLIENT_FIELDS])
    if key not in cache:
        cache[key] = provider.llm()
    return cache[key]


def build_workflow(
    config: WorkflowConfig,
    catalog: Catalog,
    *,
    overrides: Mapping[str, AgentProviderEntry] | None = None,
    start_index: int = 0,
    prior_output: str = "",
    fill_topic: bool = True,
) -> BuiltWorkflow:
    """One CrewAI Agent and Task per step of ``config``, in a sequential Crew.

    Args:
        config: The plan.
        catalog: Resolves each step's agent provider and MCP servers.
        overrides: step id -> agent entry to use instead of the catalog's (fallback).
        start_index: Build only ``config.steps[start_index:]`` (resume after a failure).
        prior_output: Output of the step before ``start_index``, injected into the first task.
        fill_topic: Fill ``{topic}`` in descriptions. A worker passes False: its spec's
            description is already filled and may hold a prior output that must stay as is.

    Raises:
        CatalogError: A step names an unknown agent or MCP provider.
        ConfigError: An MCP ``${VAR}`` or a provider's API key variable is not set.
        MCPServerError: A step's stdio MCP command is not installed (before any LLM call).
    """
    settings.quiet_crewai_network()
    from crewai import Agent, Crew, Process, Task

    overrides = overrides or {}
    steps = list(config.steps[start_index:])
    if not steps:
        raise ValueError(f"start_index {start_index} is past the last step of {config.name!r}")

    agents: list[Agent] = []
    tasks: list[Task] = []
    providers: list[AgentProvider] = []
    entries: list[AgentProviderEntry] = []
    mcp_refs: list[list[dict[str, Any]]] = []
    bases: list[str] = []
    llms: dict[str, Any] = {}
    for offset, step in enumerate(steps):
        entry = overrides.get(step.id) or catalog.resolve_step_agent(step, workflow=config.name)
        refs = resolve_workflow_mcp_refs(catalog.resolve_step_mcps(step, workflow=config.name))
        if refs:  # once per process (a worker gets it here too); ~0.2 s of imports, so
            # only when a step has MCP servers
            from agentic_orchestration.mcp.crewai_hotfix import apply_crewai_mcp_hotfix

            apply_crewai_mcp_hotfix()
        provider = agent_provider_from_dict(entry)
        agent = Agent(
            role=entry.role,
            goal=entry.goal,
            backstory=entry.backstory,
            verbose=entry.verbose,
            allow_delegation=entry.allow_delegation,
            llm=_shared_llm(llms, provider),
            mcps=crewai_mcps_for(refs),  # expands ${VAR}, checks stdio commands
            max_retry_limit=0,
        )
        topic = config.topic if fill_topic else None
        base = prepare_step_description(step.description, None, topic=topic)
        description = base
        if offset == 0 and prior_output:
            description = prepare_step_description(base, prior_output)
        task = Task(
            description=description,
            expected_output=prepare_step_description(step.expected_output, None, topic=topic),
            agent=agent,
            context=[],  # no automatic context: we inject one bounded prior output
        )
        agents.append(agent)
        tasks.append(task)
        providers.append(provider)
        entries.append(entry)
        mcp_refs.append(refs)
        bases.append(base)
        logger.debug("built step %s: agent %s, %d MCP server(s)", step.id, entry.id, len(refs))

    crew = Crew(agents=agents, tasks=tasks, process=Process.sequential, verbose=False)
    return BuiltWorkflow(
        config=config, crew=crew, agents=agents, tasks=tasks, steps=steps,
        providers=providers, entries=entries, mcp_refs=mcp_refs, base_descriptions=bases,
        start_index=start_index, prior_output=prior_output,
    )
