"""Dynamic planner: one LLM call turns a goal into a ``WorkflowConfig`` (plus one repair).

The planner talks to the model directly with the ``openai`` client rather than through
CrewAI: a plan is a single structured completion, and CrewAI's agent loop would add seconds
of import time and a prompt the planner does not control. The answer is constrained by the
JSON Schema from ``plan_schema`` (sent as ``response_format``), then checked again here,
because not every server enforces it.

An invalid answer gets exactly one repair attempt that shows the model its own answer and
the precise problems; a second invalid answer is a ``PlanError`` (exit code 3). More retries
rarely help a model that already failed twice and only delay the error.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.catalogs.models import AgentProviderEntry, StepConfig, WorkflowConfig
from agentic_orchestration.errors import ConfigError, PlanError
from agentic_orchestration.planning.plan_schema import (
    DESCRIPTION_MAX_CHARS,
    NAME_MAX_CHARS,
    build_plan_schema,
)
from agentic_orchestration.providers.agent_providers import (
    AgentProvider,
    agent_provider_from_dict,
)

if TYPE_CHECKING:
    from agentic_orchestration.catalogs.catalog import Catalog

logger = logging.getLogger(__name__)

#: Tokens per step a complete answer may need (bounded strings + JSON punctuation), and the
#: fixed part; ``max_tokens`` follows from them so a truncated answer means a looping model.
_TOKENS_PER_STEP = 180
_TOKENS_FIXED = 80
#: How much of a bad answer goes back to the model in the repair request.
_REPAIR_ECHO_CHARS = 2000
_DEFAULT_EXPECTED_OUTPUT = StepConfig.model_fields["expected_output"].default


@dataclass
class PlanStats:
    """How the last ``plan()`` went: what the benchmark and the CLI's verbose output show."""

    provider_id: str = ""
    attempts: int = 0
    first_try_valid: bool = False
    seconds: float = 0.0
    #: Problems found in each invalid answer, in attempt order.
    problems: list[list[str]] = field(default_factory=list)
    #: Steps cut from the accepted answer because they repeated an earlier step.
    trimmed_steps: int = 0


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

    problems.extend(_schema_problems(data, catalog, max_steps=max_steps, covered=covered))
    return problems


def _has_words(text: str) -> bool:
    """At least two letters in a row: rejects "", "  " and a copied placeholder like "..."."""
    return re.search(r"[^\W\d_]{2}", text) is not None


def _same_text(a: Any, b: str) -> bool:
    return isinstance(a, str) and " ".join(a.lower().split()) == " ".join(b.lower().split())


def _schema_problems(data: dict[str, Any], catalog: Catalog, *, max_steps: int,
                     covered: set[tuple[Any, ...]]) -> list[str]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(build_plan_schema(catalog, max_steps=max_steps))
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
            description=_safe_text(step["description"]),
            expected_output=_safe_text(step["expected_output"]) or _DEFAULT_EXPECTED_OUTPUT,
        )
        for index, step in enumerate(data["steps"], start=1)
    ]
    return WorkflowConfig(
        name=_plan_name(data.get("name")),
        description=f"Dynamic plan for: {goal}"[:DESCRIPTION_MAX_CHARS],
        topic=goal,
        steps=steps,
    )


def _safe_text(text: str) -> str:
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


