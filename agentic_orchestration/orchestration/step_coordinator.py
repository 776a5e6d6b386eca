"""``StepCoordinator``: the one step loop of the distributed backends (spec F2.3, K3.4, K3.5).

The coordinator owns order and policy: it runs the plan's graph (``step_scheduler``: a
step starts when the steps it depends on are done, several at once up to
``AGENTIC_MAX_PARALLEL_STEPS``; a plain chain runs in order as before), hands each step the
outputs of its dependencies (``step_context``, the same functions the in-process backend
uses), stops the run when a budget is spent (``budget``), calls the provider lifecycle
hooks, records everything in the run store,
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

Resume (``resume=True``) trusts the steps whose ``result.json`` is ok and whose
dependencies are trusted: they get a ``skipped`` line and their text is their dependents'
input. Every other step's stored result is cleared before anything runs, so an interrupted
rerun can never leave a later "ok" computed from an older input. A failed branch stops only
what depends on it (``step_scheduler``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from agentic_orchestration import settings
from agentic_orchestration.errors import (
    EXIT_BUDGET_EXCEEDED,
    BudgetExceeded,
    RunCancelled,
    StepFailed,
    StepSpecError,
)
from agentic_orchestration.orchestration.backends.base import (
    EXIT_CANCELLED,
    RunOptions,
    StepResult,
    StepSpec,
    WorkflowExecutionResult,
    keep_partial_results,
    utc_now,
)
from agentic_orchestration.orchestration.backends.launcher import (
    CancelToken,
    StepLauncher,
)
from agentic_orchestration.orchestration.budget import RunBudget
from agentic_orchestration.orchestration.execution_fallback import classify_exception
from agentic_orchestration.orchestration.progress import ProgressReporter
from agentic_orchestration.orchestration.qa_hook import review_distributed_step
from agentic_orchestration.orchestration.step_attempt import (
    checked_result,
    failed_result,
    launch_and_await,
    provider_id,
)
from agentic_orchestration.orchestration.step_context import prepare_step_description
from agentic_orchestration.orchestration.step_scheduler import GraphRun, Reviser
from agentic_orchestration.redaction import register_env_names

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.run_store import RunStore
    from agentic_orchestration.providers.agent_providers import AgentProvider

logger = logging.getLogger(__name__)

__all__ = [
    "RecoverStep", "StepCoordinator", "failed_result", "launch_and_await", "provider_id",
    "register_step_secrets", "with_prior_output",
]

#: ``recover(failed_spec, failed_result, attempt)``: the spec of the next attempt, or None
#: to give up. ``attempt`` is the 1-based number of the attempt that just failed.
RecoverStep = Callable[[StepSpec, StepResult, int], StepSpec | None]


def with_prior_output(spec: StepSpec, prior_output: str | None) -> StepSpec:
    """``spec`` with ``prior_output`` set and injected into ``task.description``.

    ``spec`` must carry the base description (as the materializer builds it); calling this
    on a spec it already returned would inject the output twice.
    """
    description = prepare_step_description(spec.task.description, prior_output)
    task = spec.task.model_copy(update={"description": description})
    return spec.model_copy(update={"task": task, "prior_output": prior_output or ""})


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
                     timeout: float | None = None, budget: RunBudget | None = None,
                     reviser: Reviser | None = None) -> WorkflowExecutionResult:
        """Run ``steps`` (base descriptions, no prior output yet) and return the outcome.

        Args:
            steps: The plan's specs in written order, as the materializer built them.
            launcher: Starts steps (already ``start()``ed; the caller closes it); with
                parallel steps, ``launch`` and the handles are used from several threads.
            run_store: Receives specs, attempts and ``result.json`` files.
            run_options: ``run_id`` (must match the specs'), progress, error sink, cancel.
            resume: Skip the steps whose stored ``result.json`` is ok (and their deps').
            timeout: Seconds one attempt may run; default ``AGENTIC_STEP_TIMEOUT_SECONDS``.
            budget: Token and time budget; default ``RunBudget.from_settings()``.
            reviser: Iterative plans: may replace the steps not started yet whenever no
                step is running (``step_scheduler``).

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
        run = _Run(self, steps, launcher, run_store, run_options, timeout,
                   budget if budget is not None else RunBudget.from_settings(), reviser)
        run.reporter.run_started(run_id, len(steps), self.backend_name, steps=steps)
        logger.info("run %s started: %d step(s) on the %s backend", run_id, len(steps),
                    self.backend_name or "?", extra={"run_id": run_id})
        try:
            result = run.execute(resume=resume)
        except BaseException as exc:
            run.reporter.run_finished(run_id, False)
            keep_partial_results(exc, run.graph.results)  # the CLI records them
            raise
        finally:
            run.close()
        if result.status == "budget_exceeded":
            run.reporter.budget_exceeded(run.budget.exceeded)
        run.reporter.run_finished(run_id, result.ok, status=result.status)
        logger.info("run %s finished: %s", run_id, result.status, extra={"run_id": run_id})
        if not result.ok and run_options.log_terminal_execution_failure:
            logger.error("run %s failed: %s", run_id, result.error)
        return result

    def attempts(self) -> int:
        if self._max_attempts is not None:
            return self._max_attempts
        return settings.get_int("AGENTIC_STEP_MAX_ATTEMPTS", minimum=1)


class _Run:
    """State of one ``run_workflow`` call: the attempts of one step (``_run_step``, called
    from the step's thread by ``step_scheduler.GraphRun``) and the run's outcome."""

    def __init__(self, owner: StepCoordinator, steps: list[StepSpec], launcher: StepLauncher,
                 store: RunStore, options: RunOptions, timeout: float, budget: RunBudget,
                 reviser: Reviser | None) -> None:
        self.owner = owner
        self.launcher = launcher
        self.timeout = timeout
        self.store = store
        self.options = options
        self.max_attempts = owner.attempts()
        self.reporter = ProgressReporter(options, stream=owner._progress_stream,
                                         live=owner._live_progress)
        self.providers: list[str] = []
        # One switch stops the running steps for a cancel, a budget and an interrupt.
        self.stop = CancelToken()
        self._unlink = (options.cancel.on_cancel(lambda: self.stop.cancel(
            options.cancel.reason if options.cancel else "cancelled"))
            if options.cancel is not None else (lambda: None))
        self.budget = budget.start(self.stop)
        self.graph = GraphRun(steps, run_step=self._run_step, reporter=self.reporter,
                              store=store, stop=self.stop, budget=budget, reviser=reviser)

    def execute(self, *, resume: bool) -> WorkflowExecutionResult:
        self.graph.execute(resume=resume)
        return self._outcome()

    def close(self) -> None:
        self.budget.stop()
        self._unlink()

    def _run_step(self, index: int, spec: StepSpec) -> StepResult:
        """All attempts of one step; returns the last result."""
        attempt = 1
        while True:
            result = self._attempt(index, spec, attempt)
            result = review_distributed_step(  # QA (AGENTIC_QA): a failed check reruns once
                spec, result, keep=self.store.write_result,
                rerun=lambda again, n=attempt + 1: self._attempt(index, again, n))
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
            logger.warning("run %s step %s: attempt %d failed (%s); retrying on %s",
                           spec.run_id, spec.step_id, attempt, result.error,
                           provider_id(following), extra=_ids(spec))
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
        if self.stop.cancelled:  # cancelled between attempts: do not start another
            return failed_result(spec, f"cancelled: {self.stop.reason}").model_copy(
                update={"exit_code": EXIT_CANCELLED})
        self.store.write_spec(spec)
        self.reporter.step_started(index, spec.step_id, provider_id(spec))
        logger.info("run %s step %s: attempt %d started on %s", spec.run_id, spec.step_id,
                    attempt, provider_id(spec), extra=_ids(spec))
        started_at = utc_now()
        began = time.perf_counter()
        try:
            result = self._launch(spec, started_at)
        except BaseException as exc:  # Ctrl-C: say so, record nothing, stop the run
            self.reporter.step_failed(index, spec.step_id, f"{type(exc).__name__}: {exc}")
            raise
        seconds = time.perf_counter() - began
        if self.graph.interrupted.is_set():  # stopped because of an interrupt elsewhere:
            return result  # as the interrupted step itself, it records nothing
        self.store.write_attempt(result, attempt)
        self.store.write_result(result)
        self.options.step_result_recorded(result)
        if result.ok:
            self.reporter.step_finished(index, spec.step_id, seconds, result=result)
        else:
            self.reporter.step_failed(index, spec.step_id, result.error or "failed",
                                      result=result)
        logger.log(logging.INFO if result.ok or result.cancelled else logging.WARNING,
                   "run %s step %s: attempt %d %s in %.1fs%s", spec.run_id, spec.step_id,
                   attempt, "finished" if result.ok else "cancelled" if result.cancelled
                   else "failed", seconds, "" if result.ok else f": {result.error}",
                   extra=_ids(spec))
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
            return checked_result(spec, self._await(spec, started_at), started_at)
        finally:
            try:
                provider.after_task(spec.step_id)
            except Exception:  # a hook must not turn a finished step into a failed one
                logger.exception("after_task of %s failed", provider.id)

    def _await(self, spec: StepSpec, started_at: str) -> StepResult:
        return launch_and_await(self.launcher, self.store, spec, timeout=self.timeout,
                                cancel=self.stop, started_at=started_at)

    def _outcome(self) -> WorkflowExecutionResult:
        """ok, ``failed`` (the first failed step), ``cancelled`` or ``budget_exceeded``."""
        graph = self.graph
        error: StepFailed | None = None
        status = "ok"
        exit_code = 0
        if self.budget.exceeded:
            error = BudgetExceeded(self.budget.exceeded)
            status, exit_code = "budget_exceeded", EXIT_BUDGET_EXCEEDED
        elif self.stop.cancelled:
            error = RunCancelled(self.stop.reason or "cancelled")
            status, exit_code = "cancelled", EXIT_CANCELLED
        elif graph.failed:
            failed = next(r for r in graph.results if r.step_id in graph.failed)
            error = StepFailed(failed.error or f"exit code {failed.exit_code}",
                               step_id=failed.step_id, recoverable=failed.recoverable,
                               recovery_hint=failed.recovery_hint)
            status, exit_code = "failed", 1
        elif graph.final_output() is None:  # nothing failed, yet not everything ran
            error = StepFailed("the run ended before every step ran")
            status, exit_code = "failed", 1
        skipped = [r.agent_provider_id or "" for r in graph.results
                   if r.step_id in graph.skipped]
        return WorkflowExecutionResult(
            exit_code=exit_code,
            status=status,  # type: ignore[arg-type]
            # As in-process: a run that did not finish has no final answer (the finished
            # steps' texts are in step_results and the run store).
            result_text=graph.final_output() if error is None else None,
            error=error,
            step_results=list(graph.results),
            run_id=self.options.run_id,
            backend=self.owner.backend_name,
            providers_tried=list(dict.fromkeys(p for p in [*skipped, *self.providers] if p)),
        )


def _ids(spec: StepSpec) -> dict[str, str]:
    """``extra`` of a log line about one step: JSON lines carry the ids as fields."""
    return {"run_id": spec.run_id, "step_id": spec.step_id}


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

