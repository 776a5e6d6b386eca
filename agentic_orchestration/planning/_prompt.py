"""Prompt building for the dynamic planner: the planning request and the repair turn.

Kept apart from ``dynamic_planner`` because the prompt is tuned on its own (wording, worked
examples built from the catalog) for small local models, and needs no LLM client to test.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentic_orchestration.catalogs.catalog import Catalog

#: Worked examples: (goal, slots), a slot being (agent pattern, description, expected output).
#: A slot is filled with the first catalog agent whose role/hint matches the pattern and
#: dropped when none does, so the examples only ever show ids this catalog has.
#: Descriptions say ``{topic}`` rather than the example's own words: a small model copies
#: examples, and a copied ``{topic}`` still becomes the right goal at run time.
_EXAMPLES: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    ("Compare electric and petrol cars for a city commuter", (
        (r"fact|research|gather", "List the key facts needed for the goal: {topic}",
         "Bullet points of facts."),
        (r"compar|analy|weigh",
         "Compare the options on those facts and recommend one. Goal: {topic}",
         "A comparison and a recommendation."),
        (r"writ|summar|report", "Write the final answer from the notes so far. Goal: {topic}",
         "The final answer for the user."),
    )),
)

_SEARCH_TOOL = re.compile(r"search|fetch|web", re.IGNORECASE)


def _example_plans(catalog: Catalog) -> list[tuple[str, dict[str, Any]]]:
    """Worked examples built from the catalog's own agents.

    A small base model imitates far better than it follows rules, so the prompt shows a
    complete answer. Only one, general example (facts, comparison, final text): with a
    second, code-writing example Gemma 3 270M put the coder first in most plans, whatever
    the goal (code goals are better served by a static workflow's router rule anyway).
    """
    # Show a tool in use when there is a search-like one, so the model sees the field filled.
    search = next((m.id for m in catalog.available_mcps if _SEARCH_TOOL.search(
        f"{m.id} {m.planner_hint} {m.description}")), None)
    examples = []
    for goal, slots in _EXAMPLES:
        steps, taken = [], set()
        for pattern, description, expected in slots:
            entry = next((a for a in catalog.available_agents if a.id not in taken and
                          re.search(pattern, f"{a.role} {a.planner_hint}", re.IGNORECASE)),
                         None)
            if entry is not None:
                taken.add(entry.id)
                tools = [search] if search and not steps else []
                steps.append({"agent_provider": entry.id, "mcp_providers": tools,
                              "description": description, "expected_output": expected})
        if steps:
            examples.append((goal, {"steps": steps}))
    if not examples and catalog.available_agents:
        entry = catalog.available_agents[0]
        examples.append((_EXAMPLES[0][0], {"steps": [{
            "agent_provider": entry.id, "mcp_providers": [],
            "description": f"{entry.goal.rstrip('.')}: {{topic}}",
            "expected_output": "The final answer for the user."}]}))
    return examples


def build_prompt(goal: str, catalog: Catalog, *, max_steps: int) -> str:
    """The planner prompt: agents, tools, rules, worked examples, then the goal.

    Kept compact and in one user message: small local models (Gemma via llama.cpp's
    ``gemma`` chat format) drop system messages, and every token is prefill time on CPU.
    """
    agents = "\n".join(
        f"- {a.id}: {a.role}" + (f" - {a.planner_hint}" if a.planner_hint else "")
        for a in catalog.available_agents
    )
    mcps = catalog.available_mcps
    if mcps:
        tools = "Tools (ids for mcp_providers; use [] if a step needs none):\n" + "\n".join(
            f"- {m.id}" + (f" - {m.planner_hint or m.description}"
                           if (m.planner_hint or m.description) else "")
            for m in mcps
        )
    else:
        tools = "Tools: none available, so mcp_providers is always []."
    return (
        "Plan the work for a goal as a JSON list of steps for a team of agents.\n\n"
        f"Agents (ids for agent_provider):\n{agents}\n\n"
        f"{tools}\n\n"
        "Rules:\n"
        f"- Usually 2 to 4 steps, never more than {max_steps}.\n"
        "- Each step: the agent that fits, what it must do for the goal (description), "
        "what it hands on (expected_output).\n"
        "- The last step writes the final answer for the user.\n\n"
        + "".join(f"Goal: {example_goal}\nPlan: {json.dumps(plan)}\n\n"
                  for example_goal, plan in _example_plans(catalog))
        + f"Goal: {goal}\n"
        "Plan:"
    )


def repair_prompt(problems: list[str]) -> str:
    """The follow-up turn after an invalid answer: the exact problems, then ask again."""
    listed = "\n".join(f"- {problem}" for problem in problems)
    return (f"That plan is invalid:\n{listed}\n\n"
            "Answer again with the corrected plan as JSON only, same shape.")
