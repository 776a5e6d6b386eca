"""What the web UI shows of the catalogs, and the plan-only preview.

- ``catalog(backend)``: every agent and MCP provider, available or filtered out and why,
  and every static workflow with its steps and the backends it can run on: the rows
  ``main.py --list-agents --list-mcps --list-workflows`` prints (``catalogs.listing``).
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
    """``catalogs.listing.catalog_listing``: agents (best first, as the planner sees them)
    and MCP servers on ``backend``, each ``available`` or not and why, and every static
    workflow with its steps and whether it can run on each backend; secrets masked."""
    from agentic_orchestration.catalogs.listing import catalog_listing

    return redact_obj(catalog_listing(backend))


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
