"""Iterative plans in-process (``--dynamic-iterative`` on the ``inprocess`` backend).

A CrewAI crew cannot change its tasks once kicked off, so an iterative run is a series of
kickoffs: each runs the next *ready wave* (the steps whose dependencies are all done; one
step for a chain) and, between kickoffs, the same ``IterativePlan`` as the distributed
coordinator revises the steps not started yet. Each kickoff is the normal in-process path
(``CrewAIExecutionBackend._kickoff`` with its task callbacks, budgets and one fallback
retry), built over a *window* plan: the finished steps (not run again; their outputs are
handed over as inputs) followed by the wave, every step naming its dependencies explicitly
so the window means what the whole plan means.

A failed, cancelled or budget-stopped wave ends the run with that status and every
finished step kept, as without replanning. There is no run store in-process, so such a
run cannot be resumed (the distributed backends can).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agentic_orchestration.errors import EXIT_INTERRUPTED, RunCancelled
from agentic_orchestration.orchestration.backends.base import (
    StepResult,
    WorkflowExecutionResult,
    keep_partial_results,
    partial_step_results,
)
from agentic_orchestration.orchestration.budget import RunBudget
from agentic_orchestration.orchestration.execution_fallback import run_with_fallback
from agentic_orchestration.orchestration.step_graph import StepGraph

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog, WorkflowConfig
    from agentic_orchestration.orchestration.backends.base import RunOptions
    from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend
    from agentic_orchestration.planning.replanner import IterativePlan

logger = logging.getLogger(__name__)

__all__ = ["run_iterative"]


def window_plan(plan: WorkflowConfig, done: list[str], wave: list[str]) -> WorkflowConfig:
    """``plan`` cut to the finished steps ``done`` then the ``wave``, deps made explicit."""
    deps = StepGraph.from_steps(plan.steps).deps
    by_id = {s.id: s for s in plan.steps}
    steps = [by_id[i].model_copy(update={"depends_on": list(deps[i])}) for i in [*done, *wave]]
    return plan.model_copy(update={"steps": steps})


def run_iterative(backend: CrewAIExecutionBackend, *, options: RunOptions,
                  catalog: Catalog) -> WorkflowExecutionResult:
    """Run ``options.replan``'s plan wave by wave, revising it between kickoffs."""
    from agentic_orchestration.orchestration.backends.crewai import ExecutionTimings
    from agentic_orchestration.orchestration.runner import build_workflow

    iterative: IterativePlan = options.replan
    started = time.perf_counter()
    backend.last_timings = timings = ExecutionTimings()
    reporter = backend._reporter(options)
    reporter.run_started(options.run_id, len(iterative.plan.steps), backend.name)
    budget = RunBudget.from_settings().start()
    results: list[StepResult] = []  # every finished step, in finish order
    outputs: dict[str, str] = {}
    done: list[str] = []
    providers: list[str] = []
    outcome: WorkflowExecutionResult | None = None
    try:
        while outcome is None:
            plan = iterative.plan
            wave = StepGraph.from_steps(plan.steps).ready(set(done), set())
            if not wave:
                break
            if options.cancel is not None and options.cancel.cancelled:
                error = RunCancelled(options.cancel.reason or "cancelled")
                outcome = WorkflowExecutionResult(exit_code=EXIT_INTERRUPTED, status="cancelled",
                                                  result_text=None, error=error)
                break
            window = window_plan(plan, done, wave)
            catalog.check_workflow(window)
            reporter.set_total(len(plan.steps))

            def run_once(overrides: Any, start_index: int, _prior: str, *,
                         window: WorkflowConfig = window, first: int = len(done)
                         ) -> WorkflowExecutionResult:
                # The wave's inputs come from ``outputs`` (the tracker), never ``_prior``.
                began = time.perf_counter()
                built = build_workflow(window, catalog, overrides=overrides,
                                       start_index=max(start_index, first))
                timings.build += time.perf_counter() - began
                result = backend._kickoff(built, options=options, reporter=reporter,
                                          timings=timings, budget=budget, outputs=outputs)
                outputs.update({r.step_id: r.result_text or "" for r in result.step_results
                                if r.ok})
                return result

            result = run_with_fallback(
                window, catalog, run_once, error_sink=options.execution_error_sink,
                on_fallback=lambda p: reporter.fallback(p.provider.id, p.start_index,
                                                        p.failed_step_id))
            results += result.step_results
            providers += result.providers_tried
            done += [r.step_id for r in result.step_results if r.ok]
            if not result.ok:
                outcome = result
                break
            revision = iterative.revise([r for r in results if r.ok])
            if revision is not None:
                reporter.replanned(revision.round, iterative.max_rounds, revision.summary())
    except BaseException as exc:
        reporter.run_finished(options.run_id, False)
        if not isinstance(exc, Exception):  # Ctrl-C: the finished waves travel with it
            keep_partial_results(exc, [*results, *partial_step_results(exc)])
        raise
    finally:
        budget.stop()
    timings.total = time.perf_counter() - started
    providers = list(dict.fromkeys(p for p in providers if p))
    if outcome is not None:
        if outcome.status == "budget_exceeded":
            reporter.budget_exceeded(budget.exceeded)
        outcome = replace(outcome, step_results=results, run_id=options.run_id,
                          backend=backend.name, providers_tried=providers)
        return backend._finish(outcome, options=options, reporter=reporter)
    last = StepGraph.from_steps(iterative.plan.steps).order()[-1]
    final = WorkflowExecutionResult(exit_code=0, status="ok", result_text=outputs.get(last),
                                    error=None, step_results=results, run_id=options.run_id,
                                    backend=backend.name, providers_tried=providers)
    return backend._finish(final, options=options, reporter=reporter)
