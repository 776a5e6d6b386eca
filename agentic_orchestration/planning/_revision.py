"""The revision's JSON Schema and the small fixes applied to a revision before it is
checked (``planning.replanner``); kept apart so the replanner module stays readable."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from agentic_orchestration.planning.plan_schema import step_schema
from agentic_orchestration.planning.plan_validation import _has_words, _same_text

if TYPE_CHECKING:
    from agentic_orchestration.catalogs.catalog import Catalog
    from agentic_orchestration.catalogs.models import StepConfig

__all__ = ["REASON_MAX_CHARS", "build_revision_schema", "fresh_ids", "keep_repeated_texts"]

REASON_MAX_CHARS = 200


def build_revision_schema(catalog: Catalog, *, finished: list[str], ids: list[str],
                          max_steps: int,
                          pinned: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """JSON Schema of a revision: ``done`` first (under a grammar the model decides that
    before writing steps), a bounded ``reason``, then the remaining steps with ids from
    ``ids`` (pending and fresh) only.

    ``pinned`` (``(step id, agent id)`` of each pending step, for a base model): the answer
    is either ``done`` with ``steps: []`` or ``done: false`` with exactly those steps, in
    that order, each with its id and agent fixed and no ``depends_on`` (they keep theirs).
    """
    step = step_schema(catalog, depends_on_ids=[*finished, *ids], id_enum=ids)
    reason = {"type": "string", "minLength": 1, "maxLength": REASON_MAX_CHARS}
    if pinned is not None:
        plain = {k: v for k, v in step["properties"].items() if k != "depends_on"}
        fixed = [{**step, "properties": {**plain, "id": {"type": "string", "enum": [sid]},
                                         "agent_provider": {"type": "string",
                                                            "enum": [agent]}}}
                 for sid, agent in pinned]
        empty = {"type": "array", "items": step, "maxItems": 0}
        # Two exact shapes: the grammar settles which with the first token after "done".
        return {"anyOf": [
            {"type": "object", "properties": {"done": {"const": True}, "reason": reason,
                                              "steps": empty},
             "required": ["done", "reason", "steps"], "additionalProperties": False},
            {"type": "object", "properties": {
                "done": {"const": False}, "reason": reason,
                "steps": {"type": "array", "prefixItems": fixed, "items": False,
                          "minItems": len(fixed), "maxItems": len(fixed)}},
             "required": ["done", "reason", "steps"], "additionalProperties": False}]}
    return {"type": "object",
            "properties": {
                "done": {"type": "boolean"},
                "reason": reason,
                "steps": {"type": "array", "items": step, "minItems": 0,
                          "maxItems": max_steps}},
            "required": ["done", "reason", "steps"], "additionalProperties": False}


def keep_repeated_texts(data: Any, pending: list[StepConfig]) -> None:
    """In a pinned answer, give a step whose description is blank or repeats an earlier
    step's its own pending texts back (it is then "kept").

    A base model under the grammar often copies the first step's text into the next one
    (in the benchmark, 1 round in 6 spent a repair turn on it). Pinned, step ``k`` of the
    answer is pending step ``k``, so keeping its text is always possible and free; a
    repair turn doubles the round.
    """
    steps = data.get("steps") if isinstance(data, dict) and data.get("done") is False else None
    if not isinstance(steps, list) or len(steps) != len(pending):
        return
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        text = step.get("description")
        earlier = [s.get("description") for s in steps[:index] if isinstance(s, dict)]
        if not isinstance(text, str) or not _has_words(text) or any(
                _same_text(other, text) for other in earlier):
            step["description"] = pending[index].description
            step["expected_output"] = pending[index].expected_output


def fresh_ids(used: set[str], count: int) -> list[str]:
    """``count`` ids ``step_<n>`` after the highest number used so far (never reused: a
    removed step's id stays its own in the records)."""
    numbers = [int(m.group(1)) for i in used if (m := re.fullmatch(r"step_(\d+)", i))]
    start = max(numbers, default=len(used)) + 1
    return [f"step_{n}" for n in range(start, start + count)
            if f"step_{n}" not in used][:count]
