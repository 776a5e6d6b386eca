"""``--list-agents``, ``--list-mcps``, ``--list-workflows``: each entry, available or why not.

The rows come from ``catalogs.listing`` (the web UI's catalog page shows the same ones);
this module only lays them out as tables for the backend ``AGENTIC_EXECUTION_BACKEND``
names.
"""

from __future__ import annotations

from agentic_orchestration.catalogs import Catalog, load_catalog
from agentic_orchestration.catalogs.listing import (
    agent_rows,
    for_backend,
    mcp_rows,
    workflow_rows,
)

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


def _status(available: bool) -> str:
    return "available" if available else "filtered out"


def _agent_lines(catalog: Catalog) -> list[str]:
    rows = [(a["id"], a["type"], _status(a["available"]),
             a["role"] if a["available"] else a["reason"]) for a in agent_rows(catalog)]
    lines = _table("Agent providers (id, type, status, role or reason):", rows)
    if any(e.type == "local" for e in catalog.available_agents):
        from agentic_orchestration.providers.local_model import describe_local_model

        lines.append(f"  ({describe_local_model()})")
    return lines


def _mcp_lines(catalog: Catalog) -> list[str]:
    rows = [(m["id"], m["transport"], _status(m["available"]),
             m["description"] if m["available"] else m["reason"]) for m in mcp_rows(catalog)]
    return _table("MCP providers (id, transport, status, description or reason):", rows)


def _workflow_lines(catalog: Catalog, backend: str) -> list[str]:
    rows = []
    for workflow in workflow_rows(catalog, backends=(backend,)):
        verdict = workflow["backends"][backend]
        notes = verdict["notes"]
        detail = (workflow["description"] + (f" ({'; '.join(notes)})" if notes else "")
                  if verdict["runnable"] else verdict["reason"])
        rows.append((workflow["name"], f"{len(workflow['steps'])} steps",
                     _status(verdict["runnable"]), detail))
    return _table("Workflows (name, steps, status, description or reason):", rows)


def run_listings(*, agents: bool, mcps: bool, workflows: bool) -> int:
    from agentic_orchestration.orchestration.backends.factory import backend_name_from_env

    backend = backend_name_from_env()
    loaded = load_catalog(include_workflows=workflows)
    catalog = for_backend(loaded, backend)  # on kubernetes an MCP its pods cannot run is out
    blocks = []
    if agents:
        blocks.append(_agent_lines(catalog))
    if mcps:
        blocks.append(_mcp_lines(catalog))
    if workflows:
        blocks.append(_workflow_lines(loaded, backend))
    print("\n\n".join("\n".join(block) for block in blocks))
    return 0
