"""One attempt of one step through the launcher seam, and the results the coordinator makes.

Split from ``step_coordinator`` (which owns the policy around attempts) because this part
is the same whoever calls it: the coordinator's step threads, and tests of a launcher that
want "one attempt exactly as the coordinator makes it".
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from agentic_orchestration.errors import AgenticError
from agentic_orchestration.orchestration.backends.base import (
    RecoveryHint,
    StepResult,
    StepSpec,
    StepTiming,
    utc_now,
)
from agentic_orchestration.orchestration.backends.launcher import (
    CancelToken,
    StepLauncher,
    await_exit,
    result_from_exit,
)

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.run_store import RunStore

logger = logging.getLogger(__name__)

__all__ = ["checked_result", "failed_result", "launch_and_await", "provider_id"]


def provider_id(spec: StepSpec) -> str:
    return str(spec.agent_provider.get("id", ""))


def failed_result(spec: StepSpec, error: str, *, recoverable: bool = False,
                  recovery_hint: str | None = None, started_at: str = "") -> StepResult:
    """A failed ``StepResult`` for ``spec``, made by the coordinator itself."""
    timing = StepTiming(started_at=started_at, finished_at=utc_now()) if started_at else None
    return StepResult(run_id=spec.run_id, step_id=spec.step_id, exit_code=1, error=error,
                      recoverable=recoverable, recovery_hint=recovery_hint, timing=timing,
                      agent_provider_id=provider_id(spec) or None)


def checked_result(spec: StepSpec, result: object, started_at: str) -> StepResult:
    """``result`` if it is a usable answer for ``spec``; otherwise a failed result saying why.

    A blank answer fails the step recoverably, as in-process (another provider may answer);
    a result for another step would be written to the wrong place, so it is a launcher bug.
    """
    if not isinstance(result, StepResult):
        return failed_result(spec, f"execute_step returned {type(result).__name__}, "
                             "not a StepResult", started_at=started_at)
    if (result.run_id, result.step_id) != (spec.run_id, spec.step_id):
        return failed_result(spec, f"execute_step returned the result of {result.run_id}/"
                             f"{result.step_id}", started_at=started_at)
    if result.ok and not (result.result_text or "").strip():
        return result.model_copy(update={
            "exit_code": 1, "error": "the agent returned an empty answer",
            "recoverable": True, "recovery_hint": RecoveryHint.PROVIDER_FALLBACK})
    if not result.agent_provider_id:
        return result.model_copy(update={"agent_provider_id": provider_id(spec) or None})
    return result


def launch_and_await(launcher: StepLauncher, store: RunStore, spec: StepSpec, *,
                     timeout: float, cancel: CancelToken | None = None,
                     spec_path: Path | None = None, started_at: str = "") -> StepResult:
    """One attempt through the launcher: launch, wait under ``timeout`` and ``cancel``,
    terminate (always: a sweep of what the step left running), map with
    ``result_from_exit``. ``spec_path`` defaults to where the coordinator wrote the spec.
    """
    started_at = started_at or utc_now()
    began = time.monotonic()
    log_path = Path(store.result_path(spec.run_id, spec.step_id)).parent / "worker.log"
    try:
        handle = launcher.launch(
            spec, spec_path=spec_path or Path(store.spec_path(spec.run_id, spec.step_id)),
            log_path=log_path)
    except Exception as exc:
        if isinstance(exc, AgenticError):  # said in one line (forbidden, no namespace...)
            logger.error("run %s step %s: cannot launch: %s", spec.run_id, spec.step_id, exc,
                         extra={"run_id": spec.run_id, "step_id": spec.step_id})
        else:
            logger.exception("launching step %s failed", spec.step_id)
        return failed_result(spec, f"cannot launch the step: {type(exc).__name__}: {exc}",
                             started_at=started_at)
    logger.info("run %s step %s: running as %s", spec.run_id, spec.step_id, handle.ref,
                extra={"run_id": spec.run_id, "step_id": spec.step_id})
    try:
        outcome = await_exit(handle, timeout=timeout, cancel=cancel)
    except BaseException:  # Ctrl-C, SIGTERM: stop the step, keep nothing of it
        logger.warning("step %s interrupted; terminating %s", spec.step_id, handle.ref)
        handle.terminate()
        raise
    handle.terminate()
    timing = StepTiming(started_at=started_at, finished_at=utc_now(),
                        duration_seconds=round(time.monotonic() - began, 3))
    try:
        stored = store.read_result(spec.run_id, spec.step_id)
    except Exception as exc:
        return failed_result(spec, f"worker wrote an unusable result.json: {exc}",
                             recoverable=True, recovery_hint=RecoveryHint.WORKER_RETRY,
                             started_at=started_at)
    result = result_from_exit(spec, outcome, stored, timing=timing,
                              log_tail=handle.log_tail() if stored is None else "")
    if not result.ok:
        logger.warning("step %s failed in %s: %s", spec.step_id, handle.ref, result.error)
    return result
