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

#: Goal kinds: (kind, pattern over the goal, example goal, slots); a slot is (agent
#: pattern, description, expected output). A slot is filled with the first catalog agent
#: whose role/hint matches the pattern and dropped when none does, so the examples only ever
#: show ids this catalog has. The first kind whose pattern matches the goal is its kind.
#:
#: Why per kind: a small base model imitates the example it saw last far more than it follows
#: rules. With one general example (facts, comparison, final text) Gemma 3 270M gave every
#: goal that plan, a code goal included. Showing, last, an example of the goal's own kind
#: (a coder then a reviewer for code) makes the copied shape the right one.
#: Descriptions say ``{topic}`` where the goal belongs: what a small model copies then still
#: names the user's goal at run time.
_KINDS: tuple[tuple[str, str, str, tuple[tuple[str, str, str], ...]], ...] = (
    ("code", r"\b(code|coding|program|script|function|class|implement\w*|bug|debug|"
             r"python|javascript|typescript|sql|regex|api|unit tests?|cli)\b",
     "Write a Python script that counts the words in a text file", (
        (r"program|code", "Write the code for: {topic}",
         "The code in a fenced block with its file name."),
        (r"review|edit|correct", "Review the code for bugs and return the fixed code",
         "The corrected code in a fenced block."),
     )),
    ("compare", r"\b(compare|comparison|versus|vs\.?|choose|which|better|best|recommend\w*|"
                r"pros and cons|trade-?offs?)\b",
     "Compare electric and petrol cars for a city commuter", (
        (r"fact|research|gather", "List the key facts about each option: {topic}",
         "Bullet points of facts."),
        (r"compar|analy|weigh", "Compare the options on those facts and recommend one",
         "A comparison and a recommendation."),
        (r"writ|summar|report", "Write the final recommendation for the reader: {topic}",
         "The final answer for the user."),
     )),
    ("plan", r"\b(plan|trip|travel|itinerary|schedule|budget|routine|week|weekend|"
             r"days?|holiday|vacation|workout|menu)\b",
     "Plan a weekend in Lisbon on a small budget", (
        (r"fact|research|gather", "List what matters for: {topic}",
         "Bullet points: places, costs, times."),
        (r"writ|summar|report", "Write the plan step by step: {topic}",
         "The plan, day by day."),
     )),
    ("write", r"\b(write|draft|email|letter|guide|article|post|blog|story|summary|"
              r"summari[sz]e|essay|report|speech|description)\b",
     "Write a short blog post about keeping houseplants alive", (
        (r"fact|research|gather", "Collect the main points for: {topic}",
         "Bullet points to cover."),
        (r"writ|summar|report", "Write the text from the notes: {topic}",
         "The finished text."),
        (r"review|edit|correct", "Review the text and correct its mistakes",
         "The corrected text."),
     )),
    ("explain", r".", "Explain how vaccines train the immune system", (
        (r"fact|research|gather", "List the key facts that explain: {topic}",
         "Bullet points of facts."),
        (r"writ|summar|report", "Explain it clearly for the reader: {topic}",
         "The explanation."),
     )),
)

_SEARCH_TOOL = re.compile(r"search|fetch|web", re.IGNORECASE)


_REVIEW_ASKED = re.compile(r"\breview|\bproofread|\bcheck (?:it|them|the)", re.I)
_REVIEW_SLOT = (r"review|edit|correct", "Review the draft and correct its mistakes",
                "The corrected text.")
#: Goals that ask to be told something are explained, whatever words follow.
_EXPLAIN_FIRST = re.compile(r"^\s*(?:explain|what|why|how|who|when|describe|list|tell)\b",
                            re.I)


def goal_kind(goal: str) -> str:
    """``code``, ``compare``, ``plan``, ``write`` or ``explain``: the first kind whose
    pattern matches the goal (``explain`` matches anything, and wins for a question)."""
    if _EXPLAIN_FIRST.search(goal):
        return "explain"
    return next(kind for kind, pattern, _, _ in _KINDS if re.search(pattern, goal, re.I))


