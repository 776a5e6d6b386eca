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

A plan whose steps declare ``depends_on`` (not a plain chain), and an iterative run
(``--dynamic-iterative``), are one kickoff per ready wave instead (``_crewai_graph``): a
failed step then stops only what depends on it and independent branches finish, as on the
distributed backends. Each task gets the outputs of all its dependencies
(``step_context.prepare_step_inputs``).

Run budgets (``budget.RunBudget``) are checked after every LLM call (the agents' CrewAI
``step_callback``) and between steps; a spent budget raises ``BudgetExceeded`` from there,
the running step is recorded as stopped and the run ends ``budget_exceeded``.

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
from agentic_orchestration.errors import BudgetExceeded, RunCancelled, StepFailed
from agentic_orchestration.orchestration.backends._step_tracker import StepTracker
from agentic_orchestration.orchestration.backends.base import (
    ExecutionBackend,
    RunOptions,
    WorkflowExecutionResult,
    keep_partial_results,
)
from agentic_orchestration.orchestration.budget import RunBudget
from agentic_orchestration.orchestration.execution_fallback import (
    FallbackPlan,
    run_with_fallback,
)
from agentic_orchestration.orchestration.progress import ProgressReporter
from agentic_orchestration.orchestration.step_context import (
    prepare_step_description,
    prepare_step_inputs,
)
from agentic_orchestration.orchestration.step_graph import StepGraph

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog, WorkflowConfig
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
        if options.replan is not None or not StepGraph.from_steps(config.steps).is_chain:
            # A graph or an iterative plan: one kickoff per ready wave (_crewai_graph).
            from agentic_orchestration.orchestration.backends._crewai_graph import run_graph

            return run_graph(self, config, options=options, catalog=catalog)
        reporter = self._reporter(options)
        reporter.run_started(options.run_id, len(config.steps), self.name, steps=config.steps)
        budget = RunBudget.from_settings().start()
        finished: dict[str, str] = {}  # outputs of earlier attempts, for a fallback retry

        def run_once(overrides: Any, start_index: int, prior_output: str
                     ) -> WorkflowExecutionResult:
            began = time.perf_counter()
            built = build_workflow(config, catalog, overrides=overrides,
                                   start_index=start_index, prior_output=prior_output)
            timings.build += time.perf_counter() - began
            result = self._kickoff(built, options=options, reporter=reporter, timings=timings,
                                   budget=budget, outputs=finished)
            finished.update({r.step_id: r.result_text or "" for r in result.step_results
                             if r.ok})
            return result

        def on_fallback(plan: FallbackPlan) -> None:
            reporter.fallback(plan.provider.id, plan.start_index, plan.failed_step_id)

        try:
            result = run_with_fallback(config, catalog, run_once, on_fallback=on_fallback,
                                       error_sink=options.execution_error_sink)
        except BaseException:
            reporter.run_finished(options.run_id, False)
            raise
        finally:
            budget.stop()
        if result.status == "budget_exceeded":
            reporter.budget_exceeded(budget.exceeded)
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
                 reporter: ProgressReporter, timings: ExecutionTimings,
                 budget: RunBudget | None = None, outputs: dict[str, str] | None = None
                 ) -> WorkflowExecutionResult:
        settings.quiet_crewai_network()
        tracker = StepTracker(built, options.run_id, reporter, timings)
        tracker.cancel = options.cancel
        tracker.artifacts_dir = options.artifacts_dir
        tracker.options = options
        tracker.outputs.update(outputs or {})
        if budget is not None and budget.limited:
            tracker.budget = budget
            _check_after_llm_calls(built, tracker.check_budget)
        for k, task in enumerate(built.tasks):
            # Reset to the base text so a re-run never injects twice; the first task of a
            # resumed crew gets the outputs of its dependencies (or of the step before it).
            description = prepare_step_description(built.base_descriptions[k],
                                                   built.prior_output if k == 0 else "")
            if k == 0 and any(text for _, text in tracker.inputs_of(0)):
                description = prepare_step_inputs(built.base_descriptions[0],
                                                  tracker.inputs_of(0))
            task.description = description
            task.callback = tracker.on_task_done
        began = time.perf_counter()
        error: StepFailed | None = None
        try:
            tracker.start(0)
            built.crew.kickoff()
        except BaseException as exc:
            cancelled = _cancellation(exc)
            if cancelled is not None:
                tracker.stopped(cancelled)
            error = cancelled if cancelled is not None else tracker.fail(exc)
            if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM: record, then stop
                keep_partial_results(exc, tracker.results)
                raise
        finally:
            timings.kickoff += time.perf_counter() - began
        ok = error is None and len(tracker.results) == len(built.steps)
        over = isinstance(error, BudgetExceeded)
        cancelled = isinstance(error, RunCancelled)
        return WorkflowExecutionResult(
            exit_code=0 if ok else error.exit_code if cancelled and error else 1,
            status=("ok" if ok else "budget_exceeded" if over else
                    "cancelled" if cancelled else "failed"),
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


def _check_after_llm_calls(built: BuiltWorkflow, check: Any) -> None:
    """Call ``check()`` after every LLM call of the crew's agents (it raises to stop).

    CrewAI's ``step_callback`` is not called for a plain final answer (only around tool
    calls), so each LLM instance's ``call`` is wrapped instead; the instance belongs to
    this built crew only, so nothing outside the run sees the wrapper.
    """
    seen: set[int] = set()
    for agent in built.agents:
        llm = getattr(agent, "llm", None)
        if llm is None or id(llm) in seen or not callable(getattr(llm, "call", None)):
            continue
        seen.add(id(llm))
        original = llm.call

        def call(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            answer = _original(*args, **kwargs)
            check()
            return answer

        object.__setattr__(llm, "call", call)  # an instance attribute, past pydantic


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
