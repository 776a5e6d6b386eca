"""Planning: turn a goal into a ``WorkflowConfig``, by a static workflow's router rule or by
the dynamic planner (one schema-constrained LLM call)."""

from agentic_orchestration.planning.dynamic_planner import DynamicPlanner, PlanStats
from agentic_orchestration.planning.plan_schema import build_plan_schema
from agentic_orchestration.planning.plan_validation import plan_from_data, validate_plan
from agentic_orchestration.planning.router import (
    match_workflow,
    plan_or_route,
    route,
    rule_matches,
)

__all__ = [
    "DynamicPlanner",
    "PlanStats",
    "build_plan_schema",
    "match_workflow",
    "plan_from_data",
    "plan_or_route",
    "route",
    "rule_matches",
    "validate_plan",
]
