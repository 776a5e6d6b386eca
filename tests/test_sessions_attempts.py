"""An in-process run keeps every attempt of a step in its session, as distributed runs do:
the failed first attempt that the provider fallback recovered is recorded (its provider,
error, timing), not replaced by the retry, and the learning statistics count it."""

from __future__ import annotations

from agentic_orchestration.orchestration.backends.base import (
    StepResult,
    StepTiming,
    WorkflowExecutionResult,
)
from agentic_orchestration.sessions import SessionStore
from agentic_orchestration.sessions.orchestrator_session import (
    record_step,
    save_session,
    start_session,
    update_session,
)


def _result(step: str, provider: str, second: int, *, ok: bool = True) -> StepResult:
    timing = StepTiming(started_at=f"2026-01-01T00:00:0{second}.000+00:00",
                        finished_at=f"2026-01-01T00:00:0{second + 1}.000+00:00",
                        duration_seconds=1.0)
    return StepResult(run_id="20260101T000000Z-attempts", step_id=step,
                      exit_code=0 if ok else 1, result_text="done" if ok else None,
                      error=None if ok else "HTTP 500: writer down", recoverable=not ok,
                      agent_provider_id=provider, timing=timing)


def test_a_fallback_retry_joins_the_failed_attempt_instead_of_replacing_it() -> None:
    record = start_session("bees", mode="workflow", run_id="20260101T000000Z-attempts")
    first, failed, retried = (_result("a", "p1", 0), _result("b", "p1", 2, ok=False),
                              _result("b", "p2", 4))
    for result in (first, failed, retried):  # as on_step_result reports them
        record_step(record, result)
    # The backend's final result lists only the last attempt of each step.
    update_session(record, execution=WorkflowExecutionResult(
        exit_code=0, status="ok", result_text="done", error=None,
        step_results=[first, retried], run_id=record.run_id, backend="inprocess"))
    steps = {s["step_id"]: s for s in record.steps}
    assert steps["a"]["attempts"] == 1 and steps["a"]["attempt_log"] == []
    log = steps["b"]["attempt_log"]
    assert [(a["attempt"], a["agent_provider_id"], a["status"]) for a in log] == [
        (1, "p1", "failed"), (2, "p2", "ok")]
    assert log[0]["error"] == "HTTP 500: writer down" and log[0]["recoverable"]
    assert steps["b"]["attempts"] == 2 and steps["b"]["status"] == "ok"
    save_session(record)
    rows = SessionStore().step_rows()
    assert sorted((r.step_id, r.attempt, r.provider, r.status, r.final) for r in rows) == [
        ("a", 1, "p1", "ok", True), ("b", 1, "p1", "failed", False),
        ("b", 2, "p2", "ok", True)]


def test_the_same_attempt_reported_twice_is_counted_once() -> None:
    record = start_session("bees", mode="workflow", run_id="20260101T000000Z-attempts")
    only = _result("a", "p1", 0)
    record_step(record, only)
    record_step(record, only)
    update_session(record, execution=WorkflowExecutionResult(
        exit_code=0, status="ok", result_text="done", error=None, step_results=[only],
        run_id=record.run_id, backend="inprocess"))
    assert [(s["attempts"], s["attempt_log"]) for s in record.steps] == [(1, [])]
