"""The default backend: the whole plan as one CrewAI crew in this process (spec F1).

``execute_config`` builds the crew (``runner.build_workflow``), kicks it off, and on a
recoverable step failure resumes once on the next provider (``execution_fallback``).
``execute_built`` runs an already built crew once, without fallback.

Between tasks a callback (``_StepTracker.on_task_done``) does what the distributed
coordinator does between steps: it closes the finished step (timing, token usage,
``after_task``, progress), injects its output into the NEXT task's description with
``prepare_step_description`` (CrewAI reads ``task.description`` only when the task starts),
and opens the next step (``before_task``, progress). A blank answer fails the step there
(recoverable), which stops the crew.

Per-step token usage is the difference of the step agent's LLM counters
(``BaseLLM.get_token_usage_summary()``, cumulative per LLM instance) around the step.
Steps on one endpoint share an LLM instance (``runner``); the diff stays exact because
steps run strictly one after another. (``CrewOutput.token_usage`` is crew-wide and would
count a shared instance once per agent, so it is not used.)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, ClassVar

from agentic_orchestration import settings
from agentic_orchestration.errors import RunCancelled, StepFailed
from agentic_orchestration.orchestration.backends.base import (
    EXIT_CANCELLED,
    ArtifactRef,
    ExecutionBackend,
    RecoveryHint,
    RunOptions,
    StepResult,
    StepTiming,
    TokenUsage,
    WorkflowExecutionResult,
    keep_partial_results,
    utc_now,
)
from agentic_orchestration.orchestration.execution_fallback import (
    FallbackPlan,
    classify_exception,
    error_text,
    run_with_fallback,
)
from agentic_orchestration.orchestration.progress import ProgressReporter
from agentic_orchestration.orchestration.step_context import prepare_step_description

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog, WorkflowConfig
    from agentic_orchestration.orchestration.backends.launcher import CancelToken
    from agentic_orchestration.orchestration.runner import BuiltWorkflow

logger = logging.getLogger(__name__)

__all__ = ["CrewAIExecutionBackend", "ExecutionTimings"]


@dataclass
class ExecutionTimings:
    """Where the wall time of the last run went (seconds), for benchmarks and debugging."""

    build: float = 0.0  # build_workflow (Agents, Tasks, Crew, LLM clients)
    kickoff: float = 0.0  # inside crew.kickoff(), our callbacks included
    callbacks: float = 0.0  # our code inside kickoff: hand-off, hooks, progress, bookkeeping
    total: float = 0.0  # execute_config / execute_built end to end
    steps: int = 0  # steps run (over all attempts)


def _usage_counters(agent: Any) -> dict[str, int]:
    summary = getattr(getattr(agent, "llm", None), "get_token_usage_summary", None)
    if summary is None:
        return {}
    usage = summary()
    return {k: int(getattr(usage, k, 0) or 0)
            for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


class _StepTracker:
    """Per-step bookkeeping for one kickoff; ``on_task_done`` is every task's callback."""

    def __init__(self, built: BuiltWorkflow, run_id: str, reporter: ProgressReporter,
                 timings: ExecutionTimings) -> None:
        self.built = built
        self.run_id = run_id
        self.reporter = reporter
        self.timings = timings
        self.results: list[StepResult] = []
        self.current: int | None = None  # position in built.steps of the running step
        self._started_at = ""
        self._started = 0.0
        self._usage_before: dict[str, int] = {}
        #: ``RunOptions.cancel``: checked between tasks (``_on_task_done``).
        self.cancel: CancelToken | None = None
        #: ``RunOptions.artifacts_dir``: each finished step's files are saved there at once.
        self.artifacts_dir: str | None = None

    def _index(self, k: int) -> int:
        return self.built.start_index + k

    def start(self, k: int) -> None:
        self.current = k
        step, provider = self.built.steps[k], self.built.providers[k]
        self.reporter.step_started(self._index(k), step.id, provider.id)
        self._usage_before = _usage_counters(self.built.agents[k])
        self._started = 0.0
        provider.before_task(step.id)
        self._started_at = utc_now()
        self._started = time.perf_counter()

    def _close(self, k: int) -> tuple[StepTiming, TokenUsage, float]:
        seconds = time.perf_counter() - self._started
        after = _usage_counters(self.built.agents[k])
        usage = TokenUsage(**{key: after.get(key, 0) - self._usage_before.get(key, 0)
                              for key in ("prompt_tokens", "completion_tokens", "total_tokens")})
        timing = StepTiming(started_at=self._started_at, finished_at=utc_now(),
                            duration_seconds=round(seconds, 4))
        self.current = None
        self._started = 0.0
        self.timings.steps += 1
        try:
            self.built.providers[k].after_task(self.built.steps[k].id)
        except Exception:  # a hook must not turn a finished step into a failed one
            logger.exception("after_task of %s failed", self.built.providers[k].id)
        return timing, usage, seconds

    def on_task_done(self, output: Any) -> None:
        began = time.perf_counter()
        try:
            self._on_task_done(output)
        finally:
            self.timings.callbacks += time.perf_counter() - began

    def _on_task_done(self, output: Any) -> None:
        k = self.current
        if k is None:  # not ours (crew re-used elsewhere); nothing to account
            return
        step = self.built.steps[k]
        text = str(getattr(output, "raw", "") or "")
        if not text.strip():
            raise StepFailed("the agent returned an empty answer", step_id=step.id,
                             recoverable=True, recovery_hint=RecoveryHint.PROVIDER_FALLBACK)
        timing, usage, seconds = self._close(k)
        self.results.append(StepResult(
            run_id=self.run_id, step_id=step.id, exit_code=0, result_text=text,
            agent_provider_id=self.built.entries[k].id, timing=timing, usage=usage,
            artifacts=_save_step_files(text, self.artifacts_dir, step.id),
        ))
        self.reporter.step_finished(self._index(k), step.id, seconds)
        cancel = self.cancel
        if cancel is not None and cancel.cancelled and k + 1 < len(self.built.tasks):
            # CrewAI cannot stop a kickoff mid-task; between tasks, raising from the task
            # callback ends the crew with the finished steps kept.
            raise RunCancelled(cancel.reason, step_id=self.built.steps[k + 1].id)
        if k + 1 < len(self.built.tasks):
            self.built.tasks[k + 1].description = prepare_step_description(
                self.built.base_descriptions[k + 1], text)
            self.start(k + 1)

    def fail(self, exc: BaseException) -> StepFailed:
        """Record the running step as failed; return the run's error."""
        verdict = classify_exception(exc)
        message = error_text(exc)
        k = self.current
        if k is None:  # raised after the last step closed: no step to blame
            error = StepFailed(message, recoverable=False)
            error.__cause__ = exc
            return error
        step = self.built.steps[k]
        timing: StepTiming | None = None
        usage: TokenUsage | None = None
        if self._started:  # False when before_task itself raised
            timing, usage, _ = self._close(k)
        self.current = None
        self.results.append(StepResult(
            run_id=self.run_id, step_id=step.id, exit_code=1, error=message,
            recoverable=verdict.recoverable, recovery_hint=verdict.hint,
            agent_provider_id=self.built.entries[k].id, timing=timing, usage=usage,
        ))
        self.reporter.step_failed(self._index(k), step.id, message)
        if isinstance(exc, StepFailed):
            return exc
        error = StepFailed(message, step_id=step.id, recoverable=verdict.recoverable,
                           recovery_hint=verdict.hint)
        error.__cause__ = exc
        return error

    def providers_used(self) -> list[str]:
        count = len(self.results)
        return list(dict.fromkeys(e.id for e in self.built.entries[:count]))


