"""The launcher seam: where one step runs, as launch / check / terminate.

Modelled on Dagster's ``StepHandler``. The coordinator (``step_coordinator``) owns order and
policy: hand-off, retries, timeouts, cancellation, records. A distributed backend supplies a
``StepLauncher`` and nothing else; its ``StepHandle`` says how the step ended as data
(``StepExit``), never as an exception, and ``result_from_exit`` is the one place an ending
plus whatever the worker wrote (``result.json``) becomes a ``StepResult``. The subprocess
launchers give a pid as ``ref``; a Kubernetes launcher gives a Job name.

``CancelToken`` lets another thread (the web UI's cancel button, a run budget) stop a run:
the coordinator registers the running step's ``terminate`` on it, so the step is stopped at
once, not at the next poll.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from agentic_orchestration.errors import EXIT_BAD_INPUT
from agentic_orchestration.orchestration.backends.base import (
    EXIT_CANCELLED,
    K8sInfo,
    RecoveryHint,
    StepResult,
    StepSpec,
    StepTiming,
)
from agentic_orchestration.redaction import redact_text

logger = logging.getLogger(__name__)

__all__ = [
    "CancelToken",
    "StepExit",
    "StepHandle",
    "StepLauncher",
    "await_exit",
    "result_from_exit",
]

ExitReason = Literal["exited", "signalled", "timeout", "cancelled", "lost"]


@dataclass(frozen=True)
class StepExit:
    """How a launched step ended.

    Attributes:
        reason: ``exited`` (``exit_code`` set), ``signalled`` (``signal`` set, e.g.
            ``SIGKILL``), ``timeout`` / ``cancelled`` (the coordinator stopped it), ``lost``
            (nobody can tell any more: the warm process died, the Job vanished; ``detail``).
        exit_code: The worker's exit status when it exited.
        signal: The signal's name when one ended it.
        detail: A short explanation for people (shown in the step's error).
        permanent: Running the same spec again cannot help (an image missing, a pod that
            cannot be scheduled): the failed result is not retried.
        k8s: Where a Kubernetes step ran (Job, pod, node, exit code, times); copied into
            the step's result.
    """

    reason: ExitReason
    exit_code: int | None = None
    signal: str | None = None
    detail: str = ""
    permanent: bool = False
    k8s: K8sInfo | None = None


class StepHandle(ABC):
    """One launched step. ``ref`` names it for people and logs (a pid, a Job name)."""

    ref: str = ""
    log_path: Path | None = None

    @abstractmethod
    def wait(self, timeout: float | None) -> StepExit | None:
        """How the step ended, or None if it is still running after ``timeout`` seconds.

        Safe to call again after it returned an exit, and from two threads.
        """

    @abstractmethod
    def terminate(self) -> None:
        """Stop the step now and whatever it started; idempotent, callable from any thread.

        Called on timeout, on cancel, on Ctrl-C, and after every step as a sweep of what a
        finished step left behind (MCP servers in its process group).
        """

    def log_tail(self, lines: int = 5) -> str:
        """The last ``lines`` lines the step logged, one line, secrets masked."""
        return ""


class StepLauncher(ABC):
    """Starts ``execute-step`` for one spec somewhere. ``start``/``close`` bracket a run."""

    name: ClassVar[str]

    def start(self) -> None:
        """Prepare (slow work goes to the background); must not block."""
        return None

    def close(self) -> None:
        """Release what ``start`` created."""
        return None

    @abstractmethod
    def launch(self, spec: StepSpec, *, spec_path: Path, log_path: Path) -> StepHandle:
        """Start the step whose spec is written at ``spec_path``; its output goes to
        ``log_path``. Raises ``BackendError`` when it cannot start anything."""


class CancelToken:
    """A run's cancel switch, shared between the run's thread and whoever may stop it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason = ""

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel the run (first reason wins) and call every registered callback."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one bad callback must not keep the others from running
                logger.exception("cancel callback failed")

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` on cancel (now, if already cancelled); returns an unregister."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def _forget(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


def await_exit(handle: StepHandle, *, timeout: float, cancel: CancelToken | None) -> StepExit:
    """Wait for ``handle`` under the coordinator's policy: past ``timeout`` seconds, or when
    ``cancel`` fires, the step is terminated and the exit says so."""
    unregister = cancel.on_cancel(handle.terminate) if cancel is not None else (lambda: None)
    try:
        outcome = handle.wait(timeout)
        if outcome is None:
            handle.terminate()
            late = handle.wait(10.0)
            return StepExit("timeout", detail=f"step timed out after {timeout:g}s",
                            k8s=late.k8s if late is not None else None)
    finally:
        unregister()
    if cancel is not None and cancel.cancelled:
        return StepExit("cancelled", detail=cancel.reason, k8s=outcome.k8s)
    return outcome


def result_from_exit(spec: StepSpec, outcome: StepExit, stored: StepResult | None, *,
                     timing: StepTiming, log_tail: str = "") -> StepResult:
    """The step's ``StepResult`` from how it ended and what it wrote (pure; every launcher).

    - cancelled: a cancelled result (exit 130, not recoverable), unless the step had
      already finished well;
    - the worker's own ``result.json`` otherwise wins (timing filled in if it had none);
    - timeout, a signal, a lost step: failed, ``worker_retry`` (the worker failed, not the
      agent), unless the exit is ``permanent`` (an image missing: not retried);
    - an exit without ``result.json``: failed with the log's last lines; retryable unless
      the worker rejected its spec (exit 2: running it again cannot help).
    """
    where = {"k8s": outcome.k8s} if outcome.k8s is not None else {}
    if outcome.reason == "cancelled" and not (stored is not None and stored.ok):
        return StepResult(run_id=spec.run_id, step_id=spec.step_id, exit_code=EXIT_CANCELLED,
                          error=f"cancelled: {outcome.detail or 'cancelled'}",
                          recoverable=False, timing=timing, **where)
    if stored is not None:
        return stored.model_copy(update={**where, **({} if stored.timing else
                                                     {"timing": timing})})
    retry = True
    if outcome.reason == "timeout":
        error = f"{outcome.detail} (worker stopped)"
    elif outcome.reason == "signalled":
        error = f"worker killed by signal {outcome.signal}" + (
            f" ({outcome.detail})" if outcome.detail else "")
    elif outcome.reason == "lost":
        error = f"worker lost: {outcome.detail}"
        retry = not outcome.permanent
    else:
        error = (f"worker exited with code {outcome.exit_code} without writing result.json; "
                 + (f"last log lines: {log_tail}" if log_tail else "its log is empty"))
        retry = outcome.exit_code != EXIT_BAD_INPUT
    return StepResult(run_id=spec.run_id, step_id=spec.step_id, exit_code=1,
                      error=redact_text(error), recoverable=retry,
                      recovery_hint=RecoveryHint.WORKER_RETRY if retry else None, timing=timing,
                      **where)