def _slots(kind: str, goal: str | None) -> tuple[str, tuple[tuple[str, str, str], ...]]:
    """The example goal and step slots of ``kind``; for the user's ``goal``, with a review
    step exactly when the goal asks for one (a reviewer's notes are then the answer)."""
    _, _, example_goal, slots = next(k for k in _KINDS if k[0] == kind)
    if goal is None:
        return example_goal, slots
    kept = tuple(s for s in slots if s[0] != _REVIEW_SLOT[0])
    if not _REVIEW_ASKED.search(goal):
        return example_goal, kept
    review = next((s for s in slots if s[0] == _REVIEW_SLOT[0]), _REVIEW_SLOT)
    return f"{example_goal}, then review it", (*kept, review)


def fitted_slots(catalog: Catalog, kind: str, *, goal: str | None = None,
                 ) -> list[tuple[str, Any, str, str]]:
    """``(slot, agent entry, description template, expected output)`` for each slot of
    ``kind`` that a catalog agent fits, in order; ``slot`` names it (``fact``, ``program``,
    ``compar``, ``writ``, ``review``: its pattern's first word) for the base-model frame's
    examples (``_frame``)."""
    _, slots = _slots(kind, goal)
    fitted, taken = [], set()
    for pattern, description, expected in slots:
        entry = next((a for a in catalog.available_agents if a.id not in taken and
                      re.search(pattern, f"{a.role} {a.planner_hint}", re.IGNORECASE)),
                     None)
        if entry is not None:
            taken.add(entry.id)
            fitted.append((pattern.split("|", 1)[0], entry, description, expected))
    return fitted


def _example(catalog: Catalog, kind: str, search: str | None, *,
             goal: str | None = None) -> tuple[str, dict[str, Any]]:
    """One worked example of ``kind`` built from the catalog's own agents."""
    example_goal, _ = _slots(kind, goal)
    steps: list[dict[str, Any]] = []
    for _slot, entry, description, expected in fitted_slots(catalog, kind, goal=goal):
        tools = [search] if search and not steps and kind != "code" else []
        steps.append({"agent_provider": entry.id, "mcp_providers": tools,
                      "description": description, "expected_output": expected})
    return example_goal, {"steps": steps}


def _search_tool(catalog: Catalog) -> str | None:
    """A search-like tool, shown in use so the model sees the field filled."""
    return next((m.id for m in catalog.available_mcps if _SEARCH_TOOL.search(
        f"{m.id} {m.planner_hint} {m.description}")), None)


def plan_skeleton(catalog: Catalog, goal: str) -> list[str] | None:
    """The agents, in order, of the worked example of the goal's kind; None when no
    catalog agent fits it. The planner pins a base model's plan to it (see DynamicPlanner)."""
    _, plan = _example(catalog, goal_kind(goal), None, goal=goal)
    return [step["agent_provider"] for step in plan["steps"]] or None


def example_plans(catalog: Catalog, goal: str) -> list[tuple[str, dict[str, Any]]]:
    """Two worked examples: a general one, then (last, nearest the goal) one of the goal's
    own kind. Examples whose slots no catalog agent fits are left out."""
    search = _search_tool(catalog)
    kind = goal_kind(goal)
    general = "compare" if kind != "compare" else "write"
    examples = [e for e in (_example(catalog, general, search),
                            _example(catalog, kind, search, goal=goal)) if e[1]["steps"]]
    if not examples and catalog.available_agents:
        entry = catalog.available_agents[0]
        examples.append((_KINDS[-1][2], {"steps": [{
            "agent_provider": entry.id, "mcp_providers": [],
            "description": f"{entry.goal.rstrip('.')}: {{topic}}",
            "expected_output": "The final answer for the user."}]}))
    return examples


