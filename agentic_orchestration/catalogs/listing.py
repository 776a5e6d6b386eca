"""Every catalog entry, available or filtered out and why: one answer for the CLI and the web.

``main.py --list-agents --list-mcps --list-workflows`` prints these rows as tables
(``cli.listing``) and the web UI's catalog page shows them (``web._catalog``); both call
the functions here, so the two never disagree on what is available.

- ``agent_rows`` / ``mcp_rows``: each entry with ``available`` and, when filtered out,
  ``reason`` (the catalog's filters: credentials, hardware, installed commands).
- ``workflow_rows``: each static workflow (``config/workflows/``) with its steps and, per
  backend, whether it can run there: ``runnable`` with ``notes`` (an agent that will be
  substituted, an MCP dropped), or the ``reason`` it cannot (an id the catalog lacks).
- ``catalog_listing(backend)``: all three for one backend, as the web API returns them.

On kubernetes an MCP its pods cannot run is out (``k8s_mcp_compat.catalog_for_backend``),
so the same workflow may be runnable in-process and not on kubernetes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentic_orchestration.catalogs.catalog import Catalog
from agentic_orchestration.errors import AgenticError

__all__ = ["BACKENDS", "agent_rows", "catalog_listing", "for_backend", "mcp_rows",
           "workflow_rows"]

#: The backends a workflow is checked against (``AGENTIC_EXECUTION_BACKEND``'s choices).
BACKENDS: tuple[str, ...] = ("inprocess", "subprocess", "kubernetes")


def for_backend(catalog: Catalog, backend: str) -> Catalog:
    """``catalog`` as ``backend`` can serve it (imported on call: it lives with execution)."""
    from agentic_orchestration.orchestration.k8s_mcp_compat import catalog_for_backend

    return catalog_for_backend(catalog, backend)


def agent_rows(catalog: Catalog) -> list[dict[str, Any]]:
    """Agents best first (priority, then id), as the planner sees them."""
    rows = []
    for entry in sorted(catalog.agents.values(), key=lambda e: (e.priority, e.id)):
        reason = catalog.agent_exclusions.get(entry.id)
        rows.append({"id": entry.id, "type": entry.type, "model": entry.model,
                     "role": entry.role, "planner_hint": entry.planner_hint,
                     "priority": entry.priority, "available": reason is None,
                     "reason": reason})
    return rows


def mcp_rows(catalog: Catalog) -> list[dict[str, Any]]:
    """MCP servers in catalog order."""
    rows = []
    for entry in catalog.mcps.values():
        reason = catalog.mcp_exclusions.get(entry.id)
        rows.append({"id": entry.id, "transport": entry.transport,
                     "description": entry.description or entry.planner_hint,
                     "available": reason is None, "reason": reason})
    return rows


def _verdict(catalog: Catalog, workflow: Any) -> dict[str, Any]:
    """Whether ``workflow`` runs on ``catalog`` (already narrowed to one backend)."""
    try:
        catalog.check_workflow(workflow)
    except AgenticError as exc:
        return {"runnable": False, "reason": str(exc), "notes": []}
    notes = []
    for step in workflow.steps:
        if step.agent_provider in catalog.agent_exclusions:
            notes.append(f"{step.agent_provider} substituted")
        notes += [f"{m} dropped" for m in step.mcp_providers if m in catalog.mcp_exclusions]
    return {"runnable": True, "reason": None, "notes": notes}


def workflow_rows(catalog: Catalog, *, backends: Sequence[str] = BACKENDS
                  ) -> list[dict[str, Any]]:
    """Static workflows (the catalog must be loaded with them), each with its steps and a
    verdict per backend in ``backends``."""
    narrowed = {backend: for_backend(catalog, backend) for backend in backends}
    rows = []
    for workflow in catalog.workflows.values():
        rows.append({
            "name": workflow.name, "description": workflow.description,
            "steps": [{"id": step.id, "agent_provider": step.agent_provider,
                       "mcp_providers": list(step.mcp_providers),
                       "depends_on": getattr(step, "depends_on", None),
                       "description": step.description} for step in workflow.steps],
            "backends": {backend: _verdict(cat, workflow) for backend, cat in narrowed.items()},
        })
    return rows


def catalog_listing(backend: str, *, workflows: bool = True) -> dict[str, Any]:
    """Agents and MCPs as ``backend`` sees them, and (``workflows``) every static workflow
    with its verdict on each backend. Raises the catalog's error for a broken file."""
    from agentic_orchestration.catalogs.catalog import load_catalog

    catalog = load_catalog(include_workflows=workflows)
    narrowed = for_backend(catalog, backend)
    return {"backend": backend, "agents": agent_rows(narrowed), "mcps": mcp_rows(narrowed),
            "workflows": workflow_rows(catalog) if workflows else []}
