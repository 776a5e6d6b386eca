"""WorkflowConfig -> one ``StepSpec`` per step, for backends whose steps run elsewhere (F2.1).

Guardrail G2: this module resolves nothing itself. Each step's agent entry comes from
``Catalog.resolve_step_agent`` (unknown id -> error, unavailable provider -> persona on the
best available LLM), its MCP servers from ``Catalog.resolve_step_mcps`` +
``resolve_workflow_mcp_refs`` and its task text from ``prepare_step_description``: exactly
the calls ``runner.build_workflow`` (the in-process path) makes, in the same order, so a
workflow YAML resolves identically whichever backend runs it (G4, tested against
``build_workflow``).

Two things are deliberately *not* in a spec as built here:

- Secret values. MCP ``${VAR}`` references stay unexpanded (the worker expands them), and an
  agent entry only names its key variable (``api_key_env``), so a spec can sit on a shared
  volume or in a log.
- The previous step's output. ``task.description`` is the step's own text with ``{topic}``
  filled; the coordinator injects the prior output (``prepare_step_description``) just
  before writing the spec, when that output exists.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from agentic_orchestration.mcp.resolution import resolve_workflow_mcp_refs
from agentic_orchestration.orchestration.backends.base import (
    MCPProviderRef,
    StepPaths,
    StepSpec,
    TaskSpec,
)
from agentic_orchestration.orchestration.run_store import validate_id
from agentic_orchestration.orchestration.step_context import prepare_step_description

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog, WorkflowConfig

logger = logging.getLogger(__name__)

__all__ = ["build_step_specs", "step_specs_resolution_fingerprint"]

#: Fields that change from run to run without changing how the plan resolves.
RUN_SPECIFIC_FIELDS = ("run_id", "paths", "prior_output")


def build_step_specs(
    config: WorkflowConfig,
    catalog: Catalog,
    *,
    run_id: str,
    run_store_path: Path | str = "",
    artifacts_dir: Path | str = "",
) -> list[StepSpec]:
    """One spec per step of ``config``, in order, resolved through the shared catalog code.

    Args:
        config: The plan (static workflow or planner output).
        catalog: The loaded, filtered catalog (the same one the in-process path would use).
        run_id: The run the specs belong to; must be a valid run store id.
        run_store_path: Store root as the *worker* sees it (``paths.run_store``).
        artifacts_dir: Where the worker saves files (``paths.artifacts_dir``).

    Raises:
        StepSpecError: ``run_id`` or a step id cannot be used as a run store path.
        CatalogError: A step names an unknown agent or MCP provider.
        NoProviderError: A step's provider is unavailable and nothing can stand in.
    """
    validate_id(run_id, "run_id")
    paths = StepPaths(run_store=str(run_store_path), artifacts_dir=str(artifacts_dir))
    specs = []
    for index, step in enumerate(config.steps):
        validate_id(step.id, "step_id")
        entry = catalog.resolve_step_agent(step, workflow=config.name)
        refs = resolve_workflow_mcp_refs(catalog.resolve_step_mcps(step, workflow=config.name))
        specs.append(StepSpec(
            run_id=run_id,
            step_id=step.id,
            step_index=index,
            workflow_name=config.name,
            topic=config.topic,
            task=TaskSpec(
                description=prepare_step_description(step.description, None,
                                                     topic=config.topic),
                expected_output=prepare_step_description(step.expected_output, None,
                                                         topic=config.topic),
            ),
            agent_provider=entry.model_dump(mode="json"),
            mcp_providers=[MCPProviderRef.model_validate(ref) for ref in refs],
            prior_output="",
            inputs={"topic": config.topic},
            paths=paths.model_copy(),
            # None (the step before it) stays None: a chain's specs are what they were.
            depends_on=list(step.depends_on) if step.depends_on is not None else None,
        ))
        logger.debug("run %s: step %s resolved to agent %s with %d MCP server(s)",
                     run_id, step.id, entry.id, len(refs))
    from agentic_orchestration.orchestration.step_coordinator import register_step_secrets

    register_step_secrets(specs)  # before run.json or any spec is written
    return specs


def step_specs_resolution_fingerprint(specs: Iterable[StepSpec]) -> str:
    """sha256 (hex) of how a plan resolved, ignoring what differs between runs.

    Covers every field but ``RUN_SPECIFIC_FIELDS``: step ids and order, the resolved agent
    entries, MCP transport blocks and task text. Equal for two loads of the same workflow
    YAML against the same catalog; different as soon as a step's agent, MCP servers or text
    resolve differently (e.g. an API key was unset and a substitute LLM was chosen). Take it
    from the specs as built, before the coordinator injects prior output into
    ``task.description``; store it in ``run.json`` to compare on ``--resume``.
    """
    canonical = []
    for spec in specs:
        data = spec.to_dict()
        for name in RUN_SPECIFIC_FIELDS:
            data.pop(name, None)
        canonical.append(data)
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
