"""``StepCoordinator``: the one step loop of the distributed backends (spec F2.3, K3.4, K3.5).

The coordinator owns order and policy: it runs the steps in order, hands each one the
previous step's output (``prepare_step_description``, the same function the in-process
backend uses), calls the provider lifecycle hooks, records everything in the run store,
retries a failed step when its ``recovery_hint`` allows (``recover``, e.g.
``step_recovery.provider_recovery``), applies the step timeout, cancels a run
(``RunOptions.cancel``), resumes a run, and prints the ``(progress)`` lines. A backend only
supplies a ``StepLauncher`` (``backends.launcher``): launch one step, check it, stop it.

Per attempt, in this order (the launcher may rely on it):

1. ``{step_id}-spec.json`` is written: exactly the spec the worker reads;
2. ``step ... started`` progress, then the provider's ``before_task``;
3. the step's ``result.json`` is cleared, so a stale one is never read;
4. ``launcher.launch(spec)``; the handle is awaited (terminated past
   ``AGENTIC_STEP_TIMEOUT_SECONDS`` or on cancel), then always ``terminate()``d (a sweep of
   what the step left running), then ``after_task``;
5. ``result_from_exit`` turns the exit plus ``result.json`` into the ``StepResult``; the
   attempt (``write_attempt``) and ``result.json`` (``write_result``) are written, then
   ``finished``/``failed`` progress and, for a failure, one ``execution_error_sink`` line.

Failures never escape as exceptions: an exception from ``launch`` (nothing could start)
becomes a failed, non-recoverable result, so the run stops with a recorded reason instead of
a traceback mid-loop. A cancelled step ends the run with the ``cancelled`` status; finished
steps are kept and ``--resume`` runs the rest. Only ``KeyboardInterrupt`` (Ctrl-C, and
SIGTERM as ``Terminated``) and ``SystemExit`` propagate, after the ``run ... finished:
failed`` line and carrying the finished steps (``partial_step_results``); the interrupted
attempt writes nothing, so its step has no ``result.json`` and a resume runs it again.

Resume (``resume=True``) trusts the leading steps whose ``result.json`` is ok: they get a
``step ... finished in <stored seconds>`` line and their text is the next prior output. From
the first step to run on, every stored result is cleared before anything runs, so an
interrupted rerun can never leave a later "ok" computed from an older input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from agentic_orchestration import settings
from agentic_orchestration.errors import StepFailed, StepSpecError
from agentic_orchestration.orchestration.backends.base import (
    EXIT_CANCELLED,
    RecoveryHint,
    RunOptions,
    StepResult,
    StepSpec,
    StepTiming,
    WorkflowExecutionResult,
    keep_partial_results,
    utc_now,
)
from agentic_orchestration.orchestration.backends.launcher import (
    CancelToken,
    StepLauncher,
    await_exit,
    result_from_exit,
)
from agentic_orchestration.orchestration.execution_fallback import classify_exception
from agentic_orchestration.orchestration.progress import ProgressReporter
from agentic_orchestration.orchestration.step_context import prepare_step_description
from agentic_orchestration.redaction import register_env_names

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.run_store import RunStore
    from agentic_orchestration.providers.agent_providers import AgentProvider

logger = logging.getLogger(__name__)

#: ``recover(failed_spec, failed_result, attempt)``: the spec of the next attempt, or None
#: to give up. ``attempt`` is the 1-based number of the attempt that just failed.
RecoverStep = Callable[[StepSpec, StepResult, int], StepSpec | None]


def provider_id(spec: StepSpec) -> str:
    return str(spec.agent_provider.get("id", ""))


def with_prior_output(spec: StepSpec, prior_output: str | None) -> StepSpec:
    """``spec`` with ``prior_output`` set and injected into ``task.description``.

    ``spec`` must carry the base description (as the materializer builds it); calling this
    on a spec it already returned would inject the output twice.
    """
    description = prepare_step_description(spec.task.description, prior_output)
    task = spec.task.model_copy(update={"description": description})
    return spec.model_copy(update={"task": task, "prior_output": prior_output or ""})


def failed_result(spec: StepSpec, error: str, *, recoverable: bool = False,
                  recovery_hint: str | None = None, started_at: str = "") -> StepResult:
    """A failed ``StepResult`` for ``spec``, made by the coordinator itself."""
    timing = StepTiming(started_at=started_at, finished_at=utc_now()) if started_at else None
    return StepResult(run_id=spec.run_id, step_id=spec.step_id, exit_code=1, error=error,
                      recoverable=recoverable, recovery_hint=recovery_hint, timing=timing,
                      agent_provider_id=provider_id(spec) or None)


def _checked(spec: StepSpec, result: object, started_at: str) -> StepResult:
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


class StepCoordinator:
    """Runs step specs in order through ``execute_step``; see the module docstring.

    Args:
        recover: Maps a recoverable failure to the next attempt's spec (None: give up).
            Without it a failure is final.
        max_attempts: Attempts per step, first one included; default
            ``AGENTIC_STEP_MAX_ATTEMPTS`` (read when a run starts).
        backend_name: Shown in the ``run ... started`` line and in the result.
        progress_stream: Where ``(progress)`` lines go (default stdout).
        live_progress: Force or forbid the TTY live status (default: stdout is a TTY).
    """

    def __init__(self, *, recover: RecoverStep | None = None, max_attempts: int | None = None,
                 backend_name: str = "", progress_stream: IO[str] | None = None,
                 live_progress: bool | None = None) -> None:
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self._recover = recover
        self._max_attempts = max_attempts
        self.backend_name = backend_name
        self._progress_stream = progress_stream
        self._live_progress = live_progress

    def run_workflow(self, steps: list[StepSpec], *, launcher: StepLauncher,
                     run_store: RunStore, run_options: RunOptions, resume: bool = False,
                     timeout: float | None = None) -> WorkflowExecutionResult:
        """Run ``steps`` (base descriptions, no prior output yet) and return the outcome.

        Args:
            steps: The plan's specs in order, as the materializer built them.
            launcher: Starts one step (already ``start()``ed; the caller closes it).
            run_store: Receives specs, attempts and ``result.json`` files.
            run_options: ``run_id`` (must match the specs'), progress, error sink, cancel.
            resume: Skip the leading steps whose stored ``result.json`` is ok.
            timeout: Seconds one attempt may run; default ``AGENTIC_STEP_TIMEOUT_SECONDS``.

        Raises:
            StepSpecError: A spec belongs to another run.
            KeyboardInterrupt: Re-raised; completed steps stay in the run store.
        """
        run_id = run_options.run_id
        strangers = [s.step_id for s in steps if s.run_id != run_id]
        if strangers:
            raise StepSpecError(f"specs {strangers} do not belong to run {run_id}")
        register_step_secrets(steps)
        if timeout is None:
            timeout = float(settings.get_int("AGENTIC_STEP_TIMEOUT_SECONDS", minimum=1))
        run = _Run(self, steps, launcher, run_store, run_options, timeout)
        run.reporter.run_started(run_id, len(steps), self.backend_name)
        try:
            result = run.execute(resume=resume)
        except BaseException as exc:
            run.reporter.run_finished(run_id, False)
            keep_partial_results(exc, run.results)  # the CLI records them (Ctrl-C, SIGTERM)
            raise
        run.reporter.run_finished(run_id, result.ok, status=result.status)
        if not result.ok and run_options.log_terminal_execution_failure:
            logger.error("run %s failed: %s", run_id, result.error)
        return result

    def attempts(self) -> int:
        if self._max_attempts is not None:
            return self._max_attempts
        return settings.get_int("AGENTIC_STEP_MAX_ATTEMPTS", minimum=1)


class _Run:
    """State of one ``run_workflow`` call."""

    def __init__(self, owner: StepCoordinator, steps: list[StepSpec], launcher: StepLauncher,
                 store: RunStore, options: RunOptions, timeout: float) -> None:
        self.owner = owner
        self.steps = steps
        self.launcher = launcher
        self.timeout = timeout
        self.store = store
        self.options = options
        self.max_attempts = owner.attempts()
        self.reporter = ProgressReporter(options, stream=owner._progress_stream,
                                         live=owner._live_progress)
        self.results: list[StepResult] = []
        self.providers: list[str] = []

    def execute(self, *, resume: bool) -> WorkflowExecutionResult:
        start, prior = self._skip_done() if resume else (0, None)
        for spec in self.steps[start:]:
            # A rerun invalidates every later stored result (its input changes); clearing
            # them first means a crash mid-run can never leave a stale "ok" for --resume.
            self.store.clear_result(spec.run_id, spec.step_id)
        cancel = self.options.cancel
        for index in range(start, len(self.steps)):
            if cancel is not None and cancel.cancelled:
                logger.info("run %s cancelled before step %s: %s", self.options.run_id,
                            self.steps[index].step_id, cancel.reason)
                return self._outcome(prior, None, cancelled=cancel.reason)
            result = self._run_step(index, with_prior_output(self.steps[index], prior))
            self.results.append(result)
            if not result.ok:
                return self._outcome(prior, result)
            prior = result.result_text
        return self._outcome(prior, None)

    def _skip_done(self) -> tuple[int, str | None]:
        """Leading steps with an ok stored result: (index of the first to run, its prior)."""
        prior: str | None = None
        for index, spec in enumerate(self.steps):
            try:
                stored = self.store.read_result(spec.run_id, spec.step_id)
            except StepSpecError as exc:  # unreadable: running it again is the safe answer
                logger.warning("resume: %s; step %s runs again", exc, spec.step_id)
                return index, prior
            if stored is None or not stored.ok or not (stored.result_text or "").strip():
                return index, prior
            logger.info("resume: step %s already done", spec.step_id)
            self.reporter.step_skipped(index, spec.step_id)
            self.results.append(stored)
            self.providers.append(stored.agent_provider_id or provider_id(spec))
            prior = stored.result_text
        return len(self.steps), prior

    def _run_step(self, index: int, spec: StepSpec) -> StepResult:
        """All attempts of one step; returns the last result."""
        attempt = 1
        while True:
            result = self._attempt(index, spec, attempt)
            self.providers.append(provider_id(spec))
            if result.ok:
                return result
            if result.cancelled:
                return result
            if self.options.execution_error_sink is not None:
                self.options.execution_error_sink.append(
                    f"step {spec.step_id} attempt {attempt} on {provider_id(spec)}: "
                    f"{result.error}")
            following = self._next_spec(spec, result, attempt)
            if following is None:
                return result
            logger.warning("step %s attempt %d failed (%s); retrying on %s", spec.step_id,
                           attempt, result.error, provider_id(following))
            self.reporter.fallback(provider_id(following), index, spec.step_id)
            spec, attempt = following, attempt + 1

    def _next_spec(self, spec: StepSpec, result: StepResult, attempt: int) -> StepSpec | None:
        recover = self.owner._recover
        if not result.recoverable or recover is None or attempt >= self.max_attempts:
            return None
        try:
            return recover(spec, result, attempt)
        except Exception:  # a broken recovery must end this step, not the coordinator
            logger.exception("recovery of step %s failed; giving up", spec.step_id)
            return None

    def _attempt(self, index: int, spec: StepSpec, attempt: int) -> StepResult:
        self.store.write_spec(spec)
        self.reporter.step_started(index, spec.step_id, provider_id(spec))
        started_at = utc_now()
        began = time.perf_counter()
        try:
            result = self._launch(spec, started_at)
        except BaseException as exc:  # Ctrl-C: say so, record nothing, stop the run
            self.reporter.step_failed(index, spec.step_id, f"{type(exc).__name__}: {exc}")
            raise
        seconds = time.perf_counter() - began
        self.store.write_attempt(result, attempt)
        self.store.write_result(result)
        if result.ok:
            self.reporter.step_finished(index, spec.step_id, seconds)
        else:
            self.reporter.step_failed(index, spec.step_id, result.error or "failed")
        return result

    def _launch(self, spec: StepSpec, started_at: str) -> StepResult:
        """``before_task``, clear, launch and await, ``after_task``; exceptions -> results."""
        try:
            provider = _provider(spec)
            provider.before_task(spec.step_id)
        except Exception as exc:  # e.g. the embedded model cannot load: as in-process
            verdict = classify_exception(exc)
            return failed_result(spec, f"{type(exc).__name__}: {exc}",
                                 recoverable=verdict.recoverable, recovery_hint=verdict.hint,
                                 started_at=started_at)
        try:
            self.store.clear_result(spec.run_id, spec.step_id)
            return _checked(spec, self._await(spec, started_at), started_at)
        finally:
            try:
                provider.after_task(spec.step_id)
            except Exception:  # a hook must not turn a finished step into a failed one
                logger.exception("after_task of %s failed", provider.id)

    def _await(self, spec: StepSpec, started_at: str) -> StepResult:
        return launch_and_await(self.launcher, self.store, spec, timeout=self.timeout,
                                cancel=self.options.cancel, started_at=started_at)

    def _outcome(self, prior: str | None, failed: StepResult | None, *,
                 cancelled: str = "") -> WorkflowExecutionResult:
        error: StepFailed | None = None
        if failed is not None:
            error = StepFailed(failed.error or f"exit code {failed.exit_code}",
                               step_id=failed.step_id, recoverable=failed.recoverable,
                               recovery_hint=failed.recovery_hint)
            if failed.cancelled:
                cancelled = failed.error or "cancelled"
        elif cancelled:
            error = StepFailed(f"cancelled: {cancelled}")
        return WorkflowExecutionResult(
            exit_code=0 if error is None else EXIT_CANCELLED if cancelled else 1,
            status="ok" if error is None else "cancelled" if cancelled else "failed",
            # As in-process: a failed run has no final answer (the finished steps' texts
            # are in step_results and the run store).
            result_text=prior if error is None else None,
            error=error,
            step_results=list(self.results),
            run_id=self.options.run_id,
            backend=self.owner.backend_name,
            providers_tried=list(dict.fromkeys(p for p in self.providers if p)),
        )


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
        logger.exception("launching step %s failed", spec.step_id)
        return failed_result(spec, f"cannot launch the step: {type(exc).__name__}: {exc}",
                             started_at=started_at)
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


def register_step_secrets(steps: list[StepSpec]) -> None:
    """Register the env var names whose values the steps' workers will use as secrets.

    The coordinator never expands a secret, but its workers read them from the environment
    they inherit from it; knowing the names (agent key and ``required_env`` variables,
    MCP ``${VAR}`` references), it masks the same values in what it writes and prints
    (attempts, progress lines, a worker's log tail).
    """
    from agentic_orchestration.catalogs.models import AgentProviderEntry
    from agentic_orchestration.mcp.resolution import referenced_env_vars
    from agentic_orchestration.providers.agent_providers import secret_env_names

    names: list[str] = []
    for spec in steps:
        try:
            names += secret_env_names(AgentProviderEntry.model_validate(spec.agent_provider))
        except ValueError:  # pydantic's ValidationError; the step fails later, naming it
            pass
        for ref in spec.mcp_providers:
            names += referenced_env_vars(ref.resolved)
    register_env_names(names)


def _provider(spec: StepSpec) -> AgentProvider:
    from agentic_orchestration.providers.agent_providers import agent_provider_from_dict

    return agent_provider_from_dict(spec.agent_provider)
