"""Router: send a goal to a static workflow when one claims it, else to the planner.

A static workflow is reviewed, repeatable and costs no planner call, so it wins whenever its
``router`` rule matches. Matching is deliberately plain (whole words, regexes) so a user
can predict it from the YAML.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentic_orchestration.catalogs.catalog import Catalog
    from agentic_orchestration.catalogs.models import RouterRule, WorkflowConfig
    from agentic_orchestration.planning.dynamic_planner import DynamicPlanner

logger = logging.getLogger(__name__)

__all__ = ["match_workflow", "plan_or_route", "route", "rule_matches"]


def _has_words(goal: str, phrase: str) -> bool:
    """``phrase`` occurs in ``goal`` as whole words, case-insensitively ("report" is not
    found in "reporter"); multi-word phrases are allowed."""
    words = phrase.split()
    if not words:
        return False
    pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)"
    return re.search(pattern, goal, re.IGNORECASE) is not None


def rule_matches(rule: RouterRule, goal: str) -> bool:
    """Whether ``goal`` selects a workflow: all keywords present, or any pattern matching.

    An empty keyword list matches nothing (otherwise every goal would match).
    """
    if rule.keywords and all(_has_words(goal, keyword) for keyword in rule.keywords):
        return True
    return any(re.search(pattern, goal, re.IGNORECASE) for pattern in rule.patterns)


def match_workflow(goal: str, catalog: Catalog) -> tuple[str, WorkflowConfig] | None:
    """``(name, workflow)`` of the first static workflow, in name order, whose rule matches."""
    for name in sorted(catalog.workflows):
        workflow = catalog.workflows[name]
        if workflow.router is not None and rule_matches(workflow.router, goal):
            logger.info("goal routed to static workflow %s", name)
            return name, workflow
    return None


def route(goal: str, catalog: Catalog) -> WorkflowConfig | None:
    """The first static workflow (in name order) whose router rule matches, with the goal as
    its topic; ``None`` means the goal should be planned dynamically."""
    matched = match_workflow(goal, catalog)
    return matched[1].with_topic(goal) if matched else None


def plan_or_route(goal: str, catalog: Catalog, *,
                  planner: DynamicPlanner | None = None) -> tuple[WorkflowConfig, str]:
    """A workflow for ``goal`` and where it came from.

    Returns:
        ``(workflow, "router:<workflow name>")`` when a static workflow matched, else
        ``(plan, "planner:<provider id>")``.

    Raises:
        PlanError: The planner could not produce a valid plan.
        ConfigError: The configured planner provider cannot be used.
    """
    matched = match_workflow(goal, catalog)
    if matched is not None:
        name, workflow = matched
        return workflow.with_topic(goal), f"router:{name}"
    if planner is None:
        from agentic_orchestration.planning.dynamic_planner import DynamicPlanner

        planner = DynamicPlanner(catalog)
    return planner.plan(goal), f"planner:{planner.provider_id}"