class DynamicPlanner:
    """Plans a goal with one LLM: the configured planner provider or the best available.

    Args:
        catalog: The filtered catalog the plan may use.
        provider: A provider, entry or id to plan with; default ``AGENTIC_PLANNER_PROVIDER``,
            else ``catalog.best_agent()``.
        max_steps: Upper bound on steps; default ``AGENTIC_MAX_PLAN_STEPS``.

    Raises:
        ConfigError: The requested planner provider is unknown or unavailable here.
        NoProviderError: No agent provider is available at all.
    """

    def __init__(self, catalog: Catalog, *,
                 provider: AgentProvider | AgentProviderEntry | str | None = None,
                 max_steps: int | None = None) -> None:
        self.catalog = catalog
        self.max_steps = max_steps if max_steps is not None else _max_steps()
        self.provider = self._resolve_provider(provider)
        self.last_stats = PlanStats(provider_id=self.provider.id)

    @property
    def provider_id(self) -> str:
        return self.provider.id

    @property
    def last_attempts(self) -> int:
        """LLM calls the last ``plan()`` made: 1, or 2 when a repair was needed."""
        return self.last_stats.attempts

    @property
    def first_try_valid(self) -> bool:
        return self.last_stats.first_try_valid

    def _resolve_provider(
        self, provider: AgentProvider | AgentProviderEntry | str | None
    ) -> AgentProvider:
        if isinstance(provider, AgentProvider):
            return provider
        if isinstance(provider, AgentProviderEntry):
            return agent_provider_from_dict(provider)
        source = "planner provider"
        wanted = provider
        if wanted is None:
            wanted = settings.get("AGENTIC_PLANNER_PROVIDER").strip() or None
            source = "AGENTIC_PLANNER_PROVIDER"
        if wanted is None:
            return agent_provider_from_dict(self.catalog.best_agent())
        available = [entry.id for entry in self.catalog.available_agents]
        if wanted not in self.catalog.agents:
            raise ConfigError(f"{source}={wanted!r} is not an agent provider id "
                              f"(available: {', '.join(available) or 'none'})")
        if wanted in self.catalog.agent_exclusions:
            raise ConfigError(f"{source}={wanted!r} is not available here: "
                              f"{self.catalog.agent_exclusions[wanted]} "
                              f"(available: {', '.join(available) or 'none'})")
        return agent_provider_from_dict(self.catalog.agents[wanted])

    def plan(self, goal: str) -> WorkflowConfig:
        """Ask the planner LLM for a plan for ``goal``; repair once if it is invalid.

        Raises:
            PlanError: No valid plan after the repair attempt, or the LLM call failed.
        """
        goal = goal.strip()
        if not goal:
            raise PlanError("cannot plan an empty goal")
        started = time.perf_counter()
        stats = self.last_stats = PlanStats(provider_id=self.provider.id)
        schema = build_plan_schema(self.catalog, max_steps=self.max_steps)
        messages: list[dict[str, str]] = [
            {"role": "user", "content": build_prompt(goal, self.catalog,
                                                     max_steps=self.max_steps)},
        ]
        client, url = self._client()
        try:
            for attempt in (1, 2):
                stats.attempts = attempt
                answer = self._complete(client, url, messages, schema)
                data, problems = parse_answer(answer)
                if not problems:
                    data, trimmed = normalise_plan(data)
                    problems = validate_plan(data, self.catalog, max_steps=self.max_steps)
                    if trimmed and not problems:
                        stats.trimmed_steps = trimmed
                        logger.info("planner %s repeated itself; %d step(s) cut",
                                    self.provider.id, trimmed)
                if not problems:
                    stats.first_try_valid = attempt == 1
                    config = plan_from_data(data, self.catalog, goal=goal,
                                            max_steps=self.max_steps)
                    logger.info("planned %r with %s: %d steps, attempt %d", goal,
                                self.provider.id, len(config.steps), attempt)
                    return config
                stats.problems.append(problems)
                logger.warning("planner %s answer %d invalid: %s", self.provider.id, attempt,
                               "; ".join(problems))
                messages += [
                    {"role": "assistant", "content": (answer or "")[:_REPAIR_ECHO_CHARS]},
                    {"role": "user", "content": repair_prompt(problems)},
                ]
        finally:
            stats.seconds = time.perf_counter() - started
        raise PlanError(f"planner {self.provider.id} gave no valid plan after "
                        f"{stats.attempts} attempts: " + "; ".join(stats.problems[-1]))

    def _client(self) -> tuple[Any, str]:
        from openai import OpenAI

        url = self.provider.base_url() or "https://api.openai.com/v1"
        timeout = float(settings.get_int("AGENTIC_LLM_TIMEOUT_SECONDS", minimum=1))
        # max_retries=0: a dead endpoint should fail the plan now, not after backoff.
        client = OpenAI(base_url=url, api_key=self.provider.api_key(), max_retries=0,
                        timeout=timeout)
        return client, url

    def _request_options(self) -> dict[str, Any]:
        return {
            "max_tokens": _TOKENS_FIXED + _TOKENS_PER_STEP * self.max_steps,
            "temperature": 0.2,
        }

    def _complete(self, client: Any, url: str, messages: list[dict[str, str]],
                  schema: dict[str, Any]) -> str | None:
        import openai

        try:
            response = client.chat.completions.create(
                model=self.provider.model_name,
                messages=messages,
                response_format={"type": "json_schema",
                                 "json_schema": {"name": "plan", "schema": schema}},
                **self._request_options(),
            )
        except openai.APIError as exc:
            raise PlanError(f"planner {self.provider.id} at {url} failed: "
                            f"{self._scrub(_describe(exc))}") from exc
        if not response.choices:
            return None
        return response.choices[0].message.content

    def _scrub(self, text: str) -> str:
        """Remove the API key from a message, in case a server echoed it back."""
        if not self.provider.entry.key_env():
            return text  # keyless provider: the placeholder key is no secret
        try:
            key = self.provider.api_key()
        except ConfigError:
            return text
        return text.replace(key, "***") if key else text


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    message = " ".join(str(getattr(exc, "message", exc) or type(exc).__name__).split())
    prefix = f"HTTP {status}" if status else type(exc).__name__
    return f"{prefix}: {message[:200]}"
