"""Dynamic planner: one LLM call turns a goal into a ``WorkflowConfig`` (plus one repair).

The planner talks to the model directly with the ``openai`` client rather than through
CrewAI: a plan is a single structured completion, and CrewAI's agent loop would add seconds
of import time and a prompt the planner does not control. The answer is constrained by the
JSON Schema from ``plan_schema`` (sent as ``response_format``), then checked again by
``plan_validation``, because not every server enforces it. The prompt is built in ``_prompt``.

An invalid answer gets exactly one repair attempt that shows the model its own answer and
the precise problems; a second invalid answer is a ``PlanError`` (exit code 3). More retries
rarely help a model that already failed twice and only delay the error.

A small *base* model (the bundled Gemma, no chat template) gets its plan's agents pinned to
the goal kind's example and writes only each step's description, one short schema-bound
string per step in a document it continues (``_frame``); the plan is then assembled in code
and validated like any other. Asked for the whole JSON plan it copied the example's template
descriptions in 8 of 10 plans.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.catalogs.models import AgentProviderEntry, WorkflowConfig
from agentic_orchestration.errors import ConfigError, PlanError
from agentic_orchestration.knowledge import planner_context
from agentic_orchestration.planning import _frame
from agentic_orchestration.planning._prompt import (
    _search_tool,
    build_prompt,
    plan_skeleton,
    repair_prompt,
)
from agentic_orchestration.planning.plan_schema import build_plan_schema

# Parsing and validation live in ``plan_validation``; they are re-exported here so
# ``from agentic_orchestration.planning.dynamic_planner import validate_plan`` keeps working.
from agentic_orchestration.planning.plan_validation import (
    _max_steps,
    normalise_plan,
    parse_answer,
    plan_from_data,
    schema_problems,
    validate_plan,
)
from agentic_orchestration.providers.agent_providers import (
    AgentProvider,
    agent_provider_from_dict,
)
from agentic_orchestration.redaction import redact_text

if TYPE_CHECKING:
    from agentic_orchestration.catalogs.catalog import Catalog

logger = logging.getLogger(__name__)

__all__ = ["DynamicPlanner", "PlanStats"]

#: Tokens per step a complete answer may need (bounded strings + JSON punctuation), and the
#: fixed part; ``max_tokens`` follows from them so a truncated answer means a looping model.
_TOKENS_PER_STEP = 180
_TOKENS_FIXED = 80
#: How much of a bad answer goes back to the model in the repair request.
_REPAIR_ECHO_CHARS = 2000
#: A framed step's line (``_frame.line_schema``: at most ~130 characters) and its quotes.
_LINE_TOKENS = 64


@dataclass
class PlanStats:
    """How the last ``plan()`` went: what the benchmark and the CLI's verbose output show."""

    provider_id: str = ""
    attempts: int = 0
    first_try_valid: bool = False
    seconds: float = 0.0
    #: A base model's plan: written one step line at a time (``_frame``), not as JSON.
    framed: bool = False
    #: Framed steps whose two lines were rejected and which got the kind's template instead.
    fallback_descriptions: list[str] = field(default_factory=list)
    #: Problems found in each invalid answer, in attempt order.
    problems: list[list[str]] = field(default_factory=list)
    #: Steps cut from the accepted answer because they repeated an earlier step.
    trimmed_steps: int = 0
    #: Tokens the planner's calls spent, as the server reported them (0 when it did not).
    prompt_tokens: int = 0
    completion_tokens: int = 0