class CrewAIExecutionBackend(ExecutionBackend):
    """Runs the whole plan as one sequential CrewAI crew in this process.

    Args:
        progress_stream: Where ``(progress)`` lines go (default stdout).
        live_progress: Force or forbid the TTY live status (default: stdout is a TTY).
    """

    name: ClassVar[str] = "inprocess"

    def __init__(self, *, progress_stream: IO[str] | None = None,
                 live_progress: bool | None = None) -> None:
        self._progress_stream = progress_stream
        self._live_progress = live_progress
        #: Time breakdown of the last run (see ``ExecutionTimings``).
        self.last_timings = ExecutionTimings()

    def _reporter(self, options: RunOptions) -> ProgressReporter:
        return ProgressReporter(options, stream=self._progress_stream, live=self._live_progress)

    def execute_config(
        self,
        config: WorkflowConfig,
        *,
        options: RunOptions,
        catalog: Catalog | None = None,
    ) -> WorkflowExecutionResult:
        """Build and run ``config``, with one fallback retry (see ``execution_fallback``).

        Raises:
            CatalogError / ConfigError: The plan cannot be built (unknown ids, missing env);
                these are the user's to fix, not step failures.
        """
        from agentic_orchestration.catalogs import load_catalog
        from agentic_orchestration.mcp.resolution import check_mcp_env
        from agentic_orchestration.orchestration.runner import build_workflow

        started = time.perf_counter()
        self.last_timings = timings = ExecutionTimings()
        catalog = catalog if catalog is not None else load_catalog()
        catalog.check_workflow(config)
        check_mcp_env(config, catalog)  # before any step, as on the subprocess backend
        reporter = self._reporter(options)
        reporter.run_started(options.run_id, len(config.steps), self.name)

        def run_once(overrides: Any, start_index: int, prior_output: str
                     ) -> WorkflowExecutionResult:
            began = time.perf_counter()
            built = build_workflow(config, catalog, overrides=overrides,
                                   start_index=start_index, prior_output=prior_output)
            timings.build += time.perf_counter() - began
            return self._kickoff(built, options=options, reporter=reporter, timings=timings)

        def on_fallback(plan: FallbackPlan) -> None:
            reporter.fallback(plan.provider.id, plan.start_index, plan.failed_step_id)

        try:
            result = run_with_fallback(config, catalog, run_once, on_fallback=on_fallback,
                                       error_sink=options.execution_error_sink)
        except BaseException:
            reporter.run_finished(options.run_id, False)
            raise
        timings.total = time.perf_counter() - started
        return self._finish(result, options=options, reporter=reporter)

    def execute_built(self, built: BuiltWorkflow, *, options: RunOptions
                      ) -> WorkflowExecutionResult:
        """Kick off an already built crew once (no fallback: there is no catalog here)."""
        started = time.perf_counter()
        self.last_timings = timings = ExecutionTimings()
        reporter = self._reporter(options)
        reporter.run_started(options.run_id, built.total_steps, self.name)
        try:
            result = self._kickoff(built, options=options, reporter=reporter, timings=timings)
        except BaseException:
            reporter.run_finished(options.run_id, False)
            raise
        timings.total = time.perf_counter() - started
        return self._finish(result, options=options, reporter=reporter)

    def _kickoff(self, built: BuiltWorkflow, *, options: RunOptions,
                 reporter: ProgressReporter, timings: ExecutionTimings
                 ) -> WorkflowExecutionResult:
        settings.quiet_crewai_network()
        tracker = _StepTracker(built, options.run_id, reporter, timings)
        tracker.cancel = options.cancel
        tracker.artifacts_dir = options.artifacts_dir
        for k, task in enumerate(built.tasks):
            # Reset to the base text so a re-run never injects twice; the first task of a
            # resumed crew gets the output of the step before it.
            prior = built.prior_output if k == 0 else ""
            task.description = prepare_step_description(built.base_descriptions[k], prior)
            task.callback = tracker.on_task_done
        began = time.perf_counter()
        error: StepFailed | None = None
        try:
            tracker.start(0)
            built.crew.kickoff()
        except BaseException as exc:
            cancelled = _cancellation(exc)
            error = cancelled if cancelled is not None else tracker.fail(exc)
            if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM: record, then stop
                keep_partial_results(exc, tracker.results)
                raise
        finally:
            timings.kickoff += time.perf_counter() - began
        ok = error is None and len(tracker.results) == len(built.steps)
        cancelled = isinstance(error, RunCancelled)
        return WorkflowExecutionResult(
            exit_code=0 if ok else EXIT_CANCELLED if cancelled else 1,
            status="ok" if ok else "cancelled" if cancelled else "failed",
            result_text=tracker.results[-1].result_text if ok else None,
            error=error,
            step_results=tracker.results,
            run_id=options.run_id,
            backend=self.name,
            providers_tried=tracker.providers_used(),
        )

    def _finish(self, result: WorkflowExecutionResult, *, options: RunOptions,
                reporter: ProgressReporter) -> WorkflowExecutionResult:
        reporter.run_finished(options.run_id, result.ok, status=result.status)
        if not result.ok and result.error is not None:
            if options.log_terminal_execution_failure:
                logger.error("run %s failed: %s", options.run_id, result.error)
            if options.execution_error_sink is not None:
                options.execution_error_sink.append(str(result.error))
        return result


def _save_step_files(text: str, artifacts_dir: str | None, step_id: str) -> list[ArtifactRef]:
    """Save the files ``text`` names under ``artifacts_dir``; their refs (none when unset).

    Done when the step finishes, where it ran, so a run stopped later keeps them and a
    worker on another machine saves them where its spec says. A failed write is logged,
    never fatal: the step's answer matters more.
    """
    if not artifacts_dir:
        return []
    from agentic_orchestration.output.output_artifacts import save_extracted_files

    try:
        return list(save_extracted_files(text, artifacts_dir))
    except OSError as exc:
        logger.error("step %s: cannot save its files under %s: %s", step_id, artifacts_dir,
                     exc.strerror or exc)
        return []


def _cancellation(exc: BaseException) -> RunCancelled | None:
    """The ``RunCancelled`` our task callback raised, however CrewAI wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, RunCancelled):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
