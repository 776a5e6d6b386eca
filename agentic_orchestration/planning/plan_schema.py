"""JSON Schema of the planner's answer, built from what the catalog offers right now.

The schema is sent as the ``response_format`` of the planner request, so a server that does
constrained decoding (llama.cpp, OpenAI) can only produce plans that name real providers.
Two choices follow from running it on Gemma 3 270M, a base model:

- provider ids are ``enum`` values, never free strings: a small model cannot misspell an id
  it is not allowed to type;
- every string and array has an upper bound: under a grammar, a base model tends to repeat a
  phrase until ``max_tokens`` runs out, and an unbounded string never closes.

The same schema is used to validate the answer (``jsonschema``), so a server without
constrained decoding gets the same contract, checked after the fact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentic_orchestration.catalogs.catalog import Catalog

__all__ = ["DESCRIPTION_MAX_CHARS", "NAME_MAX_CHARS", "build_plan_schema", "plan_step_ids",
           "step_schema"]

NAME_MAX_CHARS = 60
DESCRIPTION_MAX_CHARS = 300
EXPECTED_OUTPUT_MAX_CHARS = 150
#: Cap on tools per step: enough for any sensible step, short enough that a looping small
#: model stops repeating an id.
MCPS_PER_STEP_MAX = 8


def _bounded_string(max_chars: int, *, min_chars: int = 1) -> dict[str, Any]:
    return {"type": "string", "minLength": min_chars, "maxLength": max_chars}


def build_plan_schema(catalog: Catalog, *, max_steps: int,
                      skeleton: Sequence[str] | None = None) -> dict[str, Any]:
    """JSON Schema for ``{"steps": [...], "name": ...}`` limited to the catalog's usable ids.

    Args:
        catalog: The filtered catalog; only ``available_agents``/``available_mcps`` appear.
        max_steps: Upper bound on the number of steps (``AGENTIC_MAX_PLAN_STEPS``).
        skeleton: Agent ids, in order, that the steps must use (one step each): the model
            then writes only the steps' texts. Used for a small base model, which copies
            an example's agents badly but fills in texts well (see ``DynamicPlanner``).

    Returns:
        A draft 2020-12 compatible schema (plain dict, JSON-serialisable). With no MCP
        provider available, ``mcp_providers`` is an array that must stay empty, because an
        empty ``enum`` is rejected by some grammar compilers.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    step = step_schema(catalog, depends_on_ids=plan_step_ids(max_steps))
    steps: dict[str, Any] = {"type": "array", "items": step, "minItems": 1,
                             "maxItems": max_steps}
    if skeleton:
        pinned = list(skeleton)[:max_steps]
        # No depends_on for a pinned base model: its plan is the example's chain, and an
        # optional key it may emit or not only gives a small model room to loop.
        plain = {k: v for k, v in step["properties"].items() if k != "depends_on"}
        steps = {"type": "array", "minItems": len(pinned), "maxItems": len(pinned),
                 "prefixItems": [
                     {**step, "properties": {**plain,
                                             "agent_provider": {"type": "string",
                                                                "enum": [agent_id]}}}
                     for agent_id in pinned]}
    return {
        "type": "object",
        "properties": {
            "steps": steps,
            # Optional: a grammar emits it after ``steps``, and a missing name is not worth a
            # repair round-trip (the planner makes one up).
            "name": _bounded_string(NAME_MAX_CHARS),
        },
        "required": ["steps"],
        "additionalProperties": False,
    }


def plan_step_ids(max_steps: int) -> list[str]:
    """The ids the planner's steps get, by position (``step_1`` ...): what ``depends_on``
    may name in a plan."""
    return [f"step_{n}" for n in range(1, max_steps + 1)]


def step_schema(catalog: Catalog, *, depends_on_ids: Sequence[str],
                id_enum: Sequence[str] | None = None) -> dict[str, Any]:
    """One step of a plan (or of a revision, with ``id_enum``: the ids it may carry).

    ``depends_on`` is optional (absent: the step before it) and limited to
    ``depends_on_ids``, so a constrained model cannot name a step that cannot exist; a
    self-reference or a cycle is still possible and is caught by validation (repair).
    """
    agent_ids = [entry.id for entry in catalog.available_agents]
    mcp_ids = [entry.id for entry in catalog.available_mcps]
    mcps: dict[str, Any] = {"type": "array"}
    if mcp_ids:
        mcps["items"] = {"type": "string", "enum": mcp_ids}
        mcps["maxItems"] = min(len(mcp_ids), MCPS_PER_STEP_MAX)
    else:
        # With ``items`` present llama.cpp compiles this to exactly "[]"; without it, to any
        # JSON array (it ignores maxItems there).
        mcps["items"] = {"type": "string"}
        mcps["maxItems"] = 0
    # Keys are generated in this order under a grammar. Description-first was tried so
    # the agent would be picked knowing its task: Gemma 3 270M chose no better and was
    # slower (mean 12.3 s against 7.4 s over the benchmark's goals), so the id is first.
    properties: dict[str, Any] = {}
    if id_enum is not None:
        properties["id"] = {"type": "string", "enum": list(id_enum)}
    properties |= {
        "agent_provider": {"type": "string", "enum": agent_ids},
        "mcp_providers": mcps,
        "description": _bounded_string(DESCRIPTION_MAX_CHARS),
        "expected_output": _bounded_string(EXPECTED_OUTPUT_MAX_CHARS),
        "depends_on": {"type": "array", "items": {"type": "string",
                                                  "enum": list(depends_on_ids)},
                       "maxItems": max(1, len(depends_on_ids))},
    }
    required = ["agent_provider", "mcp_providers", "description", "expected_output"]
    return {"type": "object", "properties": properties,
            "required": (["id"] if id_enum is not None else []) + required,
            "additionalProperties": False}