class DynamicPlanner:
    """Plans a goal with one LLM: the configured planner provider or the best available.

    Args:
        catalog: The filtered catalog the plan may use.
        provider: A provider, entry or id to plan with; default ``AGENTIC_PLANNER_PROVIDER``,
            else ``catalog.best_agent()``.
        max_steps: Upper bound on steps; default ``AGENTIC_MAX_PLAN_STEPS``.
        frame: Let a base model write its pinned steps' lines (``_frame``); False asks it
            for the whole JSON plan as before (kept so the benchmark can compare them).

    Raises:
        ConfigError: The requested planner provider is unknown or unavailable here.
        NoProviderError: No agent provider is available at all.
    """

    def __init__(self, catalog: Catalog, *,
                 provider: AgentProvider | AgentProviderEntry | str | None = None,
                 max_steps: int | None = None, frame: bool = True) -> None:
        self.catalog = catalog
        self.frame = frame
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
        skeleton = self._skeleton(goal)
        if skeleton is not None and self.frame:
            try:
                return self._plan_framed(goal, stats)
            finally:
                stats.seconds = time.perf_counter() - started
        schema = build_plan_schema(self.catalog, max_steps=self.max_steps, skeleton=skeleton)
        kb = planner_context(goal)  # past results for the goal (AGENTIC_KB=0: none)
        messages: list[dict[str, str]] = [
            {"role": "user", "content": build_prompt(goal, self.catalog, max_steps=self.max_steps,
                                                     pinned=skeleton is not None,
                                                     knowledge=kb.text,
                                                     reliability=self._reliability(goal,
                                                                                   skeleton))},
        ]
        client, url = self._client()
        try:
            for attempt in (1, 2):
                stats.attempts = attempt
                answer = self._complete(client, url, messages, schema, usage=stats)
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
                    if kb.run_ids:  # the plan records which past runs it was shown
                        config = config.model_copy(update={"kb_context": kb.run_ids})
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

    def _plan_framed(self, goal: str, stats: PlanStats) -> WorkflowConfig:
        """A base model's plan: pinned agents, a line per step (``_frame``), checked by the
        same schema and validation as a JSON answer. No past results are shown: every
        token is prefill time, and a base model copies what it is shown."""
        steps = _frame.frame_steps(self.catalog, goal, search=_search_tool(self.catalog))
        client, url = self._client()
        stats.framed = True

        def complete(document: str, schema: dict[str, Any], attempt: int) -> str | None:
            stats.attempts += 1
            return self._complete_line(client, url, document, schema, attempt=attempt,
                                       usage=stats)

        descriptions, stats.fallback_descriptions = _frame.write_descriptions(goal, steps,
                                                                              complete)
        data = _frame.assemble_plan(steps, descriptions)
        schema = build_plan_schema(self.catalog, max_steps=self.max_steps,
                                   skeleton=[s.agent_id for s in steps])
        problems = schema_problems(data, schema, covered=set())
        if problems:  # the frame's own bug, not the model's: no repair would fix it
            raise PlanError(f"planner {self.provider.id} assembled an invalid plan: "
                            + "; ".join(problems))
        config = plan_from_data(data, self.catalog, goal=goal, max_steps=self.max_steps)
        stats.first_try_valid = stats.attempts == len(steps)
        if stats.fallback_descriptions:
            logger.info("base-model planner: template kept for %s",
                        "; ".join(stats.fallback_descriptions))
        logger.info("planned %r with %s: %d framed steps, %d LLM calls", goal,
                    self.provider.id, len(config.steps), stats.attempts)
        return config

    def _complete_line(self, client: Any, url: str, document: str, schema: dict[str, Any],
                       *, attempt: int, usage: Any = None) -> str | None:
        """One framed step line: ``document`` continued as one schema-bound string. The
        second attempt draws with another seed and more temperature; ``usage`` as in
        ``_complete``."""
        import openai

        try:
            response = client.chat.completions.create(
                model=self.provider.model_name,
                messages=[{"role": "user", "content": document}],
                response_format={"type": "json_schema",
                                 "json_schema": {"name": "step_line", "schema": schema}},
                max_tokens=_LINE_TOKENS, temperature=0.2 if attempt == 1 else 0.7,
                seed=1 + 7919 * (attempt - 1),
            )
        except openai.APIError as exc:
            raise PlanError(f"planner {self.provider.id} at {url} failed: "
                            f"{self._scrub(_describe(exc))}") from exc
        _add_usage(usage, response)
        return _line_text(response.choices[0].message.content) if response.choices else None

    def _reliability(self, goal: str, skeleton: list[str] | None) -> str:
        """Past runs' per-provider success for the prompt (``sessions.learning``); none
        when the agents are pinned (nothing to choose, and every token is prefill)."""
        if skeleton is not None:
            return ""
        from agentic_orchestration.sessions.learning import planner_hints

        return planner_hints(self.catalog, goal)

    def _skeleton(self, goal: str) -> list[str] | None:
        """The agents a base model's plan must use, in order, or None for any other model.

        A small base model (the bundled Gemma, prompted as documents) copies a worked
        example's texts well but picks agents badly (a palindrome function went to an
        analyst and a writer). So for it the agents come from the example of the goal's
        kind (``_prompt.plan_skeleton``) and the model writes the steps' texts.
        """
        if self.provider.entry.type != "local":
            return None
        from agentic_orchestration.providers.local_model import local_prompt_style

        if local_prompt_style() != "document":
            return None
        skeleton = plan_skeleton(self.catalog, goal)
        logger.info("base-model planner: steps pinned to %s", skeleton)
        return skeleton

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
                  schema: dict[str, Any], *, max_tokens: int | None = None,
                  usage: Any = None) -> str | None:
        """One constrained completion. ``max_tokens`` overrides the plan's bound (the
        replanner's pinned revisions need fewer); ``usage`` (anything with
        ``prompt_tokens``/``completion_tokens``) gets the tokens the server reported."""
        import openai

        options = self._request_options()
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        try:
            response = client.chat.completions.create(
                model=self.provider.model_name,
                messages=messages,
                response_format={"type": "json_schema",
                                 "json_schema": {"name": "plan", "schema": schema}},
                **options,
            )
        except openai.APIError as exc:
            raise PlanError(f"planner {self.provider.id} at {url} failed: "
                            f"{self._scrub(_describe(exc))}") from exc
        _add_usage(usage, response)
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


def _line_text(answer: str | None) -> str | None:
    """A framed step's answer (a JSON string under the schema) as plain text."""
    if answer is None:
        return None
    try:
        value = json.loads(answer)
    except ValueError:
        return answer.strip().strip('"')  # a server that ignored the schema
    return value if isinstance(value, str) else None


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    # Masked before it is cut to 200 characters: a cut could leave half a key unmatched.
    message = " ".join(redact_text(str(getattr(exc, "message", exc) or type(exc).__name__))
                       .split())
    prefix = f"HTTP {status}" if status else type(exc).__name__
    return f"{prefix}: {message[:200]}"


def _add_usage(usage: Any, response: Any) -> None:
    """Add the tokens a response reports to ``usage`` (a ``PlanStats`` or anything with
    ``prompt_tokens``/``completion_tokens``); servers that report none add nothing."""
    reported = getattr(response, "usage", None)
    if usage is not None and reported is not None:
        usage.prompt_tokens += int(getattr(reported, "prompt_tokens", 0) or 0)
        usage.completion_tokens += int(getattr(reported, "completion_tokens", 0) or 0)
