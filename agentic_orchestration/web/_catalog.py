"""What the web UI shows of the catalogs, and the plan-only preview.

- ``catalog(backend)``: every agent and MCP provider, available or filtered out and why,
  exactly as ``main.py --list-agents --list-mcps`` decides it (``catalogs.load_catalog``'s
  filters, then ``catalog_for_backend``: on kubernetes an MCP its pods cannot run is out).
- ``preview_plan(...)``: ``main.py ... --plan-only`` as a child process (the planner may
  call an LLM and import CrewAI, which stays out of the server as runs do), its JSON plan
  read back, or the CLI's ``error:`` line when it could not plan.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentic_orchestration.redaction import redact_obj, redact_text

logger = logging.getLogger(__name__)

__all__ = ["PlanPreview", "catalog", "plan_argv", "preview_plan"]

#: A plan that takes longer than this is reported as a timeout (the planner's LLM is slow
#: or stuck); the child is killed.
PLAN_TIMEOUT_SECONDS = 120.0


def catalog(backend: str) -> dict[str, Any]:
    """Agents (best first, as the planner sees them) and MCP servers, each with
    ``available`` and, when filtered out, ``reason``."""
    from agentic_orchestration.catalogs import load_catalog
    from agentic_orchestration.orchestration.k8s_mcp_compat import catalog_for_backend

    cat = catalog_for_backend(load_catalog(include_workflows=False), backend)
    agents = []
    for entry in sorted(cat.agents.values(), key=lambda e: (e.priority, e.id)):
        reason = cat.agent_exclusions.get(entry.id)
        agents.append({"id": entry.id, "type": entry.type, "model": entry.model,
                       "role": entry.role, "planner_hint": entry.planner_hint,
                       "priority": entry.priority, "available": reason is None,
                       "reason": reason})
    mcps = []
    for entry in cat.mcps.values():
        reason = cat.mcp_exclusions.get(entry.id)
        mcps.append({"id": entry.id, "transport": entry.transport,
                     "description": entry.description or entry.planner_hint,
                     "available": reason is None, "reason": reason})
    return redact_obj({"backend": backend, "agents": agents, "mcps": mcps})


@dataclass
class PlanPreview:
    """What ``--plan-only`` said: ``plan`` (the WorkflowConfig as JSON) or ``error``."""

    plan: dict[str, Any] | None
    error: str | None
    exit_code: int | None


def plan_argv(command: Sequence[str], *, goal: str, workflow: str | None,
              backend: str | None) -> list[str]:
    """The child's command line (goal last, after ``--``, as for a run)."""
    args = [*command, "--plan-only"]
    if backend:
        args += ["--execution-backend", backend]
    if workflow:
        args += ["--workflow", workflow]
    return [*args, "--", goal] if goal else args


def preview_plan(command: Sequence[str], env: dict[str, str], *, goal: str,
                 workflow: str | None, backend: str | None,
                 timeout: float = PLAN_TIMEOUT_SECONDS) -> PlanPreview:
    """Run ``--plan-only`` and read its plan (stdout is the plan's JSON, nothing else)."""
    argv = plan_argv(command, goal=goal, workflow=workflow, backend=backend)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=timeout,
                              env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, check=False)
    except subprocess.TimeoutExpired:
        return PlanPreview(None, f"planning took longer than {timeout:.0f} s", None)
    if done.returncode == 0:
        try:
            plan = json.loads(done.stdout)
        except json.JSONDecodeError:
            logger.warning("--plan-only printed no JSON plan: %s", redact_text(done.stdout[-500:]))
            return PlanPreview(None, "the planner printed no plan", 0)
        return PlanPreview(redact_obj(plan), None, 0)
    errors = [line[len("error: "):] for line in done.stderr.splitlines()
              if line.startswith("error: ")]
    message = errors[-1] if errors else (done.stderr.strip().splitlines() or ["no output"])[-1]
    return PlanPreview(None, redact_text(message), done.returncode)
