"""``--list-agents``, ``--list-mcps``, ``--list-workflows``: each entry, available or why not."""

from __future__ import annotations

from agentic_orchestration.catalogs import Catalog, load_catalog
from agentic_orchestration.errors import AgenticError

__all__ = ["run_listings"]


def _table(title: str, rows: list[tuple[str, str, str, str]]) -> list[str]:
    lines = [title]
    if not rows:
        return [*lines, "  (none)"]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True))
                     + "  " + row[3])
    return lines


def _agent_lines(catalog: Catalog) -> list[str]:
    rows = []
    for entry in sorted(catalog.agents.values(), key=lambda e: (e.priority, e.id)):
        reason = catalog.agent_exclusions.get(entry.id)
        status = "available" if reason is None else "filtered out"
        detail = entry.role if reason is None else reason
        rows.append((entry.id, entry.type, status, detail))
    lines = _table("Agent providers (id, type, status, role or reason):", rows)
    if any(e.type == "local" for e in catalog.available_agents):
        from agentic_orchestration.providers.local_model import describe_local_model

        lines.append(f"  ({describe_local_model()})")
    return lines


def _mcp_lines(catalog: Catalog) -> list[str]:
    rows = []
    for entry in catalog.mcps.values():
        reason = catalog.mcp_exclusions.get(entry.id)
        status = "available" if reason is None else "filtered out"
        detail = (entry.description or entry.planner_hint) if reason is None else reason
        rows.append((entry.id, entry.transport, status, detail))
    return _table("MCP providers (id, transport, status, description or reason):", rows)


def _workflow_lines(catalog: Catalog) -> list[str]:
    rows = []
    for workflow in catalog.workflows.values():
        try:
            catalog.check_workflow(workflow)
            notes = []
            for step in workflow.steps:
                if step.agent_provider in catalog.agent_exclusions:
                    notes.append(f"{step.agent_provider} substituted")
                notes += [f"{m} dropped" for m in step.mcp_providers if m in catalog.mcp_exclusions]
            status = "available"
            detail = workflow.description + (f" ({'; '.join(notes)})" if notes else "")
        except AgenticError as exc:
            status, detail = "filtered out", str(exc)
        rows.append((workflow.name, f"{len(workflow.steps)} steps", status, detail))
    return _table("Workflows (name, steps, status, description or reason):", rows)


def run_listings(*, agents: bool, mcps: bool, workflows: bool) -> int:
    from agentic_orchestration.orchestration.backends.factory import backend_name_from_env
    from agentic_orchestration.orchestration.k8s_mcp_compat import catalog_for_backend

    # In kubernetes mode an MCP its pods cannot run is out, and says why.
    catalog = catalog_for_backend(load_catalog(include_workflows=workflows),
                                  backend_name_from_env())
    blocks = []
    if agents:
        blocks.append(_agent_lines(catalog))
    if mcps:
        blocks.append(_mcp_lines(catalog))
    if workflows:
        blocks.append(_workflow_lines(catalog))
    print("\n\n".join("\n".join(block) for block in blocks))
    return 0
