"""Is a failure worth another try, and on which provider? Workflow-level fallback.

Generalises the spec's "HF failed -> rerun on Ollama" to the catalog's fallback chain: when
a step fails *recoverably*, the steps still to run that use the failed step's LLM endpoint
get the next provider of ``Catalog.fallback_chain`` (persona kept, via ``with_llm_of``),
and the run resumes ONCE from the failed step, with the last good output injected as usual.
Steps that already succeeded are not run again (their outputs are kept). ``AGENTIC_FALLBACK=0``
turns this off.

What CrewAI 1.15 lets through ``Crew.kickoff()`` (measured against the scripted server):

- HTTP errors: the ``openai`` SDK's ``APIStatusError`` subclasses, unwrapped
  (``InternalServerError`` 5xx, ``RateLimitError`` 429 after CrewAI's own 3 tries,
  ``AuthenticationError`` 401, ``PermissionDeniedError`` 403, ``BadRequestError`` 400);
  404 becomes ``ValueError("Model ... not found")``.
- Refused connection / timeout: builtin ``ConnectionError`` whose ``__cause__`` is
  ``openai.APIConnectionError`` (``APITimeoutError`` is a subclass of it).
- An empty completion: ``ValueError("Invalid response from LLM call - None or empty.")``;
  a blank final answer is turned into ``StepFailed(recoverable=True)`` by the backend.

Recoverable: 5xx, 429, 408, connection errors, timeouts, unusable (empty) output.
Not recoverable: 401/403 (a key problem another try will not fix), other 4xx, our own
configuration errors, and anything unknown (a bug should surface, not be retried).

This module imports no CrewAI, so the distributed coordinator can use it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from agentic_orchestration import settings
from agentic_orchestration.catalogs.catalog import with_llm_of
from agentic_orchestration.errors import AgenticError
from agentic_orchestration.orchestration.backends.base import RecoveryHint

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog
    from agentic_orchestration.catalogs.models import AgentProviderEntry, WorkflowConfig
    from agentic_orchestration.orchestration.backends.base import (
        StepResult,
        WorkflowExecutionResult,
    )

logger = logging.getLogger(__name__)

__all__ = [
    "FailureClass",
    "FallbackPlan",
    "classify_exception",
    "error_text",
    "fallback_enabled",
    "plan_fallback",
    "run_with_fallback",
]


_UNUSABLE_OUTPUT_MARKERS = ("none or empty", "empty answer", "empty response")


@dataclass(frozen=True)
class FailureClass:
    """Verdict on one failure."""

    recoverable: bool
    #: Short machine-readable cause: server_error, rate_limited, timeout, connection,
    #: unusable_output, auth, http_<status>, config, unknown.
    reason: str

    @property
    def hint(self) -> str | None:
        return RecoveryHint.PROVIDER_FALLBACK if self.recoverable else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _openai_classes() -> tuple[type[BaseException], type[BaseException]]:
    """(APITimeoutError, APIConnectionError), or placeholders when openai is absent."""
    try:
        import openai
    except ImportError:  # the coordinator may run without the LLM client installed
        class _Never(Exception):
            pass

        return _Never, _Never
    return openai.APITimeoutError, openai.APIConnectionError


def _status_code(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _classify_status(status: int) -> FailureClass:
    if status in (401, 403):
        return FailureClass(False, "auth")
    if status == 429:
        return FailureClass(True, "rate_limited")
    if status == 408:
        return FailureClass(True, "timeout")
    if status >= 500:
        return FailureClass(True, "server_error")
    return FailureClass(False, f"http_{status}")


def error_text(exc: BaseException) -> str:
    """One readable line for a step's ``error``: ``Type: message``.

    For an HTTP error from an LLM server the server's own message is used
    (``InternalServerError: HTTP 503: embedded model process died: ...``) instead of the
    SDK's dump of the whole error body.
    """
    status = _status_code(exc)
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if status is not None and isinstance(message, str) and message.strip():
        text = f"HTTP {status}: {message}"
    else:
        text = str(exc)
    return f"{type(exc).__name__}: {' '.join(text.split())}"


def classify_exception(exc: BaseException) -> FailureClass:
    """Whether ``exc`` (from ``kickoff`` or a worker) may succeed on another provider.

    The exception and its ``__cause__``/``__context__`` chain are examined, first match
    wins, so a ``ConnectionError`` wrapping ``openai.APIConnectionError`` is a connection
    error and a ``StepFailed`` carries its own verdict.
    """
    timeout_cls, connection_cls = _openai_classes()
    for candidate in _chain(exc):
        if isinstance(candidate, AgenticError):
            reason = "unusable_output" if candidate.recoverable else "config"
            return FailureClass(candidate.recoverable, reason)
        status = _status_code(candidate)
        if status is not None:
            return _classify_status(status)
        if isinstance(candidate, (TimeoutError, timeout_cls)):
            return FailureClass(True, "timeout")
        if isinstance(candidate, (ConnectionError, connection_cls)):
            return FailureClass(True, "connection")
        if isinstance(candidate, ValueError) and any(
            marker in str(candidate).lower() for marker in _UNUSABLE_OUTPUT_MARKERS
        ):
            return FailureClass(True, "unusable_output")
    return FailureClass(False, "unknown")


def fallback_enabled() -> bool:
    return settings.get_bool("AGENTIC_FALLBACK")


@dataclass(frozen=True)
class FallbackPlan:
    """How the one retry runs: from which step, on which provider, for which steps."""

    provider: AgentProviderEntry
    failed_step_id: str
    failed_provider_id: str
    start_index: int
    #: step id -> entry to run it with (persona of the step, LLM of ``provider``).
    overrides: dict[str, AgentProviderEntry]


def plan_fallback(
    config: WorkflowConfig, catalog: Catalog, failed_step_id: str
) -> FallbackPlan | None:
    """The retry after ``failed_step_id`` failed recoverably, or None if no provider is left.

    Every step from the failed one on whose LLM endpoint equals the failed step's gets the
    next provider of ``catalog.fallback_chain`` (other steps keep theirs: their endpoint
    did not fail).
    """
    index = next(i for i, s in enumerate(config.steps) if s.id == failed_step_id)
    failed_entry = catalog.resolve_step_agent(config.steps[index], workflow=config.name)
    chain = catalog.fallback_chain(failed_entry, step_description=config.steps[index].description,
                                   topic=config.topic)
    if not chain:
        return None
    provider = chain[0]
    overrides = {}
    for step in config.steps[index:]:
        entry = catalog.resolve_step_agent(step, workflow=config.name)
        if entry.endpoint() == failed_entry.endpoint():
            overrides[step.id] = with_llm_of(entry, provider)
    return FallbackPlan(provider=provider, failed_step_id=failed_step_id,
                        failed_provider_id=failed_entry.id, start_index=index,
                        overrides=overrides)


#: ``run_once(overrides, start_index, prior_output)``: run ``config.steps[start_index:]``,
#: with ``overrides`` (step id -> entry) and ``prior_output`` injected into the first step.
RunOnce = Callable[[Mapping[str, "AgentProviderEntry"], int, str], "WorkflowExecutionResult"]


def _first_failure(result: WorkflowExecutionResult) -> StepResult | None:
    return next((r for r in result.step_results if not r.ok), None)


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in ids if i))


def run_with_fallback(
    config: WorkflowConfig,
    catalog: Catalog,
    run_once: RunOnce,
    *,
    enabled: bool | None = None,
    on_fallback: Callable[[FallbackPlan], None] | None = None,
    error_sink: list[str] | None = None,
) -> WorkflowExecutionResult:
    """Run once; after a recoverable step failure, resume once on the next provider.

    Args:
        config: The plan.
        catalog: Gives the fallback chain and the steps' resolved entries.
        run_once: Runs (part of) the plan; see ``RunOnce``.
        enabled: Default ``AGENTIC_FALLBACK``.
        on_fallback: Called with the plan just before the retry (progress line).
        error_sink: Gets one line per failure that a retry replaced.

    Returns:
        The first result when it succeeded, was not recoverable, fallback is off or no
        provider is left; otherwise the retry's result, with the first attempt's successful
        steps in front and ``providers_tried`` covering both attempts.
    """
    first = run_once({}, 0, "")
    failed = _first_failure(first)
    if first.ok or failed is None or not failed.recoverable:
        return first
    if not (fallback_enabled() if enabled is None else enabled):
        logger.info("step %s failed recoverably; fallback is off (AGENTIC_FALLBACK=0)",
                    failed.step_id)
        return first
    plan = plan_fallback(config, catalog, failed.step_id)
    if plan is None:
        logger.warning("step %s failed recoverably but no other provider is available",
                       failed.step_id)
        return first
    logger.warning("step %s failed on %s (%s); retrying from it on %s", failed.step_id,
                   failed.agent_provider_id, failed.error, plan.provider.id)
    if error_sink is not None:
        error_sink.append(f"step {failed.step_id} on {failed.agent_provider_id}: {failed.error}")
    if on_fallback is not None:
        on_fallback(plan)

    kept_ids = {s.id for s in config.steps[: plan.start_index]}
    kept = [r for r in first.step_results if r.step_id in kept_ids]
    prior = (kept[-1].result_text or "") if kept else ""
    try:
        second = run_once(plan.overrides, plan.start_index, prior)
    except KeyboardInterrupt as exc:  # the first attempt's good steps are finished too
        from agentic_orchestration.orchestration.backends.base import (
            keep_partial_results,
            partial_step_results,
        )

        keep_partial_results(exc, [*kept, *partial_step_results(exc)])
        raise
    except AgenticError as exc:  # e.g. the fallback provider cannot even be built
        logger.error("fallback on %s could not start: %s", plan.provider.id, exc)
        if error_sink is not None:
            error_sink.append(f"fallback on {plan.provider.id}: {exc}")
        return first
    return replace(
        second,
        step_results=[*kept, *second.step_results],
        providers_tried=_unique([*first.providers_tried, *second.providers_tried]),
    )
