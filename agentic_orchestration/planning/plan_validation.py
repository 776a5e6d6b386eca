"""Plan parsing, normalisation and validation: from the planner's raw reply to a checked plan.

Kept apart from ``dynamic_planner`` because none of it needs an LLM: it turns text into
JSON, fixes a small model's harmless slips, checks the result against the catalog and the
plan schema (not every server enforces ``response_format``), and builds the
``WorkflowConfig``. Tests use it directly on canned answers.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.catalogs.models import StepConfig, WorkflowConfig
from agentic_orchestration.errors import PlanError
from agentic_orchestration.planning.plan_schema import (
    DESCRIPTION_MAX_CHARS,
    NAME_MAX_CHARS,
    build_plan_schema,
)

if TYPE_CHECKING:
    from agentic_orchestration.catalogs.catalog import Catalog

__all__ = ["dependency_problems", "normalise_plan", "parse_answer", "plan_from_data",
           "safe_text", "schema_problems", "validate_plan"]

_DEFAULT_EXPECTED_OUTPUT = StepConfig.model_fields["expected_output"].default


def validate_plan(data: Any, catalog: Catalog, *, max_steps: int) -> list[str]:
    """Problems with a parsed planner answer; an empty list means it is a usable plan.

    Clear messages come first (unknown ids, step count, empty description); the remaining
    JSON Schema violations follow, reported once per location.
    """
    if not isinstance(data, dict):
        return [f"the answer must be a JSON object, got {type(data).__name__}"]
    problems: list[str] = []
    covered: set[tuple[Any, ...]] = set()
    agent_ids = [entry.id for entry in catalog.available_agents]
    mcp_ids = [entry.id for entry in catalog.available_mcps]

    steps = data.get("steps")
    if not isinstance(steps, list):
        problems.append("the answer has no 'steps' list")
        covered.add(("steps",))
        steps = []
    elif not steps:
        problems.append("the plan has no steps (at least 1 is needed)")
        covered.add(("steps",))
    elif len(steps) > max_steps:
        problems.append(f"the plan has {len(steps)} steps, at most {max_steps} are allowed")
        covered.add(("steps",))

    for index, step in enumerate(steps):
        where = f"step {index + 1}"
        if not isinstance(step, dict):
            continue  # the schema check below reports the type
        agent = step.get("agent_provider")
        if isinstance(agent, str) and agent not in agent_ids:
            problems.append(f"{where}: unknown agent_provider {agent!r} "
                            f"(use one of: {', '.join(agent_ids)})")
            covered.add(("steps", index, "agent_provider"))
        mcps = step.get("mcp_providers")
        for position, mcp in enumerate(mcps if isinstance(mcps, list) else []):
            if isinstance(mcp, str) and mcp not in mcp_ids:
                choices = ", ".join(mcp_ids) if mcp_ids else "none available, use []"
                problems.append(f"{where}: unknown MCP provider {mcp!r} ({choices})")
                covered.update({("steps", index, "mcp_providers", position),
                                ("steps", index, "mcp_providers")})
        description = step.get("description")
        if isinstance(description, str) and not _has_words(description):
            problems.append(f"{where}: description is empty, say what the agent must do")
            covered.add(("steps", index, "description"))
        elif isinstance(description, str):
            # A small model under a grammar tends to loop by repeating a step's task.
            earlier = [i for i, other in enumerate(steps[:index], start=1)
                       if isinstance(other, dict) and _same_text(other.get("description"),
                                                                 description)]
            if earlier:
                problems.append(f"{where} repeats the description of step {earlier[0]}; "
                                "each step must do something different")

    ids = [f"step_{n}" for n in range(1, len(steps) + 1)]
    declared = {ids[i]: step.get("depends_on") for i, step in enumerate(steps)
                if isinstance(step, dict) and isinstance(step.get("depends_on"), list)}
    for problem, index in dependency_problems(ids, declared):
        problems.append(problem)
        covered.add(("steps", index, "depends_on"))
    schema = build_plan_schema(catalog, max_steps=max_steps)
    problems.extend(schema_problems(data, schema, covered=covered))
    return problems


def dependency_problems(ids: list[str], declared: dict[str, Any], *,
                        finished: tuple[str, ...] = ()) -> list[tuple[str, int]]:
    """``(problem, step position)`` for ``depends_on`` lists that cannot run.

    Args:
        ids: The answer's step ids, in written order.
        declared: step id -> its ``depends_on`` as the model wrote it (steps without one
            depend on the step before them and are not listed).
        finished: Ids of steps already done (a revision may depend on them).

    Unknown ids, a step depending on itself and cycles are reported naming the step, so the
    repair turn tells the model exactly what to fix (``step_graph`` has the same rules).
    """
    from agentic_orchestration.orchestration.step_graph import GraphError, check_dependencies

    problems: list[tuple[str, int]] = []
    known = set(ids) | set(finished)
    for position, step_id in enumerate(ids):
        needs = declared.get(step_id)
        if needs is None:
            continue
        for need in needs:
            if need == step_id:
                problems.append((f"{step_id} depends on itself; remove it from its "
                                 "depends_on", position))
            elif isinstance(need, str) and need not in known:
                problems.append((f"{step_id} depends on unknown step {need!r} (steps: "
                                 f"{', '.join([*finished, *ids])})", position))
    if problems:
        return problems
    deps: dict[str, list[str]] = {step_id: [] for step_id in finished}
    for position, step_id in enumerate(ids):
        needs = declared.get(step_id)
        if needs is None:
            needs = [ids[position - 1]] if position else list(finished[-1:])
        deps[step_id] = [n for n in needs if isinstance(n, str)]
    try:
        check_dependencies(deps)
    except GraphError as exc:
        position = ids.index(exc.step_id) if exc.step_id in ids else 0
        problems.append((f"{exc}; a step may only depend on steps that do not depend on it",
                         position))
    return problems


def _has_words(text: str) -> bool:
    """At least two letters in a row: rejects "", "  " and a copied placeholder like "..."."""
    return re.search(r"[^\W\d_]{2}", text) is not None


def _same_text(a: Any, b: str) -> bool:
    return isinstance(a, str) and " ".join(a.lower().split()) == " ".join(b.lower().split())


def schema_problems(data: Any, schema: dict[str, Any], *,
                    covered: set[tuple[Any, ...]]) -> list[str]:
    """JSON Schema violations of ``data`` not already reported (``covered`` paths), one per
    location, with short messages (the plan's and the revision's schemas)."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    problems = []
    reported: set[tuple[Any, ...]] = set()
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        path = tuple(error.path)
        if path in reported or any(path[: len(done)] == done for done in covered):
            continue
        reported.add(path)
        where = "/".join(str(part) for part in path) or "answer"
        message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
        problems.append(f"{where}: {message}")
    return problems


