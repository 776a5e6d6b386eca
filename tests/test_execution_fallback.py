"""Failure classification and the fallback retry, without CrewAI (fake ``run_once``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import httpx
import openai
import pytest

from agentic_orchestration.catalogs import AgentProviderEntry, Catalog, WorkflowConfig
from agentic_orchestration.errors import ConfigError, StepFailed
from agentic_orchestration.orchestration.backends.base import StepResult, WorkflowExecutionResult
from agentic_orchestration.orchestration.execution_fallback import (
    classify_exception,
    plan_fallback,
    run_with_fallback,
)

REQUEST = httpx.Request("POST", "http://llm.invalid/v1/chat/completions")


def status_error(cls: type[openai.APIStatusError], status: int) -> openai.APIStatusError:
    return cls(f"Error code: {status}", response=httpx.Response(status, request=REQUEST),
               body=None)


def wrapped(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(("exc", "recoverable", "reason"), [
    (status_error(openai.InternalServerError, 500), True, "server_error"),
    (status_error(openai.InternalServerError, 503), True, "server_error"),
    (status_error(openai.RateLimitError, 429), True, "rate_limited"),
    (status_error(openai.AuthenticationError, 401), False, "auth"),
    (status_error(openai.PermissionDeniedError, 403), False, "auth"),
    (status_error(openai.BadRequestError, 400), False, "http_400"),
    # What CrewAI raises for a refused connection / a timeout: ConnectionError from openai's.
    (wrapped(ConnectionError("Failed to connect to OpenAI API"),
             openai.APIConnectionError(request=REQUEST)), True, "connection"),
    (wrapped(ConnectionError("Failed to connect"), openai.APITimeoutError(request=REQUEST)),
     True, "connection"),
    (openai.APITimeoutError(request=REQUEST), True, "timeout"),
    (TimeoutError("read timed out"), True, "timeout"),
    (ValueError("Invalid response from LLM call - None or empty."), True, "unusable_output"),
    (StepFailed("empty answer", step_id="s", recoverable=True), True, "unusable_output"),
    (ConfigError("env var X is not set"), False, "config"),
    (ValueError("Model fake not found: 404"), False, "unknown"),
    (RuntimeError("a bug"), False, "unknown"),
    # A wrapper around a 500 is judged by the 500.
    (wrapped(RuntimeError("task failed"), status_error(openai.InternalServerError, 502)),
     True, "server_error"),
])
def test_classify_exception(exc: BaseException, recoverable: bool, reason: str) -> None:
    verdict = classify_exception(exc)
    assert (verdict.recoverable, verdict.reason) == (recoverable, reason)
    assert verdict.hint == ("provider_fallback" if recoverable else None)


# -- planning the retry --------------------------------------------------------------------


def entry(id_: str, url: str, priority: int, role: str | None = None) -> AgentProviderEntry:
    return AgentProviderEntry(id=id_, type="openai", model="m", openai_base_url=url,
                              role=role or f"Role {id_}", goal="g", backstory="b",
                              priority=priority)


@pytest.fixture
def catalog() -> Catalog:
    agents = [entry("a", "http://a/v1", 1), entry("a_twin", "http://a/v1", 2),
              entry("b", "http://b/v1", 3), entry("c", "http://c/v1", 4)]
    return Catalog(agents={e.id: e for e in agents}, mcps={})


def config(*agents: str) -> WorkflowConfig:
    return WorkflowConfig.model_validate({"name": "w", "steps": [
        {"id": f"s{i}", "agent_provider": a, "description": f"do {i}"}
        for i, a in enumerate(agents, start=1)]})


def test_plan_swaps_the_failed_endpoint_from_the_failed_step_on(catalog: Catalog) -> None:
    plan = plan_fallback(config("a", "b", "a", "a_twin", "b"), catalog, "s3")
    assert plan is not None
    assert (plan.provider.id, plan.failed_provider_id, plan.start_index) == ("b", "a", 2)
    assert sorted(plan.overrides) == ["s3", "s4"]  # s1 (before) and s5 (other endpoint) keep
    swapped = plan.overrides["s4"]
    assert (swapped.id, swapped.openai_base_url) == ("b", "http://b/v1")
    assert swapped.role == "Role a_twin"  # persona kept


def test_plan_none_when_chain_empty() -> None:
    only = entry("a", "http://a/v1", 1)
    twin = entry("a2", "http://a/v1", 2)
    catalog = Catalog(agents={"a": only, "a2": twin}, mcps={})
    assert plan_fallback(config("a"), catalog, "s1") is None


# -- run_with_fallback ---------------------------------------------------------------------


def step(step_id: str, provider: str, *, ok: bool = True, recoverable: bool = True,
         text: str | None = None) -> StepResult:
    if ok:
        return StepResult(run_id="r", step_id=step_id, result_text=text or f"out {step_id}",
                          agent_provider_id=provider)
    return StepResult(run_id="r", step_id=step_id, exit_code=1, error="boom",
                      recoverable=recoverable, agent_provider_id=provider)


def outcome(*steps: StepResult) -> WorkflowExecutionResult:
    ok = all(s.ok for s in steps)
    return WorkflowExecutionResult(
        exit_code=0 if ok else 1, result_text=steps[-1].result_text if ok else None,
        error=None if ok else StepFailed("boom"), step_results=list(steps), run_id="r",
        backend="fake", providers_tried=list(dict.fromkeys(s.agent_provider_id or ""
                                                          for s in steps)))


class FakeRuns:
    def __init__(self, *results: WorkflowExecutionResult | BaseException) -> None:
        self.results = list(results)
        self.calls: list[tuple[dict[str, str], int, str]] = []

    def __call__(self, overrides: Mapping[str, AgentProviderEntry], start: int,
                 prior: str) -> WorkflowExecutionResult:
        self.calls.append(({k: v.id for k, v in overrides.items()}, start, prior))
        result = self.results.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result


def test_recoverable_failure_resumes_once_on_next_provider(catalog: Catalog) -> None:
    runs = FakeRuns(outcome(step("s1", "b"), step("s2", "a", ok=False)),
                    outcome(step("s2", "b"), step("s3", "b", text="final")))
    seen = []
    sink: list[str] = []
    result = run_with_fallback(config("b", "a", "a"), catalog, runs, enabled=True,
                               on_fallback=seen.append, error_sink=sink)
    assert runs.calls == [({}, 0, ""), ({"s2": "b", "s3": "b"}, 1, "out s1")]
    assert result.ok and result.result_text == "final"
    assert [r.step_id for r in result.step_results] == ["s1", "s2", "s3"]
    assert result.providers_tried == ["b", "a"]
    assert [p.provider.id for p in seen] == ["b"]
    assert sink == ["step s2 on a: boom"]


def test_retry_happens_only_once(catalog: Catalog) -> None:
    runs = FakeRuns(outcome(step("s1", "a", ok=False)), outcome(step("s1", "b", ok=False)))
    result = run_with_fallback(config("a"), catalog, runs, enabled=True)
    assert len(runs.calls) == 2
    assert result.exit_code == 1
    assert result.providers_tried == ["a", "b"]


@pytest.mark.parametrize("case", ["not_recoverable", "disabled_arg", "disabled_env"])
def test_no_retry(case: str, catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    first = outcome(step("s1", "a", ok=False, recoverable=case != "not_recoverable"))
    runs = FakeRuns(first)
    enabled: bool | None = None
    if case == "disabled_arg":
        enabled = False
    if case == "disabled_env":
        monkeypatch.setenv("AGENTIC_FALLBACK", "0")
    assert run_with_fallback(config("a"), catalog, runs, enabled=enabled) is first
    assert len(runs.calls) == 1


def test_fallback_that_cannot_start_keeps_first_result(catalog: Catalog) -> None:
    first = outcome(step("s1", "a", ok=False))
    runs = FakeRuns(first, ConfigError("key of b not set"))
    sink: list[str] = []
    assert run_with_fallback(config("a"), catalog, runs, enabled=True, error_sink=sink) is first
    assert sink[-1] == "fallback on b: key of b not set"


def test_execution_fallback_does_not_import_crewai() -> None:
    import subprocess
    import sys

    code = ("import sys, agentic_orchestration.orchestration.execution_fallback as m; "
            "m.classify_exception(ValueError('x')); assert 'crewai' not in sys.modules")
    # cwd = repo root: `-c` puts it on sys.path, installed or not.
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parent.parent)