def build_prompt(goal: str, catalog: Catalog, *, max_steps: int, pinned: bool = False,
                 knowledge: str = "", reliability: str = "") -> str:
    """The planner prompt: agents, tools, rules, worked examples, then the goal.

    Kept compact and in one user message: small local models (Gemma via llama.cpp's
    ``gemma`` chat format) drop system messages, and every token is prefill time on CPU.
    ``pinned`` (the plan's agents are fixed by the schema) shows only the example of the
    goal's own kind: a base model copied the general example's first step into every plan.
    ``knowledge`` (past results, ``knowledge.planner_context``) goes before the rules, so
    the worked examples and the goal stay last, where a small model looks.
    ``reliability`` (per-provider success in past runs, ``sessions.learning.planner_hints``)
    follows the agent list it is about.
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
        f"{reliability}"
        f"{tools}\n\n"
        + (f"{knowledge}\n\n" if knowledge else "")
        + "Rules:\n"
        f"- Usually 2 to 4 steps, never more than {max_steps}.\n"
        "- Each step: the agent that fits, what it must do for the goal (description), "
        "what it hands on (expected_output).\n"
        "- The last step writes the final answer for the user.\n"
        + ("" if pinned else  # a pinned plan is a chain (no depends_on in its schema)
           "- Optional depends_on: the ids (step_1, step_2, ...) of the earlier steps whose "
           "results a step needs; without it a step gets the step before it.\n")
        + "\n"
        + "".join(f"Goal: {example_goal}\nPlan: {json.dumps(plan)}\n\n"
                  for example_goal, plan in example_plans(catalog, goal)[-1 if pinned else 0:])
        + f"Goal: {goal}\n"
        "Plan:"
    )


def repair_prompt(problems: list[str]) -> str:
    """The follow-up turn after an invalid answer: the exact problems, then ask again."""
    listed = "\n".join(f"- {problem}" for problem in problems)
    return (f"That plan is invalid:\n{listed}\n\n"
            "Answer again with the corrected plan as JSON only, same shape.")


#: How much of each finished step's result the replanner sees: enough to judge it, and
#: every character is prefill time for a local model.
REPLAN_RESULT_CHARS = 600


def _step_line(step: Any) -> str:
    needs = f" (needs {', '.join(step.depends_on) or 'nothing'})" if (
        step.depends_on is not None) else ""
    tools = f" tools {', '.join(step.mcp_providers)}" if step.mcp_providers else ""
    return (f"- {step.id} [{step.agent_provider}{tools}]{needs}: {step.description} "
            f"(hands on: {step.expected_output})")


def build_replan_prompt(goal: str, catalog: Catalog, *, finished: list[tuple[Any, str]],
                        pending: list[Any], new_ids: list[str], max_steps: int,
                        round_no: int, rounds: int) -> str:
    """The replanner's request: goal, agents, finished steps with their results, the
    steps not started, and the rules of a revision (``planning.replanner``).

    ``finished`` pairs each finished ``StepConfig`` with its result text (cut to
    ``REPLAN_RESULT_CHARS``). One user message, like the planner's, for the same reasons.
    """
    agents = "\n".join(f"- {a.id}: {a.role}" + (f" - {a.planner_hint}" if a.planner_hint
                                                 else "") for a in catalog.available_agents)
    tools = ", ".join(m.id for m in catalog.available_mcps) or "none, so mcp_providers is []"
    done = "\n".join(
        _step_line(step) + "\n  Result: " + " ".join(text.split())[:REPLAN_RESULT_CHARS]
        for step, text in finished) or "- none"
    todo = "\n".join(_step_line(step) for step in pending) or "- none"
    return (
        f"Revise a running plan (revision {round_no} of at most {rounds}).\n\n"
        f"Goal: {goal}\n\n"
        f"Agents (ids for agent_provider):\n{agents}\n"
        f"Tools (ids for mcp_providers): {tools}\n\n"
        f"Finished steps (they cannot change):\n{done}\n\n"
        f"Steps not started yet:\n{todo}\n\n"
        "Rules:\n"
        "- done is true when the finished results already achieve the goal; steps is "
        "then [].\n"
        + (("- Otherwise steps lists every step still to run, in order: repeat a step with "
            "its id to keep it, give its id with new text to change it, use a new id "
            f"({', '.join(new_ids[:3])}, ...) to add one. A step left out is dropped.\n"
            "- depends_on (optional): ids of the steps whose results a step needs; without "
            "it a step gets the step before it.\n") if new_ids else
           # pinned (a base model, ``planning.replanner``): the grammar fixes ids and agents
           ("- Otherwise steps lists every step not started yet, in the same order, each "
            "with its id and agent unchanged; rewrite a description or expected_output "
            "only where the results so far call for it.\n"))
        + f"- At most {max_steps} steps; the last one writes the final answer for the user.\n"
        "- reason: one sentence on why the plan changes or stays.\n\n"
        'Answer as JSON: {"done": ..., "reason": ..., "steps": [...]}\n'
        "Revision:"
    )