def normalise_plan(data: Any) -> tuple[Any, int]:
    """Fix the two harmless slips of a small model before validation.

    - Duplicate MCP ids in a step are dropped (a grammar cannot forbid them, and a repeated
      tool is still the same tool).
    - A plan is cut where it starts repeating an earlier step's description: under a
      grammar, a small model that has run out of ideas repeats steps until the array is
      full; the steps before the first repeat are the plan it meant, and a repair request
      measured no better (the model loops again).

    Returns:
        ``(data, steps cut)``. Anything not plan-shaped is returned unchanged, for
        ``validate_plan`` to report.
    """
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list):
        return data, 0
    cleaned: list[Any] = []
    seen: set[str] = set()
    for step in steps:
        if isinstance(step, dict):
            mcps = step.get("mcp_providers")
            if isinstance(mcps, list) and all(isinstance(m, str) for m in mcps):
                step = {**step, "mcp_providers": list(dict.fromkeys(mcps))}
            description = step.get("description")
            if isinstance(description, str):
                key = " ".join(description.lower().split())
                if key in seen:
                    break
                seen.add(key)
        cleaned.append(step)
    return {**data, "steps": cleaned}, len(steps) - len(cleaned)


def plan_from_data(data: Any, catalog: Catalog, *, goal: str,
                   max_steps: int | None = None) -> WorkflowConfig:
    """Turn a planner answer (parsed JSON) into a ``WorkflowConfig``.

    The answer is normalised first (``normalise_plan``), then validated.

    Raises:
        PlanError: The answer has problems (all of them listed in the message).
    """
    limit = max_steps if max_steps is not None else _max_steps()
    data, _ = normalise_plan(data)
    problems = validate_plan(data, catalog, max_steps=limit)
    if problems:
        raise PlanError("invalid plan: " + "; ".join(problems))
    steps = [
        StepConfig(
            id=f"step_{index}",
            agent_provider=step["agent_provider"],
            mcp_providers=step["mcp_providers"],
            description=safe_text(step["description"]),
            expected_output=safe_text(step["expected_output"]) or _DEFAULT_EXPECTED_OUTPUT,
            depends_on=(list(dict.fromkeys(step["depends_on"]))
                        if isinstance(step.get("depends_on"), list) else None),
        )
        for index, step in enumerate(data["steps"], start=1)
    ]
    return WorkflowConfig(
        name=_plan_name(data.get("name")),
        description=f"Dynamic plan for: {goal}"[:DESCRIPTION_MAX_CHARS],
        topic=goal,
        steps=steps,
    )


def safe_text(text: str) -> str:
    """One line of text, with braces other than ``{topic}`` neutralised.

    Step text is later filled with ``{topic}``; a stray ``{x}`` written by the model would
    break ``str.format`` there, so it becomes ``(x)``.
    """
    parts = " ".join(text.split()).split("{topic}")
    return "{topic}".join(p.replace("{", "(").replace("}", ")") for p in parts)


def _plan_name(raw: Any) -> str:
    """The model's name as a slug (it may end up in paths), else a timestamped default."""
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-") if isinstance(raw, str) else ""
    if slug:
        return slug[:NAME_MAX_CHARS].rstrip("-")
    return "dynamic-plan-" + datetime.now().strftime("%Y%m%d-%H%M%S")


def _max_steps() -> int:
    return settings.get_int("AGENTIC_MAX_PLAN_STEPS", minimum=1)


def parse_answer(text: str | None) -> tuple[Any, list[str]]:
    """Parse the model's reply as JSON, tolerating code fences and surrounding prose.

    Returns:
        ``(data, [])`` on success, ``(None, [problem])`` otherwise.
    """
    if not text or not text.strip():
        return None, ["the answer was empty"]
    body = text.strip()
    fenced = re.match(r"^```[a-zA-Z]*\s*(.*?)\s*```$", body, re.DOTALL)
    if fenced:
        body = fenced.group(1)
    # strict=False accepts raw newlines/tabs inside strings: llama-cpp-python's schema
    # grammar (0.3.x) lets the model write them, and they are harmless in step text.
    try:
        return json.loads(body, strict=False), []
    except json.JSONDecodeError as exc:
        first, last = body.find("{"), body.rfind("}")
        if 0 <= first < last:
            try:
                return json.loads(body[first : last + 1], strict=False), []
            except json.JSONDecodeError:
                pass
        return None, [f"the answer is not valid JSON ({exc.msg} at line {exc.lineno} "
                      f"column {exc.colno})"]
